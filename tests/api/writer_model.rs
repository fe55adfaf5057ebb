//! The writer's model against the real writer: the same seeded random batches, refusals and
//! failing batches included, go to `db::writer::commit_batch` on a fresh MariaDB database and
//! to `sim::model::ModelDb`. After every batch the per-write results (or the batch's error)
//! must be identical, and so must every column of every row of the seven tables (the outbox's
//! `seq` in its order, not its values).
//!
//! A failing seed replays alone:
//! `WRITER_MODEL_SEED=<seed> cargo nextest run -E 'test(/writer_model/)'`.

mod generator;

use std::collections::BTreeMap;
use std::fmt::Debug;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use payment_engine::db::models::{
    BalanceRow, IdempotencyRow, LedgerRow, OrderRow, OutboxEventRow, PaymentRow, RefundRow,
};
use payment_engine::db::schema::{
    balances, idempotency_keys, ledger_entries, orders, outbox_events, payments, refunds,
};
use payment_engine::db::writer::{self, Fence, Rejection, WriteCommand, WriteOp, WriteResult};
use payment_engine::db::{ensure_database, run_migrations};
use payment_engine::sim::model::{ModelDb, ModelError, Rows};

use crate::helpers::TestDatabase;
use generator::Generator;

const SEEDS: u64 = 6;
const BATCHES_PER_SEED: usize = 80;
const MIN_BATCHES_WITH_REFUSALS: usize = 300;
const BATCHES_WITH_REFUSALS: &str = "batches with a refusal or an error";

/// Outcomes the generator must have produced over all seeds, or the test proves little.
const REQUIRED: [&str; 27] = [
    "stale fence",
    "stale fence: fenced on a refused write",
    "order not found: unknown order",
    "order not found: another buyer's order",
    "order already paid",
    "key used: same fingerprint",
    "key used: other fingerprint",
    "expired key replaced",
    "batches committed whole",
    "second-writer bumps",
    "batch failed: duplicate entry in orders for key 'PRIMARY'",
    "batch failed: duplicate entry in payments for key 'PRIMARY'",
    "batch failed: duplicate entry in ledger_entries for key 'PRIMARY'",
    "batch failed: duplicate entry in outbox_events for key 'outbox_events_event_id'",
    "batch failed: CONSTRAINT `balances_balance_not_negative` failed",
    "batch failed: CONSTRAINT `ledger_balance_after_not_negative` failed",
    "batch failed: CONSTRAINT `payments_refunded_within_amount` failed",
    "batch failed: duplicate entry in refunds for key 'PRIMARY'",
    "cancel committed",
    "cancel: order already paid",
    "cancel: stale (cancelled already)",
    "cancel: order not found",
    "refund committed: partial",
    "refund committed: full",
    "refund: stale refunded total",
    "refund: payment not found",
    "order cancelled",
];

/// How often each outcome was seen.
type Tally = BTreeMap<String, usize>;

type Outcome = Result<Vec<WriteResult>, ModelError>;

