//! Payments, orders and refunds: each against its ledger entry and against each other.

use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use super::books::EntryKinds;
use super::{Checked, Chunk, Finding, FindingKind, Findings};

#[derive(QueryableByName)]
struct CountSql {
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    /// 0: payments, 1: refunds, 2: orders.
    #[diesel(sql_type = BigInt)]
    table_index: i64,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Per buyer, rows of payments, refunds and orders (index-only counts).
const COUNTS: &str = "\
    SELECT buyer_id, 0 AS table_index, COUNT(*) AS n FROM payments \
      WHERE buyer_id BETWEEN ? AND ? GROUP BY buyer_id \
    UNION ALL SELECT buyer_id, 1, COUNT(*) FROM refunds \
      WHERE buyer_id BETWEEN ? AND ? GROUP BY buyer_id \
    UNION ALL SELECT 0, 2, COUNT(*) FROM orders WHERE buyer_id BETWEEN ? AND ?";

/// Checks the chunk's payments, orders, refunds and the ledger entries that name them
/// (`entry_kinds`: each buyer's PAYMENT and REFUND entries, from the ledger pass).
pub(super) fn check(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    entry_kinds: &EntryKinds,
    findings: &mut Findings,
) -> QueryResult<Checked> {
    let counts: Vec<CountSql> = bind_chunk!(diesel::sql_query(COUNTS), chunk, 3).load(conn)?;
    let mut rows = EntryKinds::new();
    let mut checked = Checked::default();
    for count in &counts {
        match count.table_index {
            0 | 1 => rows.entry(count.buyer_id).or_default()[count.table_index as usize] = count.n,
            _ => checked.orders = count.n as u64,
        }
    }
    checked.payments = rows.values().map(|[p, _]| *p as u64).sum();
    checked.refunds = rows.values().map(|[_, r]| *r as u64).sum();
    let unmatched_before = unmatched(findings);
    check_payments(conn, chunk, findings)?;
    check_orders(conn, chunk, findings)?;
    check_refunds(conn, chunk, findings)?;
    // Every payment (refund) matched its own entry, so if a buyer has as many PAYMENT (REFUND)
    // entries as payments (refunds), every entry has its row: look entry by entry only if not.
    let same_counts = |kinds: &EntryKinds, other: &EntryKinds| {
        kinds
            .iter()
            .filter(|(_, k)| **k != [0, 0])
            .eq(other.iter().filter(|(_, k)| **k != [0, 0]))
    };
    if unmatched(findings) > unmatched_before || !same_counts(entry_kinds, &rows) {
        check_ledger_references(conn, chunk, findings)?;
    }
    Ok(checked)
}

/// Payments and refunds found without their own ledger entry so far.
fn unmatched(findings: &Findings) -> u64 {
    findings.counts[&FindingKind::PaymentLedgerMismatch]
        + findings.counts[&FindingKind::RefundLedgerMismatch]
}

/// A payment that breaks one of the rules, with which ones it breaks.
#[derive(QueryableByName)]
struct PaymentSql {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    order_id: i64,
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = BigInt)]
    refunded_amount: i64,
    #[diesel(sql_type = BigInt)]
    refunds_total: i64,
    #[diesel(sql_type = Nullable<Text>)]
    order_status: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    ledger_bad: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    order_missing: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    order_mismatch: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    order_not_paid: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    status_bad: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    refunds_bad: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    exceeds: Option<bool>,
}

/// Each payment has its PAYMENT entry (amount, payment, order, balance after) at its version; its
/// order exists, is the buyer's, of its amount, and paid; its refunds sum to `refunded_amount`,
/// at most its amount; and the order's status says how much was refunded.
const PAYMENTS: &str = "\
    SELECT p.id, p.order_id, p.buyer_id, p.amount, p.refunded_amount, \
      COALESCE(r.total, 0) AS refunds_total, o.status AS order_status, \
      NOT (l.buyer_id IS NOT NULL AND l.kind = 'PAYMENT' AND l.amount = -p.amount \
           AND l.payment_id <=> p.id AND l.order_id <=> p.order_id \
           AND l.balance_after = p.balance_after) AS ledger_bad, \
      o.id IS NULL AS order_missing, \
      (o.buyer_id <> p.buyer_id OR o.total_price <> p.amount) AS order_mismatch, \
      o.status NOT IN ('PAID', 'PARTIALLY_REFUNDED', 'REFUNDED') AS order_not_paid, \
      NOT ((o.status = 'PAID' AND p.refunded_amount = 0) \
        OR (o.status = 'PARTIALLY_REFUNDED' AND p.refunded_amount > 0 \
            AND p.refunded_amount < p.amount) \
        OR (o.status = 'REFUNDED' AND p.amount > 0 AND p.refunded_amount = p.amount) \
        OR o.status NOT IN ('PAID', 'PARTIALLY_REFUNDED', 'REFUNDED')) AS status_bad, \
      COALESCE(r.total, 0) <> p.refunded_amount AS refunds_bad, \
      (p.refunded_amount < 0 OR p.refunded_amount > p.amount \
        OR COALESCE(r.total, 0) > p.amount) AS exceeds \
    FROM payments p \
    LEFT JOIN ledger_entries l ON l.buyer_id = p.buyer_id AND l.version = p.ledger_version \
    LEFT JOIN orders o ON o.id = p.order_id \
    LEFT JOIN (SELECT payment_id, CAST(SUM(amount) AS SIGNED) AS total FROM refunds \
               WHERE buyer_id BETWEEN ? AND ? GROUP BY payment_id) r ON r.payment_id = p.id \
    WHERE p.buyer_id BETWEEN ? AND ? \
    HAVING ledger_bad OR order_missing OR order_mismatch OR order_not_paid OR status_bad \
      OR refunds_bad OR exceeds";

