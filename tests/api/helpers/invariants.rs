//! The books checked in SQL: invariants every buyer's ledger, balance, orders and payments keep.

use std::collections::{HashMap, HashSet};

use diesel::mysql::MysqlConnection;
use serde_json::Value;

use super::response::{int, rfc3339};
use super::sql::{
    LedgerEntry, all_buyers, balance_row, ledger, ledger_summary, order_row, orders_of,
    payments_for_order, payments_of,
};

/// The books of one buyer, checked in SQL:
/// - ledger versions are exactly 1..=n, each entry's balance_after is the running sum, never < 0;
/// - the balances row (present iff n > 0) holds balance == SUM(amount) and version == n;
/// - CHARGE entries are positive and name no order; PAYMENT entries are negative and name the
///   payment and order they record;
/// - each PAID order has exactly one payment row (matching price, buyer and ledger entry), each
///   PENDING order none, and each payment row's order is PAID.
#[track_caller]
pub fn assert_buyer_invariants(conn: &mut MysqlConnection, buyer: i64) {
    let entries = ledger(conn, buyer);
    let running = assert_ledger_entries(buyer, &entries);
    assert_balance_row(conn, buyer, &entries, running);
    assert_payments(conn, buyer, &entries);
    assert_orders(conn, buyer);
}

/// Versions 1..=n, running balances never below zero, and well-formed CHARGE and PAYMENT
/// entries; returns the final running balance.
#[track_caller]
fn assert_ledger_entries(buyer: i64, entries: &[LedgerEntry]) -> i64 {
    let versions: Vec<i64> = entries.iter().map(|e| e.version).collect();
    let expected: Vec<i64> = (1..=entries.len() as i64).collect();
    assert_eq!(
        versions, expected,
        "buyer {buyer}: ledger versions must be 1..=n without gaps"
    );

    let mut running: i64 = 0;
    for entry in entries {
        running += entry.amount;
        assert_eq!(
            entry.balance_after, running,
            "buyer {buyer}: entry {entry:?} balance_after must be the running sum"
        );
        assert!(
            running >= 0,
            "buyer {buyer}: balance went negative at {entry:?}"
        );
        match entry.kind.as_str() {
            "CHARGE" => {
                assert!(
                    entry.amount > 0,
                    "buyer {buyer}: a CHARGE must be positive: {entry:?}"
                );
                assert_eq!(
                    (entry.order_id, entry.payment_id),
                    (None, None),
                    "buyer {buyer}: a CHARGE names no order or payment: {entry:?}"
                );
            }
            "PAYMENT" => {
                assert!(
                    entry.amount < 0,
                    "buyer {buyer}: a PAYMENT must be negative: {entry:?}"
                );
                assert!(
                    entry.order_id.is_some() && entry.payment_id.is_some(),
                    "buyer {buyer}: a PAYMENT names its order and payment: {entry:?}"
                );
            }
            other => panic!("buyer {buyer}: unknown ledger kind {other:?}"),
        }
    }
    running
}

/// The balances row matches the ledger's sum and count (and exists iff the ledger is not empty).
#[track_caller]
fn assert_balance_row(
    conn: &mut MysqlConnection,
    buyer: i64,
    entries: &[LedgerEntry],
    running: i64,
) {
    let summary = ledger_summary(conn, buyer);
    assert_eq!(summary.sum, running, "buyer {buyer}: SUM(amount)");
    match balance_row(conn, buyer) {
        None => assert!(
            entries.is_empty(),
            "buyer {buyer}: ledger entries but no balances row"
        ),
        Some(row) => {
            assert_eq!(
                (row.balance, row.version),
                (summary.sum, summary.count),
                "buyer {buyer}: balances row must equal (SUM(amount), COUNT(*)) of the ledger"
            );
            assert_eq!(
                summary.max_version,
                Some(summary.count),
                "buyer {buyer}: MAX(version)"
            );
            assert!(
                row.balance >= 0,
                "buyer {buyer}: negative balance {}",
                row.balance
            );
        }
    }
}

