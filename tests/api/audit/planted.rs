//! One database, one buyer per planted inconsistency: the audit must name exactly the kinds each
//! plant breaks, on that buyer, and nothing on the buyers left alone.

use std::collections::BTreeSet;

use payment_engine::audit::{ChargeEvents, FindingKind};

use super::{
    Buyer, assert_same_report, audit_in_parallel, audit_of, cancel, charged, kinds_by_buyer, paid,
    plant, refund,
};
use crate::helpers::{TestApp, spawn_app};

/// How a buyer starts before the plant.
#[derive(Clone, Copy)]
enum Setup {
    Charged,
    Paid,
    /// Paid, then 40 of the payment refunded.
    Refunded,
    /// Paid, and the PENDING order cancelled.
    Cancelled,
}

/// (setup, SQL with `{b}` buyer, `{o}` paid order, `{p}` payment, `{q}` pending order, `{r}`
/// refund; kinds the audit must name for this buyer).
const PLANTS: &[(Setup, &str, &[&str])] = &[
    (
        Setup::Charged,
        "UPDATE balances SET balance = balance + 1 WHERE buyer_id = {b}",
        &["balance_mismatch"],
    ),
    (
        Setup::Charged,
        "UPDATE balances SET version = version + 1 WHERE buyer_id = {b}",
        &["version_mismatch"],
    ),
    (
        Setup::Charged,
        "UPDATE ledger_entries SET version = 5 WHERE buyer_id = {b} AND version = 2",
        &["version_gap"],
    ),
    (
        Setup::Charged,
        "INSERT INTO ledger_entries (buyer_id, version, kind, amount, balance_after, created_at) \
      VALUES ({b}, 3, 'CHARGE', 1000000000000, 1000000001500, NOW(6)); \
      UPDATE balances SET balance = 1000000001500, version = 3 WHERE buyer_id = {b}",
        &["balance_out_of_bounds"],
    ),
    (
        Setup::Charged,
        "DELETE FROM ledger_entries WHERE buyer_id = {b}",
        &["balance_without_ledger"],
    ),
    (
        Setup::Charged,
        "DELETE FROM balances WHERE buyer_id = {b}",
        &["ledger_without_balance"],
    ),
    (
        Setup::Charged,
        "UPDATE ledger_entries SET balance_after = balance_after + 1 WHERE buyer_id = {b} AND version = 1",
        &["ledger_chain_broken"],
    ),
    (
        Setup::Charged,
        "UPDATE ledger_entries SET order_id = 999999 WHERE buyer_id = {b} AND version = 1",
        &["ledger_entry_malformed"],
    ),
    (
        Setup::Paid,
        "UPDATE payments SET balance_after = balance_after + 1 WHERE id = {p}",
        &["payment_ledger_mismatch"],
    ),
    (
        Setup::Paid,
        "DELETE FROM orders WHERE id = {o}",
        &["payment_order_missing"],
    ),
    (
        Setup::Paid,
        "UPDATE orders SET total_price = total_price + 1 WHERE id = {o}",
        &["payment_order_mismatch"],
    ),
    (
        Setup::Paid,
        "UPDATE orders SET status = 'PENDING', paid_at = NULL WHERE id = {o}",
        &["payment_order_not_paid", "unpaid_order_with_payment"],
    ),
    (
        Setup::Paid,
        "DELETE FROM payments WHERE id = {p}",
        &[
            "ledger_payment_missing",
            "paid_order_without_payment",
            "event_orphan",
        ],
    ),
    (
        Setup::Paid,
        "ALTER TABLE payments DROP INDEX payments_order; \
      INSERT INTO payments (id, order_id, buyer_id, amount, refunded_amount, balance_after, \
      ledger_version, paid_at) VALUES ({p} + 1000000, {o}, {b}, 100, 0, 900, 2, NOW(6))",
        &[
            "order_paid_twice",
            "payment_ledger_mismatch",
            "event_missing",
        ],
    ),
    (
        Setup::Paid,
        "UPDATE orders SET status = 'PAID', paid_at = NOW(6) WHERE id = {q}",
        &["paid_order_without_payment"],
    ),
    (
        Setup::Paid,
        "UPDATE orders SET paid_at = NULL WHERE id = {o}",
        &["order_timestamps_mismatch"],
    ),
    (
        Setup::Paid,
        "UPDATE orders SET status = 'REFUNDED' WHERE id = {o}",
        &["order_status_refund_mismatch"],
    ),
    (
        Setup::Refunded,
        "UPDATE payments SET refunded_amount = 50 WHERE id = {p}",
        &["refunds_sum_mismatch"],
    ),
    (
        Setup::Refunded,
        "SET SESSION check_constraint_checks = 0; UPDATE payments SET refunded_amount = 150 WHERE id = {p}; \
      SET SESSION check_constraint_checks = 1",
        &[
            "refund_exceeds_payment",
            "refunds_sum_mismatch",
            "order_status_refund_mismatch",
        ],
    ),
    (
        Setup::Refunded,
        "UPDATE refunds SET balance_after = balance_after + 1 WHERE id = {r}",
        &["refund_ledger_mismatch"],
    ),
    (
        Setup::Refunded,
        "UPDATE refunds SET order_id = 999999 WHERE id = {r}",
        &["refund_payment_mismatch", "refund_ledger_mismatch"],
    ),
    (
        Setup::Refunded,
        "DELETE FROM refunds WHERE id = {r}",
        &[
            "ledger_refund_missing",
            "refunds_sum_mismatch",
            "event_orphan",
        ],
    ),
    (
        Setup::Paid,
        "DELETE FROM outbox_events WHERE buyer_id = {b}",
        &["event_missing"],
    ),
    (
        Setup::Cancelled,
        "DELETE FROM outbox_events WHERE buyer_id = {b} AND event_type = 'order.cancelled'",
        &["event_missing"],
    ),
    (
        Setup::Refunded,
        "DELETE FROM outbox_events WHERE buyer_id = {b} AND event_type = 'payment.refunded'",
        &["event_missing"],
    ),
    (
        Setup::Charged,
        "INSERT INTO outbox_events (event_id, event_type, schema_version, buyer_id, payload, occurred_at) \
      VALUES (UUID(), 'payment.completed', 1, {b}, '{\"data\":{\"paymentId\":987654321}}', NOW(6))",
        &["event_orphan"],
    ),
    (
        Setup::Paid,
        "INSERT INTO outbox_events (event_id, event_type, schema_version, buyer_id, payload, occurred_at) \
      SELECT UUID(), event_type, schema_version, buyer_id, payload, occurred_at FROM outbox_events \
      WHERE buyer_id = {b}",
        &["event_duplicate"],
    ),
    (
        Setup::Charged,
        "INSERT INTO outbox_events (event_id, event_type, schema_version, buyer_id, payload, occurred_at) \
      VALUES (UUID(), 'payment.completed', 1, {b}, 'not json', NOW(6))",
        &["event_unreadable"],
    ),
    (
        Setup::Paid,
        "UPDATE outbox_events SET status = 'DEAD', attempts = 5, last_error = 'poison' WHERE buyer_id = {b}",
        &["event_dead"],
    ),
];

