//! Demo data with the id ranges of the original k6 scripts: buyers 1..7, orders 1..107.

use chrono::Utc;
use diesel::prelude::*;

use crate::db::models::{BalanceRow, LedgerRow, OrderRow};
use crate::db::queries;
use crate::db::schema::{balances, ledger_entries, orders};
use crate::domain::{EntryKind, OrderStatus};

pub const DEMO_BUYERS: i64 = 7;
pub const DEMO_ORDERS: i64 = 107;
pub const DEMO_STARTING_BALANCE: i64 = 1_000_000;

/// The buyer a demo order belongs to.
pub fn demo_order_buyer(order_id: i64) -> i64 {
    (order_id - 1) % DEMO_BUYERS + 1
}

/// The total of a demo order.
pub fn demo_order_total(order_id: i64) -> i64 {
    1000 + (order_id % 10) * 100
}

/// Loads the demo data unless a buyer or order with its ids already exists (then it does
/// nothing and says so). Returns whether it seeded.
pub fn seed_demo_data(conn: &mut MysqlConnection) -> anyhow::Result<bool> {
    let seeded = conn.transaction::<bool, diesel::result::Error, _>(|conn| {
        let existing_buyers: i64 = balances::table
            .filter(balances::buyer_id.between(1, DEMO_BUYERS))
            .count()
            .get_result(conn)?;
        let existing_orders: i64 = orders::table
            .filter(orders::id.between(1, DEMO_ORDERS))
            .count()
            .get_result(conn)?;
        if existing_buyers > 0 || existing_orders > 0 {
            return Ok(false);
        }
        let now = Utc::now().naive_utc();
        let buyers: Vec<BalanceRow> = (1..=DEMO_BUYERS)
            .map(|buyer_id| BalanceRow {
                buyer_id,
                balance: DEMO_STARTING_BALANCE,
                version: 1,
                fence_token: 0,
                updated_at: now,
            })
            .collect();
        let entries: Vec<LedgerRow> = (1..=DEMO_BUYERS)
            .map(|buyer_id| LedgerRow {
                buyer_id,
                version: 1,
                kind: EntryKind::Charge,
                amount: DEMO_STARTING_BALANCE,
                balance_after: DEMO_STARTING_BALANCE,
                order_id: None,
                payment_id: None,
                refund_id: None,
                created_at: now,
            })
            .collect();
        let demo_orders: Vec<OrderRow> = (1..=DEMO_ORDERS)
            .map(|id| OrderRow {
                id,
                buyer_id: demo_order_buyer(id),
                total_price: demo_order_total(id),
                status: OrderStatus::Pending,
                created_at: now,
                paid_at: None,
                cancelled_at: None,
            })
            .collect();
        diesel::insert_into(balances::table)
            .values(&buyers)
            .execute(conn)?;
        diesel::insert_into(ledger_entries::table)
            .values(&entries)
            .execute(conn)?;
        diesel::insert_into(orders::table)
            .values(&demo_orders)
            .execute(conn)?;
        queries::advance_sequence_past(conn, "orders", DEMO_ORDERS)?;
        Ok(true)
    })?;
    Ok(seeded)
}