/// One payment row per PAYMENT entry, each for a distinct PAID order of this buyer and matching
/// its ledger entry.
#[track_caller]
fn assert_payments(conn: &mut MysqlConnection, buyer: i64, entries: &[LedgerEntry]) {
    let payments = payments_of(conn, buyer);
    let by_version: HashMap<i64, &LedgerEntry> = entries.iter().map(|e| (e.version, e)).collect();
    let payment_entries = entries.iter().filter(|e| e.kind == "PAYMENT").count();
    assert_eq!(
        payments.len(),
        payment_entries,
        "buyer {buyer}: one payment row per PAYMENT ledger entry; payments {payments:?}"
    );
    let mut paid_orders = HashSet::new();
    for payment in &payments {
        assert!(
            paid_orders.insert(payment.order_id),
            "buyer {buyer}: order paid twice: {payments:?}"
        );
        let order = order_row(conn, payment.order_id)
            .unwrap_or_else(|| panic!("buyer {buyer}: payment {payment:?} of a missing order"));
        assert_eq!(
            order.buyer_id, buyer,
            "buyer {buyer}: paid someone else's order {order:?}"
        );
        assert_eq!(
            (order.status.as_str(), order.has_paid_at),
            ("PAID", 1),
            "buyer {buyer}: the order of payment {payment:?} must be PAID with paid_at"
        );
        assert_eq!(
            payment.amount.abs(),
            order.total_price,
            "buyer {buyer}: payment amount {payment:?} vs {order:?}"
        );
        let entry = by_version.get(&payment.ledger_version).unwrap_or_else(|| {
            panic!("buyer {buyer}: payment {payment:?} names a missing ledger version")
        });
        assert_eq!(
            (
                entry.kind.as_str(),
                entry.amount,
                entry.balance_after,
                entry.order_id,
                entry.payment_id
            ),
            (
                "PAYMENT",
                -order.total_price,
                payment.balance_after,
                Some(payment.order_id),
                Some(payment.id)
            ),
            "buyer {buyer}: ledger entry of payment {payment:?}"
        );
    }
}

/// PAID orders have exactly one payment and a paid_at; PENDING orders neither.
#[track_caller]
fn assert_orders(conn: &mut MysqlConnection, buyer: i64) {
    for order in orders_of(conn, buyer) {
        let count = payments_for_order(conn, order.id).len();
        match order.status.as_str() {
            "PAID" => {
                assert_eq!(
                    count, 1,
                    "buyer {buyer}: PAID order {order:?} needs exactly one payment"
                );
                assert_eq!(
                    order.has_paid_at, 1,
                    "buyer {buyer}: PAID order {order:?} without paid_at"
                );
            }
            "PENDING" => {
                assert_eq!(
                    count, 0,
                    "buyer {buyer}: PENDING order {order:?} has a payment"
                );
                assert_eq!(
                    order.has_paid_at, 0,
                    "buyer {buyer}: PENDING order {order:?} with paid_at"
                );
            }
            other => panic!(
                "buyer {buyer}: order {} has unknown status {other:?}",
                order.id
            ),
        }
    }
}

/// [`assert_buyer_invariants`] for every buyer in the database.
#[track_caller]
pub fn assert_all_invariants(conn: &mut MysqlConnection) {
    for buyer in all_buyers(conn) {
        assert_buyer_invariants(conn, buyer);
    }
}

/// Checks one history entry against the ledger row of the same version.
#[track_caller]
pub fn assert_entry_matches_ledger(entry: &Value, row: &LedgerEntry) {
    assert_eq!(
        (
            int(entry, "version"),
            entry["kind"].as_str(),
            int(entry, "amount"),
            int(entry, "balanceAfter"),
            entry["orderId"].as_i64(),
            entry["paymentId"].as_i64(),
        ),
        (
            row.version,
            Some(row.kind.as_str()),
            row.amount,
            row.balance_after,
            row.order_id,
            row.payment_id
        ),
        "history entry {entry} vs ledger row {row:?}"
    );
    rfc3339(entry, "createdAt");
}
