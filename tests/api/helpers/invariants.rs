//! The books checked in SQL: `payment-engine audit`'s library call, the one definition of "the
//! books are right" (balances against ledgers, versions, payments, orders, refunds, events), so
//! the suite, the drills and the load tests check the same invariants the operator's command
//! does.

use diesel::mysql::MysqlConnection;
use payment_engine::audit::{AuditOptions, ChargeEvents, Report, audit};
use serde_json::Value;

use super::response::{int, rfc3339};
use super::sql::LedgerEntry;

/// The audit of the database (or of one buyer). The balance bound is left at its widest: tests
/// that raise `MAX_BALANCE_POINTS` must not fail here, the engine enforces its own bound.
pub fn audit_books(conn: &mut MysqlConnection, buyer: Option<i64>) -> Report {
    let mut options = AuditOptions::new(i64::MAX);
    options.buyer = buyer;
    options.charge_events = ChargeEvents::Auto;
    audit(conn, &options, &mut |_| {}).unwrap_or_else(|e| panic!("the audit could not run: {e}"))
}

#[track_caller]
fn assert_clean(report: &Report, what: &str) {
    assert!(
        report.is_clean(),
        "{what}: payment-engine audit found {} problem(s): {:#?}",
        report.findings.total(),
        report.findings.kept
    );
}

/// The books of one buyer are right, as `payment-engine audit --buyer` checks them: balance ==
/// ledger sum within bounds, versions 1..n, every payment with its entry and its paid order,
/// every order paid at most once, refunds within their payment, every event in the outbox.
#[track_caller]
pub fn assert_buyer_invariants(conn: &mut MysqlConnection, buyer: i64) {
    assert_clean(&audit_books(conn, Some(buyer)), &format!("buyer {buyer}"));
}

/// [`assert_buyer_invariants`] for every buyer in the database.
#[track_caller]
pub fn assert_all_invariants(conn: &mut MysqlConnection) {
    assert_clean(&audit_books(conn, None), "the database");
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
