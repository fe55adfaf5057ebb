//! The rows a batch only adds (ledger entries, payments, refunds, outbox events), inserted
//! for the committed writes once every check has passed: one multi-row INSERT per table.

use diesel::prelude::*;

use super::{WriteCommand, WriteOp, WriteResult};
use crate::db::models::{LedgerRow, NewOutboxEvent, PaymentRow, RefundRow};
use crate::db::schema::{ledger_entries, outbox_events, payments, refunds};

/// Ledger entries, payments and outbox events of the committed writes, as multi-row inserts
/// (events in submission order, which is commit order).
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
    if !entries.is_empty() {
        diesel::insert_into(ledger_entries::table)
            .values(entries)
            .execute(conn)?;
    }
    if !paid.is_empty() {
        diesel::insert_into(payments::table)
            .values(paid)
            .execute(conn)?;
    }
    if !refunded.is_empty() {
        diesel::insert_into(refunds::table)
            .values(refunded)
            .execute(conn)?;
    }
    if !events.is_empty() {
        diesel::insert_into(outbox_events::table)
            .values(events)
            .execute(conn)?;
    }
    Ok(())
}