/// Buyers with no plant, one of each setup: they must stay clean.
const UNTOUCHED: [Setup; 4] = [
    Setup::Charged,
    Setup::Paid,
    Setup::Refunded,
    Setup::Cancelled,
];

async fn set_up(app: &TestApp, id: i64, setup: Setup) -> Buyer {
    let buyer = match setup {
        Setup::Charged => charged(app, id).await,
        _ => paid(app, id).await,
    };
    let mut conn = app.db_conn();
    match setup {
        Setup::Refunded => refund(&mut conn, &buyer, 500 + id, 40),
        Setup::Cancelled => cancel(&mut conn, &buyer),
        _ => {}
    }
    buyer
}

fn sql_for(template: &str, buyer: &Buyer, id: i64) -> String {
    let or_zero = |id: Option<i64>| id.unwrap_or(0).to_string();
    template
        .replace("{b}", &buyer.id.to_string())
        .replace("{o}", &or_zero(buyer.paid_order))
        .replace("{p}", &or_zero(buyer.payment))
        .replace("{q}", &or_zero(buyer.pending_order))
        .replace("{r}", &(500 + id).to_string())
}

#[actix_web::test]
async fn every_planted_inconsistency_is_found_and_named_on_its_buyer_only() {
    let app = spawn_app().await;
    let mut buyers = Vec::new();
    for (i, (setup, _, _)) in PLANTS.iter().enumerate() {
        buyers.push(set_up(&app, 100 + i as i64, *setup).await);
    }
    let mut untouched = Vec::new();
    for (i, setup) in UNTOUCHED.iter().enumerate() {
        untouched.push(set_up(&app, 900 + i as i64, *setup).await);
    }
    let mut conn = app.db_conn();
    let before = audit_of(&mut conn, None, ChargeEvents::Auto);
    assert!(
        before.is_clean(),
        "before planting: {:#?}",
        before.findings.kept
    );

    for ((_, template, _), buyer) in PLANTS.iter().zip(&buyers) {
        plant(&mut conn, &sql_for(template, buyer, buyer.id));
    }
    let report = audit_of(&mut conn, None, ChargeEvents::Auto);
    let found = kinds_by_buyer(&report);
    for ((_, template, expected), buyer) in PLANTS.iter().zip(&buyers) {
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(
            found.get(&buyer.id).cloned().unwrap_or_default(),
            expected,
            "buyer {} after `{template}`: {:#?}",
            buyer.id,
            report
                .findings
                .kept
                .iter()
                .filter(|f| f.buyer_id == Some(buyer.id))
                .collect::<Vec<_>>()
        );
    }
    for buyer in &untouched {
        assert!(
            !found.contains_key(&buyer.id),
            "untouched buyer {} flagged: {found:?}",
            buyer.id
        );
    }
    let named: BTreeSet<&str> = found.values().flatten().copied().collect();
    for kind in FindingKind::ALL {
        assert!(
            named.contains(kind.name()),
            "no plant makes the audit name {}",
            kind.name()
        );
    }
    parallel_workers_report_what_one_does(&app, &mut conn);
}