#[test]
fn random_batches_give_the_same_results_and_rows_in_the_model_as_on_mariadb() {
    let seeds: Vec<u64> = match std::env::var("WRITER_MODEL_SEED") {
        Ok(seed) => vec![seed.parse().expect("WRITER_MODEL_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    };
    let mut tally = Tally::new();
    for &seed in &seeds {
        run_seed(seed, &mut tally);
    }
    println!("{tally:#?}");
    if seeds.len() == 1 {
        // A replay checks agreement; coverage is a property of the whole run.
        return;
    }
    let with_refusals = tally.get(BATCHES_WITH_REFUSALS).copied().unwrap_or(0);
    assert!(
        with_refusals >= MIN_BATCHES_WITH_REFUSALS,
        "only {with_refusals} batches had a refusal: {tally:#?}"
    );
    for outcome in REQUIRED {
        assert!(
            tally.get(outcome).copied().unwrap_or(0) > 0,
            "the generator never produced {outcome:?}: {tally:#?}"
        );
    }
}

fn run_seed(seed: u64, tally: &mut Tally) {
    let db = TestDatabase::new();
    let url = payment_engine::db::DatabaseUrl::from(db.url());
    ensure_database(&url).expect("creating the test database");
    run_migrations(&url).expect("migrating the test database");
    let mut conn = db.connect();
    let mut model = ModelDb::new();
    let mut generator = Generator::new(seed);
    for batch in 0..BATCHES_PER_SEED {
        let context = format!("seed {seed}, batch {batch} (replay: WRITER_MODEL_SEED={seed})");
        if let Some((bump, now)) = generator.bump(&model) {
            let outcome = check_batch(&mut conn, &mut model, &[bump], now, &context);
            assert_eq!(
                outcome,
                Ok(vec![WriteResult::Committed]),
                "{context}: a bump"
            );
            count(tally, "second-writer bumps");
        }
        let (ops, now) = generator.batch(&model);
        let before = model.rows();
        let outcome = check_batch(&mut conn, &mut model, &ops, now, &context);
        assert_same_rows(&real_rows(&mut conn), &model.rows(), &context);
        tally_outcome(tally, &before, &ops, &outcome, now);
        generator.settle(&model, &failed_buyers(&ops, &outcome));
    }
}

/// Sends `ops` to both writers and requires the same answer; returns it.
fn check_batch(
    conn: &mut MysqlConnection,
    model: &mut ModelDb,
    ops: &[WriteOp],
    now: chrono::NaiveDateTime,
    context: &str,
) -> Outcome {
    let real = writer::commit_batch(conn, ops, now);
    let modelled = model.commit_batch(ops, now);
    let agree = match (&real, &modelled) {
        (Ok(real), Ok(modelled)) => real == modelled,
        (Err(real), Err(modelled)) => same_error(real, modelled),
        _ => false,
    };
    assert!(
        agree,
        "{context}: MariaDB answered {real:?}, the model {modelled:?}, to {ops:#?}"
    );
    modelled
}

/// Whether MariaDB's error is the one the model names: the same kind and the same key or
/// constraint.
fn same_error(real: &DieselError, modelled: &ModelError) -> bool {
    let DieselError::DatabaseError(kind, info) = real else {
        return false;
    };
    match modelled {
        ModelError::Duplicate { key, .. } => {
            *kind == DatabaseErrorKind::UniqueViolation
                && info.message().contains(&format!("for key '{key}'"))
        }
        ModelError::ConstraintFailed { constraint } => info
            .message()
            .contains(&format!("CONSTRAINT `{constraint}` failed")),
    }
}

fn real_rows(conn: &mut MysqlConnection) -> Rows {
    let mut rows = Rows {
        balances: balances::table
            .order(balances::buyer_id)
            .select(BalanceRow::as_select())
            .load(conn)
            .expect("reading balances"),
        ledger_entries: ledger_entries::table
            .order((ledger_entries::buyer_id, ledger_entries::version))
            .select(LedgerRow::as_select())
            .load(conn)
            .expect("reading ledger_entries"),
        orders: orders::table
            .order(orders::id)
            .select(OrderRow::as_select())
            .load(conn)
            .expect("reading orders"),
        payments: payments::table
            .order(payments::id)
            .select(PaymentRow::as_select())
            .load(conn)
            .expect("reading payments"),
        refunds: refunds::table
            .order(refunds::id)
            .select(RefundRow::as_select())
            .load(conn)
            .expect("reading refunds"),
        idempotency_keys: idempotency_keys::table
            .select(IdempotencyRow::as_select())
            .load(conn)
            .expect("reading idempotency_keys"),
        outbox_events: outbox_events::table
            .order(outbox_events::seq)
            .select(OutboxEventRow::as_select())
            .load(conn)
            .expect("reading outbox_events"),
    };
    // In the model's order (Rust's), whatever the column's collation.
    rows.idempotency_keys
        .sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    rows
}

fn assert_same_rows(real: &Rows, model: &Rows, context: &str) {
    same_table("balances", &real.balances, &model.balances, context);
    same_table(
        "ledger_entries",
        &real.ledger_entries,
        &model.ledger_entries,
        context,
    );
    same_table("orders", &real.orders, &model.orders, context);
    same_table("payments", &real.payments, &model.payments, context);
    same_table("refunds", &real.refunds, &model.refunds, context);
    same_table(
        "idempotency_keys",
        &real.idempotency_keys,
        &model.idempotency_keys,
        context,
    );
    same_table(
        "outbox_events",
        &ranked(&real.outbox_events),
        &ranked(&model.outbox_events),
        context,
    );
}

/// The outbox in `seq` order, each `seq` replaced by its rank. The engine relies on the order
/// of `seq` (commit order), not on its values, and InnoDB hands out the values of an
/// `INSERT … SELECT` in chunks (a bulk insert: how many rows it inserts is not known up front),
/// so the gaps it leaves are its own.
fn ranked(events: &[OutboxEventRow]) -> Vec<OutboxEventRow> {
    events
        .iter()
        .cloned()
        .zip(1..)
        .map(|(mut event, rank)| {
            event.seq = rank;
            event
        })
        .collect()
}

fn same_table<T: PartialEq + Debug>(name: &str, real: &[T], model: &[T], context: &str) {
    if real == model {
        return;
    }
    let at = real
        .iter()
        .zip(model)
        .position(|(r, m)| r != m)
        .unwrap_or(real.len().min(model.len()));
    panic!(
        "{context}: {name} differ ({} rows in MariaDB, {} in the model), first at row {at}:\n  \
         MariaDB: {:?}\n  model:   {:?}",
        real.len(),
        model.len(),
        real.get(at),
        model.get(at),
    );
}

/// Counts what each write of the batch ran into.
fn tally_outcome(
    tally: &mut Tally,
    before: &Rows,
    ops: &[WriteOp],
    outcome: &Outcome,
    now: chrono::NaiveDateTime,
) {
    let results = match outcome {
        Ok(results) => results,
        Err(error) => {
            count(tally, &format!("batch failed: {error}"));
            count(tally, BATCHES_WITH_REFUSALS);
            return;
        }
    };
    if results.iter().all(|r| *r == WriteResult::Committed) {
        count(tally, "batches committed whole");
    } else {
        count(tally, BATCHES_WITH_REFUSALS);
    }
    for (index, (op, result)) in ops.iter().zip(results).enumerate() {
        if let Some(outcome) = lifecycle_outcome(op, result) {
            count(tally, outcome);
            continue;
        }
        let outcome = match result {
            WriteResult::Committed if replaces_expired_key(before, op, now) => {
                "expired key replaced"
            }
            WriteResult::Committed => continue,
            WriteResult::Rejected(Rejection::StaleFence)
                if fenced_on_refused(ops, results, index) =>
            {
                "stale fence: fenced on a refused write"
            }
            WriteResult::Rejected(Rejection::StaleFence) => "stale fence",
            WriteResult::Rejected(Rejection::OrderNotFound) if order_exists(before, ops, op) => {
                "order not found: another buyer's order"
            }
            WriteResult::Rejected(Rejection::OrderNotFound) => "order not found: unknown order",
            WriteResult::Rejected(Rejection::OrderAlreadyPaid) => "order already paid",
            WriteResult::Rejected(Rejection::OrderCancelled) => "order cancelled",
            WriteResult::Rejected(Rejection::PaymentNotFound) => "payment not found",
            // The generated writes carry no lease (the lease fence has its own tests).
            WriteResult::Rejected(Rejection::NotOwner) => "not owner",
            WriteResult::Rejected(Rejection::IdempotencyKeyUsed(record))
                if op.idempotency.as_ref().map(|r| &r.fingerprint) == Some(&record.fingerprint) =>
            {
                "key used: same fingerprint"
            }
            WriteResult::Rejected(Rejection::IdempotencyKeyUsed(_)) => {
                "key used: other fingerprint"
            }
        };
        count(tally, outcome);
    }
}

/// What a cancellation or a refund ran into; `None` for other writes.
fn lifecycle_outcome(op: &WriteOp, result: &WriteResult) -> Option<&'static str> {
    Some(match (&op.command, result) {
        (WriteCommand::Cancel { .. }, WriteResult::Committed) => "cancel committed",
        (WriteCommand::Cancel { .. }, WriteResult::Rejected(rejection)) => match rejection {
            Rejection::OrderAlreadyPaid => "cancel: order already paid",
            Rejection::StaleFence => "cancel: stale (cancelled already)",
            Rejection::OrderNotFound => "cancel: order not found",
            _ => return None,
        },
        (WriteCommand::Refund(refund), WriteResult::Committed) => {
            match refund.order_status == payment_engine::domain::OrderStatus::Refunded {
                true => "refund committed: full",
                false => "refund committed: partial",
            }
        }
        (WriteCommand::Refund(_), WriteResult::Rejected(Rejection::StaleFence)) => {
            "refund: stale refunded total"
        }
        (WriteCommand::Refund(_), WriteResult::Rejected(Rejection::PaymentNotFound)) => {
            "refund: payment not found"
        }
        _ => return None,
    })
}

fn count(tally: &mut Tally, outcome: &str) {
    *tally.entry(outcome.to_owned()).or_default() += 1;
}

/// Whether the write's fence is the one an earlier, refused write of its buyer would have left.
fn fenced_on_refused(ops: &[WriteOp], results: &[WriteResult], index: usize) -> bool {
    let expected = balance_change(&ops[index]).and_then(|change| change.expected);
    (0..index).any(|earlier| {
        results[earlier] != WriteResult::Committed
            && ops[earlier].buyer_id == ops[index].buyer_id
            && balance_change(&ops[earlier]).is_some_and(|change| {
                expected
                    == Some(Fence {
                        version: change.entry.version,
                        token: change.fence_token,
                    })
            })
    })
}

fn balance_change(op: &WriteOp) -> Option<&writer::BalanceChange> {
    match &op.command {
        WriteCommand::Charge(change)
        | WriteCommand::Pay { change, .. }
        | WriteCommand::Refund(writer::RefundWrite { change, .. }) => Some(change),
        WriteCommand::CreateOrder(_) | WriteCommand::Cancel { .. } => None,
    }
}

fn order_exists(before: &Rows, ops: &[WriteOp], op: &WriteOp) -> bool {
    let WriteCommand::Pay { payment, .. } = &op.command else {
        return false;
    };
    let id = payment.order_id;
    before.orders.iter().any(|order| order.id == id)
        || ops
            .iter()
            .any(|op| matches!(&op.command, WriteCommand::CreateOrder(order) if order.id == id))
}

fn replaces_expired_key(before: &Rows, op: &WriteOp, now: chrono::NaiveDateTime) -> bool {
    op.idempotency.as_ref().is_some_and(|record| {
        before
            .idempotency_keys
            .iter()
            .any(|old| old.idempotency_key == record.idempotency_key && old.expires_at <= now)
    })
}

/// The buyers whose state a real actor would drop after this batch.
fn failed_buyers(ops: &[WriteOp], outcome: &Outcome) -> Vec<i64> {
    ops.iter()
        .enumerate()
        .filter(|(index, _)| match outcome {
            Ok(results) => results[*index] != WriteResult::Committed,
            Err(_) => true,
        })
        .map(|(_, op)| op.buyer_id)
        .collect()
}
