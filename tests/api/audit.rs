//! `payment-engine audit` (issue 14): a database after real traffic audits clean; every kind of
//! inconsistency planted with SQL is found and named; `--buyer` limits it; the exit codes; and
//! pruned events are told apart from lost ones.

mod cli;
mod planted;
mod pruning;

use std::collections::{BTreeMap, BTreeSet};

use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use payment_engine::audit::{AuditOptions, ChargeEvents, Report, audit, audit_with_jobs};

use crate::helpers::{TestApp, int, order_row};

/// What each test database starts from: buyers who only charged, and buyers who charged,
/// paid one order and left another PENDING.
pub const CHARGED: i64 = 1_000;
pub const SECOND_CHARGE: i64 = 500;
pub const PAID_TOTAL: i64 = 100;

/// A buyer set up by [`charged`] or [`paid`].
#[derive(Debug, Clone, Copy)]
pub struct Buyer {
    pub id: i64,
    pub paid_order: Option<i64>,
    pub pending_order: Option<i64>,
    pub payment: Option<i64>,
}

/// Two charges: versions 1 and 2, balance 1,500.
pub async fn charged(app: &TestApp, id: i64) -> Buyer {
    app.charge_ok(id, CHARGED).await;
    app.charge_ok(id, SECOND_CHARGE).await;
    Buyer {
        id,
        paid_order: None,
        pending_order: None,
        payment: None,
    }
}

/// A charge, an order paid (version 2, balance 900, its payment.completed event in the outbox)
/// and another left PENDING.
pub async fn paid(app: &TestApp, id: i64) -> Buyer {
    app.charge_ok(id, CHARGED).await;
    let paid_order = app.new_order(id, PAID_TOTAL).await;
    let pending_order = app.new_order(id, 70).await;
    let payment = int(&app.pay(id, paid_order).await.ok(), "paymentId");
    Buyer {
        id,
        paid_order: Some(paid_order),
        pending_order: Some(pending_order),
        payment: Some(payment),
    }
}

/// Audits the whole database (or one buyer) with the library call.
pub fn audit_of(conn: &mut MysqlConnection, buyer: Option<i64>, charges: ChargeEvents) -> Report {
    let mut options = AuditOptions::new(
        payment_engine::config::Settings::defaults()
            .buyers
            .max_balance
            .get(),
    );
    options.buyer = buyer;
    options.charge_events = charges;
    options.chunk_buyers = 3; // several chunks even in a small database
    audit(conn, &options, &mut |_| {}).expect("the audit runs")
}

/// The whole database audited by `jobs` chunk workers (three buyers per chunk), each further
/// worker on its own connection to `url`, listing at most `max_findings`.
pub fn audit_in_parallel(
    conn: &mut MysqlConnection,
    url: &str,
    jobs: usize,
    max_findings: usize,
) -> Report {
    let mut options = AuditOptions::new(
        payment_engine::config::Settings::defaults()
            .buyers
            .max_balance
            .get(),
    );
    options.chunk_buyers = 3;
    options.jobs = jobs;
    options.max_findings = max_findings;
    let connect = || MysqlConnection::establish(url).map_err(|e| anyhow::anyhow!("{e}"));
    audit_with_jobs(conn, connect, &options, &mut |_| {}).expect("the audit runs")
}

/// Two reports of one database say the same (all but how long they took).
#[track_caller]
pub fn assert_same_report(one: &Report, other: &Report) {
    assert_eq!(one.findings.kept, other.findings.kept);
    assert_eq!(one.findings.counts, other.findings.counts);
    assert_eq!(one.checked, other.checked);
    assert_eq!(one.chunks, other.chunks);
    assert_eq!(one.charge_events_checked, other.charge_events_checked);
    assert_eq!(
        format!("{:?}", one.watermarks),
        format!("{:?}", other.watermarks)
    );
}

/// The kinds found per buyer (findings without a buyer under 0).
pub fn kinds_by_buyer(report: &Report) -> BTreeMap<i64, BTreeSet<&'static str>> {
    let mut kinds: BTreeMap<i64, BTreeSet<&'static str>> = BTreeMap::new();
    for finding in &report.findings.kept {
        kinds
            .entry(finding.buyer_id.unwrap_or(0))
            .or_default()
            .insert(finding.kind.name());
    }
    kinds
}

/// Runs one statement (or several, `;`-separated, in order) on the test database.
pub fn plant(conn: &mut MysqlConnection, sql: &str) {
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        diesel::sql_query(statement)
            .execute(conn)
            .unwrap_or_else(|e| panic!("planting `{statement}`: {e}"));
    }
}

/// A well-formed partial refund of `amount` of the buyer's payment, written as the engine's
/// refund command writes one: refund row, REFUND ledger entry (version 3), balance, refunded
/// amount, order status and payment.refunded event.
pub fn refund(conn: &mut MysqlConnection, buyer: &Buyer, refund_id: i64, amount: i64) {
    let (order, payment) = (buyer.paid_order.unwrap(), buyer.payment.unwrap());
    let balance = CHARGED - PAID_TOTAL + amount;
    assert!(order_row(conn, order).is_some());
    let b = buyer.id;
    plant(
        conn,
        &format!(
            "INSERT INTO refunds (id, payment_id, order_id, buyer_id, amount, reason, \
             balance_after, ledger_version, refunded_at) VALUES ({refund_id}, {payment}, \
             {order}, {b}, {amount}, 'test', {balance}, 3, '2030-01-01 00:00:00');
             INSERT INTO ledger_entries (buyer_id, version, kind, amount, balance_after, \
             order_id, payment_id, refund_id, created_at) VALUES ({b}, 3, 'REFUND', {amount}, \
             {balance}, {order}, {payment}, {refund_id}, '2030-01-01 00:00:00');
             UPDATE balances SET balance = {balance}, version = 3 WHERE buyer_id = {b};
             UPDATE payments SET refunded_amount = {amount} WHERE id = {payment};
             UPDATE orders SET status = 'PARTIALLY_REFUNDED' WHERE id = {order};
             INSERT INTO outbox_events (event_id, event_type, schema_version, buyer_id, \
             payload, occurred_at) VALUES (UUID(), 'payment.refunded', 1, {b}, \
             '{{\"data\":{{\"refundId\":{refund_id},\"paymentId\":{payment}}}}}', \
             '2030-01-01 00:00:00')"
        ),
    );
}

/// Cancels the buyer's PENDING order as the engine's cancel command does (with its event).
pub fn cancel(conn: &mut MysqlConnection, buyer: &Buyer) {
    let (order, b) = (buyer.pending_order.unwrap(), buyer.id);
    plant(
        conn,
        &format!(
            "UPDATE orders SET status = 'CANCELLED', cancelled_at = '2030-01-01 00:00:00' \
             WHERE id = {order};
             INSERT INTO outbox_events (event_id, event_type, schema_version, buyer_id, \
             payload, occurred_at) VALUES (UUID(), 'order.cancelled', 1, {b}, \
             '{{\"data\":{{\"orderId\":{order}}}}}', '2030-01-01 00:00:00')"
        ),
    );
}