fn check_payments(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    findings: &mut Findings,
) -> QueryResult<()> {
    let rows: Vec<PaymentSql> = bind_chunk!(diesel::sql_query(PAYMENTS), chunk, 2).load(conn)?;
    for p in rows {
        let status = p.order_status.as_deref().unwrap_or("none");
        let broken = [
            (
                p.ledger_bad,
                FindingKind::PaymentLedgerMismatch,
                format!(
                    "payment of {} has no matching PAYMENT ledger entry at its version",
                    p.amount
                ),
            ),
            (
                p.order_missing,
                FindingKind::PaymentOrderMissing,
                "the payment's order does not exist".to_owned(),
            ),
            (
                p.order_mismatch,
                FindingKind::PaymentOrderMismatch,
                format!(
                    "the order is another buyer's or not of the payment's amount {}",
                    p.amount
                ),
            ),
            (
                p.order_not_paid,
                FindingKind::PaymentOrderNotPaid,
                format!("the paid order is {status}"),
            ),
            (
                p.status_bad,
                FindingKind::OrderStatusRefundMismatch,
                format!(
                    "order {status} but {} of {} refunded",
                    p.refunded_amount, p.amount
                ),
            ),
            (
                p.refunds_bad,
                FindingKind::RefundsSumMismatch,
                format!(
                    "refunds sum to {} but refunded_amount is {}",
                    p.refunds_total, p.refunded_amount
                ),
            ),
            (
                p.exceeds,
                FindingKind::RefundExceedsPayment,
                format!(
                    "refunded {} (refunds {}) of a payment of {}",
                    p.refunded_amount, p.refunds_total, p.amount
                ),
            ),
        ];
        for (flag, kind, detail) in broken {
            if flag == Some(true) {
                let finding = Finding::new(kind, Some(p.buyer_id), detail);
                findings.push(finding.order(Some(p.order_id)).payment(Some(p.id)));
            }
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct OrderSql {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    payments: i64,
    #[diesel(sql_type = Nullable<Bool>)]
    timestamps_bad: Option<bool>,
}

/// Orders paid more than once, paid (or refunded) ones without a payment, PENDING or CANCELLED
/// ones with one, and timestamps that do not match the status.
const ORDERS: &str = "\
    SELECT o.id, o.buyer_id, o.status, COUNT(p.id) AS payments, \
      NOT CASE o.status \
        WHEN 'PENDING' THEN o.paid_at IS NULL AND o.cancelled_at IS NULL \
        WHEN 'CANCELLED' THEN o.paid_at IS NULL AND o.cancelled_at IS NOT NULL \
        ELSE o.paid_at IS NOT NULL AND o.cancelled_at IS NULL END AS timestamps_bad \
    FROM orders o LEFT JOIN payments p ON p.order_id = o.id \
    WHERE o.buyer_id BETWEEN ? AND ? \
    GROUP BY o.id, o.buyer_id, o.status, o.paid_at, o.cancelled_at \
    HAVING payments > 1 OR timestamps_bad \
      OR (o.status IN ('PAID', 'PARTIALLY_REFUNDED', 'REFUNDED') AND payments = 0) \
      OR (o.status IN ('PENDING', 'CANCELLED') AND payments > 0)";

fn check_orders(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    findings: &mut Findings,
) -> QueryResult<()> {
    let rows: Vec<OrderSql> = bind_chunk!(diesel::sql_query(ORDERS), chunk, 1).load(conn)?;
    for o in rows {
        let paid = matches!(
            o.status.as_str(),
            "PAID" | "PARTIALLY_REFUNDED" | "REFUNDED"
        );
        let mut found = |kind: FindingKind, detail: String| {
            findings.push(Finding::new(kind, Some(o.buyer_id), detail).order(Some(o.id)));
        };
        if o.payments > 1 {
            found(
                FindingKind::OrderPaidTwice,
                format!("{} payments", o.payments),
            );
        } else if paid && o.payments == 0 {
            found(
                FindingKind::PaidOrderWithoutPayment,
                format!("{} without a payment", o.status),
            );
        } else if !paid && o.payments > 0 {
            found(
                FindingKind::UnpaidOrderWithPayment,
                format!("{} with a payment", o.status),
            );
        }
        if o.timestamps_bad == Some(true) {
            let detail = format!("{} with paid_at/cancelled_at not matching it", o.status);
            found(FindingKind::OrderTimestampsMismatch, detail);
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct RefundSql {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    payment_id: i64,
    #[diesel(sql_type = BigInt)]
    order_id: i64,
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = Nullable<Bool>)]
    ledger_bad: Option<bool>,
    #[diesel(sql_type = Nullable<Bool>)]
    payment_bad: Option<bool>,
}

/// Each refund has its REFUND entry (amount, refund, balance after; its payment and order where
/// the entry names them) at its version, and refunds a payment of its buyer and order.
const REFUNDS: &str = "\
    SELECT r.id, r.payment_id, r.order_id, r.buyer_id, r.amount, \
      NOT (l.buyer_id IS NOT NULL AND l.kind = 'REFUND' AND l.amount = r.amount \
           AND l.refund_id <=> r.id AND l.balance_after = r.balance_after \
           AND COALESCE(l.payment_id, r.payment_id) = r.payment_id \
           AND COALESCE(l.order_id, r.order_id) = r.order_id) AS ledger_bad, \
      NOT (p.id IS NOT NULL AND p.buyer_id = r.buyer_id AND p.order_id = r.order_id) \
        AS payment_bad \
    FROM refunds r \
    LEFT JOIN ledger_entries l ON l.buyer_id = r.buyer_id AND l.version = r.ledger_version \
    LEFT JOIN payments p ON p.id = r.payment_id \
    WHERE r.buyer_id BETWEEN ? AND ? \
    HAVING ledger_bad OR payment_bad";

fn check_refunds(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    findings: &mut Findings,
) -> QueryResult<()> {
    let rows: Vec<RefundSql> = bind_chunk!(diesel::sql_query(REFUNDS), chunk, 1).load(conn)?;
    for r in rows {
        let finding = |kind: FindingKind, detail: String| {
            Finding::new(kind, Some(r.buyer_id), detail)
                .order(Some(r.order_id))
                .payment(Some(r.payment_id))
                .refund(Some(r.id))
        };
        if r.ledger_bad == Some(true) {
            let detail = format!(
                "refund of {} has no matching REFUND ledger entry at its version",
                r.amount
            );
            findings.push(finding(FindingKind::RefundLedgerMismatch, detail));
        }
        if r.payment_bad == Some(true) {
            let detail = "the refunded payment is missing, another buyer's or another order's";
            findings.push(finding(
                FindingKind::RefundPaymentMismatch,
                detail.to_owned(),
            ));
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct ReferenceSql {
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    order_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    payment_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    refund_id: Option<i64>,
}

/// PAYMENT and REFUND entries whose payment or refund row (of this buyer, at this version) does
/// not exist: money moved with nothing to show for it.
const REFERENCES: &str = "\
    SELECT l.buyer_id, l.version, l.kind, l.order_id, l.payment_id, l.refund_id \
    FROM ledger_entries l \
    LEFT JOIN payments p ON l.kind = 'PAYMENT' AND p.id = l.payment_id \
      AND p.buyer_id = l.buyer_id AND p.ledger_version = l.version \
    LEFT JOIN refunds r ON l.kind = 'REFUND' AND r.id = l.refund_id \
      AND r.buyer_id = l.buyer_id AND r.ledger_version = l.version \
    WHERE l.buyer_id BETWEEN ? AND ? \
      AND ((l.kind = 'PAYMENT' AND p.id IS NULL) OR (l.kind = 'REFUND' AND r.id IS NULL))";

fn check_ledger_references(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    findings: &mut Findings,
) -> QueryResult<()> {
    let rows: Vec<ReferenceSql> =
        bind_chunk!(diesel::sql_query(REFERENCES), chunk, 1).load(conn)?;
    for l in rows {
        let (kind, what) = if l.kind == "REFUND" {
            (FindingKind::LedgerRefundMissing, "refund")
        } else {
            (FindingKind::LedgerPaymentMissing, "payment")
        };
        let detail = format!("a {} entry whose {what} row does not exist", l.kind);
        let finding = Finding::new(kind, Some(l.buyer_id), detail)
            .version(Some(l.version))
            .order(l.order_id)
            .payment(l.payment_id)
            .refund(l.refund_id);
        findings.push(finding);
    }
    Ok(())
}