/// Chunk workers on their own connections: the same report as one worker's, every finding
/// listed or only the first few (which few must not depend on which chunk finished first).
fn parallel_workers_report_what_one_does(app: &TestApp, conn: &mut diesel::MysqlConnection) {
    let url = app.db.url();
    for max_findings in [1_000, 5] {
        let one = audit_in_parallel(conn, &url, 1, max_findings);
        assert!(
            one.chunks > 4,
            "enough chunks for four workers: {}",
            one.chunks
        );
        let listed = one.findings.kept.len() as u64;
        assert_eq!(
            one.findings.truncated(),
            max_findings == 5,
            "{listed} listed"
        );
        for jobs in [2, 4] {
            let many = audit_in_parallel(conn, &url, jobs, max_findings);
            assert_same_report(&one, &many);
        }
    }
}

#[actix_web::test]
async fn the_audit_of_one_buyer_sees_only_that_buyer() {
    let app = spawn_app().await;
    let broken = paid(&app, 7).await;
    let clean = paid(&app, 8).await;
    let mut conn = app.db_conn();
    plant(
        &mut conn,
        &format!(
            "UPDATE balances SET balance = 1 WHERE buyer_id = {}",
            broken.id
        ),
    );
    plant(
        &mut conn,
        "UPDATE outbox_events SET status = 'DEAD' WHERE buyer_id = 7",
    );

    let one = audit_of(&mut conn, Some(broken.id), ChargeEvents::Auto);
    assert_eq!(one.checked.balances, 1);
    assert_eq!(one.checked.payments, 1);
    let found = kinds_by_buyer(&one);
    assert_eq!(found.keys().copied().collect::<Vec<_>>(), vec![broken.id]);
    assert_eq!(
        found[&broken.id],
        BTreeSet::from(["balance_mismatch", "event_dead"])
    );
    let other = audit_of(&mut conn, Some(clean.id), ChargeEvents::Auto);
    assert!(other.is_clean(), "{:#?}", other.findings.kept);
    assert_eq!((other.checked.balances, other.checked.orders), (1, 2));
}

#[actix_web::test]
async fn charges_need_their_events_once_charge_events_are_on() {
    let app = crate::helpers::spawn_app_with(|s| s.kafka.emit_charge_events = true).await;
    let buyer = paid(&app, 3).await;
    let mut conn = app.db_conn();
    let report = audit_of(&mut conn, None, ChargeEvents::Auto);
    assert!(
        report.charge_events_checked,
        "auto must see the charge events"
    );
    assert!(report.is_clean(), "{:#?}", report.findings.kept);
    assert_eq!(report.checked.events, 2, "one charge and one payment event");

    plant(
        &mut conn,
        "DELETE FROM outbox_events WHERE event_type = 'points.charged'",
    );
    let off = audit_of(&mut conn, None, ChargeEvents::Off);
    assert!(off.is_clean(), "{:#?}", off.findings.kept);
    let on = audit_of(&mut conn, None, ChargeEvents::On);
    let missing: Vec<_> = on
        .findings
        .kept
        .iter()
        .map(|f| (f.kind.name(), f.buyer_id, f.version))
        .collect();
    assert_eq!(missing, vec![("event_missing", Some(buyer.id), Some(1))]);
}
