//! Row structs, one per table, used both to read and to insert.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    balances, idempotency_keys, ledger_entries, orders, outbox_events, payments, refunds,
};
use crate::domain::{EntryKind, OrderStatus};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = balances, check_for_backend(diesel::mysql::Mysql))]
pub struct BalanceRow {
    pub buyer_id: i64,
    pub balance: i64,
    pub version: i64,
    pub fence_token: i64,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_entries, check_for_backend(diesel::mysql::Mysql))]
pub struct LedgerRow {
    pub buyer_id: i64,
    pub version: i64,
    pub kind: EntryKind,
    pub amount: i64,
    pub balance_after: i64,
    pub order_id: Option<i64>,
    pub payment_id: Option<i64>,
    /// Set on REFUND entries.
    pub refund_id: Option<i64>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders, check_for_backend(diesel::mysql::Mysql))]
pub struct OrderRow {
    pub id: i64,
    pub buyer_id: i64,
    pub total_price: i64,
    pub status: OrderStatus,
    pub created_at: NaiveDateTime,
    pub paid_at: Option<NaiveDateTime>,
    pub cancelled_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = payments, check_for_backend(diesel::mysql::Mysql))]
pub struct PaymentRow {
    pub id: i64,
    pub order_id: i64,
    pub buyer_id: i64,
    pub amount: i64,
    /// The sum of this payment's refunds so far, at most `amount`.
    pub refunded_amount: i64,
    pub balance_after: i64,
    pub ledger_version: i64,
    pub paid_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds, check_for_backend(diesel::mysql::Mysql))]
pub struct RefundRow {
    pub id: i64,
    pub payment_id: i64,
    pub order_id: i64,
    pub buyer_id: i64,
    pub amount: i64,
    pub reason: Option<String>,
    pub balance_after: i64,
    pub ledger_version: i64,
    pub refunded_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys, check_for_backend(diesel::mysql::Mysql))]
pub struct IdempotencyRow {
    pub idempotency_key: String,
    pub buyer_id: i64,
    pub fingerprint: String,
    pub response_status: i16,
    pub response_body: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = outbox_events, check_for_backend(diesel::mysql::Mysql))]
pub struct NewOutboxEvent {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub buyer_id: i64,
    pub payload: String,
    pub occurred_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = outbox_events, check_for_backend(diesel::mysql::Mysql))]
pub struct OutboxEventRow {
    pub seq: i64,
    pub event_id: String,
    pub event_type: String,
    pub schema_version: i32,
    pub buyer_id: i64,
    pub payload: String,
    pub occurred_at: NaiveDateTime,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub published_at: Option<NaiveDateTime>,
}

/// Where an event is in its delivery (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// Committed, not yet acknowledged by the broker.
    Pending,
    /// Acknowledged by the broker; pruned after a grace period.
    Published,
    /// Parked after too many failed attempts, until redriven.
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "PENDING",
            OutboxStatus::Published => "PUBLISHED",
            OutboxStatus::Dead => "DEAD",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(OutboxStatus::Pending),
            "PUBLISHED" => Some(OutboxStatus::Published),
            "DEAD" => Some(OutboxStatus::Dead),
            _ => None,
        }
    }
}
