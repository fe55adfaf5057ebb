//! The rows a batch only adds (ledger entries, payments, refunds, outbox events), inserted
//! for the committed writes once every check has passed: one INSERT per table, of one fixed text
//! whatever the number of rows (`shaped`).

use diesel::prelude::*;

use super::shaped::{Shaped, stamp};
use super::{WriteCommand, WriteOp, WriteResult};
use crate::db::models::{LedgerRow, NewOutboxEvent, PaymentRow, RefundRow};

/// Ledger entries, payments, refunds and outbox events of the committed writes, one insert per
/// table (events in submission order, which is commit order).
pub(in crate::db) fn insert_committed_rows(
    conn: &mut MysqlConnection,
    ops: &[WriteOp],
    results: &[WriteResult],
) -> QueryResult<()> {
    let committed = ops
        .iter()
        .zip(results)
        .filter(|(_, result)| **result == WriteResult::Committed)
        .map(|(op, _)| op);
    let mut entries: Vec<&LedgerRow> = Vec::new();
    let mut paid: Vec<&PaymentRow> = Vec::new();
    let mut refunded: Vec<&RefundRow> = Vec::new();
    let mut events: Vec<&NewOutboxEvent> = Vec::new();
    for op in committed {
        events.extend(op.event.as_ref());
        match &op.command {
            WriteCommand::Charge(change) => entries.push(&change.entry),
            WriteCommand::Pay { change, payment } => {
                entries.push(&change.entry);
                paid.push(payment);
            }
            WriteCommand::Refund(refund) => {
                entries.push(&refund.change.entry);
                refunded.push(&refund.row);
            }
            WriteCommand::CreateOrder(_) | WriteCommand::Cancel { .. } => {}
        }
    }
    insert_ledger_entries(conn, &entries)?;
    insert_payments(conn, &paid)?;
    insert_refunds(conn, &refunded)?;
    insert_events(conn, &events)
}

fn insert_ledger_entries(conn: &mut MysqlConnection, entries: &[&LedgerRow]) -> QueryResult<()> {
    if !entries.is_empty() {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                let (kind, at) = (e.kind.as_str(), stamp(e.created_at));
                let (amount, after) = (e.amount, e.balance_after);
                let (order, payment, refund) = (e.order_id, e.payment_id, e.refund_id);
                (
                    e.buyer_id, e.version, kind, amount, after, order, payment, refund, at,
                )
            })
            .collect();
        Shaped::new(INSERT_LEDGER_ENTRIES).rows(&rows).run(conn)?;
    }
    Ok(())
}

fn insert_payments(conn: &mut MysqlConnection, paid: &[&PaymentRow]) -> QueryResult<()> {
    if !paid.is_empty() {
        let rows: Vec<_> = paid
            .iter()
            .map(|p| {
                let (ids, at) = ((p.id, p.order_id, p.buyer_id), stamp(p.paid_at));
                let (amount, refunded, after) = (p.amount, p.refunded_amount, p.balance_after);
                (
                    ids.0,
                    ids.1,
                    ids.2,
                    amount,
                    refunded,
                    after,
                    p.ledger_version,
                    at,
                )
            })
            .collect();
        Shaped::new(INSERT_PAYMENTS).rows(&rows).run(conn)?;
    }
    Ok(())
}

fn insert_refunds(conn: &mut MysqlConnection, refunded: &[&RefundRow]) -> QueryResult<()> {
    if !refunded.is_empty() {
        let rows: Vec<_> = refunded
            .iter()
            .map(|r| {
                let (id, payment, order) = (r.id, r.payment_id, r.order_id);
                let (amount, reason, at) = (r.amount, &r.reason, stamp(r.refunded_at));
                let (buyer, after, version) = (r.buyer_id, r.balance_after, r.ledger_version);
                (
                    id, payment, order, buyer, amount, reason, after, version, at,
                )
            })
            .collect();
        Shaped::new(INSERT_REFUNDS).rows(&rows).run(conn)?;
    }
    Ok(())
}

fn insert_events(conn: &mut MysqlConnection, events: &[&NewOutboxEvent]) -> QueryResult<()> {
    if !events.is_empty() {
        let rows: Vec<_> = events
            .iter()
            .map(|e| {
                let at = stamp(e.occurred_at);
                let (id, kind, schema) = (&e.event_id, &e.event_type, e.schema_version);
                (id, kind, schema, e.buyer_id, &e.payload, at)
            })
            .collect();
        Shaped::new(INSERT_OUTBOX_EVENTS).rows(&rows).run(conn)?;
    }
    Ok(())
}

const INSERT_LEDGER_ENTRIES: &str = "INSERT INTO ledger_entries (buyer_id, version, kind, \
    amount, balance_after, order_id, payment_id, refund_id, created_at) \
    SELECT * FROM JSON_TABLE(?, '$[*]' COLUMNS (buyer_id BIGINT PATH '$[0]', \
    version BIGINT PATH '$[1]', kind VARCHAR(16) PATH '$[2]', amount BIGINT PATH '$[3]', \
    balance_after BIGINT PATH '$[4]', order_id BIGINT PATH '$[5]', \
    payment_id BIGINT PATH '$[6]', refund_id BIGINT PATH '$[7]', \
    created_at DATETIME(6) PATH '$[8]')) AS j";

const INSERT_PAYMENTS: &str = "INSERT INTO payments (id, order_id, buyer_id, amount, \
    refunded_amount, balance_after, ledger_version, paid_at) \
    SELECT * FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$[0]', \
    order_id BIGINT PATH '$[1]', buyer_id BIGINT PATH '$[2]', amount BIGINT PATH '$[3]', \
    refunded_amount BIGINT PATH '$[4]', balance_after BIGINT PATH '$[5]', \
    ledger_version BIGINT PATH '$[6]', paid_at DATETIME(6) PATH '$[7]')) AS j";

const INSERT_REFUNDS: &str = "INSERT INTO refunds (id, payment_id, order_id, buyer_id, \
    amount, reason, balance_after, ledger_version, refunded_at) \
    SELECT * FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$[0]', \
    payment_id BIGINT PATH '$[1]', order_id BIGINT PATH '$[2]', buyer_id BIGINT PATH '$[3]', \
    amount BIGINT PATH '$[4]', reason TEXT PATH '$[5]', balance_after BIGINT PATH '$[6]', \
    ledger_version BIGINT PATH '$[7]', refunded_at DATETIME(6) PATH '$[8]')) AS j";

/// In the array's order, so `seq` follows submission order.
const INSERT_OUTBOX_EVENTS: &str = "INSERT INTO outbox_events (event_id, event_type, \
    schema_version, buyer_id, payload, occurred_at) \
    SELECT event_id, event_type, schema_version, buyer_id, payload, occurred_at \
    FROM JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY, event_id VARCHAR(36) PATH '$[0]', \
    event_type VARCHAR(64) PATH '$[1]', schema_version INT PATH '$[2]', \
    buyer_id BIGINT PATH '$[3]', payload LONGTEXT PATH '$[4]', \
    occurred_at DATETIME(6) PATH '$[5]')) AS j ORDER BY n";
