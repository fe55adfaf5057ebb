use chrono::{DateTime, NaiveDateTime};

use super::{ModelDb, ModelError};
use crate::db::models::{IdempotencyRow, LedgerRow, NewOutboxEvent, OrderRow, PaymentRow};
use crate::db::writer::{BalanceChange, Fence, Rejection, WriteCommand, WriteOp, WriteResult};
use crate::domain::{EntryKind, OrderStatus};

const TOKEN: i64 = 7;
const COMMITTED: WriteResult = WriteResult::Committed;

fn at(seconds: i64) -> NaiveDateTime {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0)
        .expect("a valid time")
        .naive_utc()
}

fn rejected(rejection: Rejection) -> WriteResult {
    WriteResult::Rejected(rejection)
}

/// A balance change from (`balance`, `version`) by `amount`, fenced on `expected`.
fn change(buyer: i64, expected: Option<Fence>, from: (i64, i64), amount: i64) -> BalanceChange {
    let (balance, version) = from;
    let kind = if amount >= 0 {
        EntryKind::Charge
    } else {
        EntryKind::Payment
    };
    BalanceChange {
        expected,
        balance: balance + amount,
        fence_token: TOKEN,
        entry: LedgerRow {
            buyer_id: buyer,
            version: version + 1,
            kind,
            amount,
            balance_after: balance + amount,
            order_id: None,
            payment_id: None,
            refund_id: None,
            created_at: at(0),
        },
    }
}

fn fence(version: i64) -> Option<Fence> {
    Some(Fence {
        version,
        token: TOKEN,
    })
}

fn charge(buyer: i64, expected: Option<Fence>, from: (i64, i64), amount: i64) -> WriteOp {
    WriteOp {
        buyer_id: buyer,
        command: WriteCommand::Charge(change(buyer, expected, from, amount)),
        idempotency: None,
        event: None,
        lease: None,
    }
}

fn pay(buyer: i64, order: i64, expected: Option<Fence>, from: (i64, i64), price: i64) -> WriteOp {
    let mut change = change(buyer, expected, from, -price);
    change.entry.order_id = Some(order);
    change.entry.payment_id = Some(order + 100);
    let payment = PaymentRow {
        id: order + 100,
        order_id: order,
        buyer_id: buyer,
        amount: price,
        refunded_amount: 0,
        balance_after: change.balance,
        ledger_version: change.entry.version,
        paid_at: at(1),
    };
    WriteOp {
        buyer_id: buyer,
        command: WriteCommand::Pay { change, payment },
        idempotency: None,
        event: Some(event(&format!("pay-{order}"), buyer)),
        lease: None,
    }
}

fn create_order(buyer: i64, order: i64, price: i64) -> WriteOp {
    WriteOp {
        buyer_id: buyer,
        command: WriteCommand::CreateOrder(OrderRow {
            id: order,
            buyer_id: buyer,
            total_price: price,
            status: OrderStatus::Pending,
            created_at: at(0),
            paid_at: None,
            cancelled_at: None,
        }),
        idempotency: None,
        event: None,
        lease: None,
    }
}

fn event(id: &str, buyer: i64) -> NewOutboxEvent {
    NewOutboxEvent {
        event_id: id.to_owned(),
        event_type: "Test".to_owned(),
        schema_version: 1,
        buyer_id: buyer,
        payload: "{}".to_owned(),
        occurred_at: at(0),
    }
}

fn keyed(mut op: WriteOp, key: &str, fingerprint: &str, expires_at: NaiveDateTime) -> WriteOp {
    op.idempotency = Some(IdempotencyRow {
        idempotency_key: key.to_owned(),
        buyer_id: op.buyer_id,
        fingerprint: fingerprint.to_owned(),
        response_status: 200,
        response_body: format!("{{\"fingerprint\":\"{fingerprint}\"}}"),
        created_at: at(0),
        expires_at,
    });
    op
}

#[test]
fn a_chain_of_charges_commits_and_leaves_the_last_state() {
    let mut db = ModelDb::new();
    let ops = [
        charge(1, None, (0, 0), 100),
        charge(1, fence(1), (100, 1), 50),
    ];
    assert_eq!(db.commit_batch(&ops, at(5)), Ok(vec![COMMITTED; 2]));
    let row = db.balance(1).expect("a balance row");
    assert_eq!((row.balance, row.version, row.fence_token), (150, 2, TOKEN));
    assert_eq!(row.updated_at, at(5));
    let versions: Vec<i64> = db.ledger(1).map(|entry| entry.version).collect();
    assert_eq!(versions, [1, 2]);
}

#[test]
fn a_stale_fence_refuses_the_write_and_the_writes_fenced_on_it() {
    let mut db = ModelDb::new();
    db.commit_batch(&[charge(1, None, (0, 0), 100)], at(0))
        .unwrap();
    let ops = [
        charge(1, fence(0), (100, 1), 10),
        charge(1, fence(2), (110, 2), 10),
        charge(1, fence(1), (100, 1), 5),
        charge(1, None, (0, 0), 1),
    ];
    let results = db.commit_batch(&ops, at(1)).unwrap();
    let stale = rejected(Rejection::StaleFence);
    assert_eq!(results, [stale.clone(), stale.clone(), COMMITTED, stale]);
    assert_eq!(db.balance(1).map(|row| row.balance), Some(105));
    assert_eq!(db.ledger(1).count(), 2);
}

#[test]
fn an_order_is_paid_once_and_only_by_its_buyer() {
    let mut db = ModelDb::new();
    let setup = [
        create_order(1, 10, 30),
        charge(1, None, (0, 0), 100),
        charge(2, None, (0, 0), 100),
    ];
    db.commit_batch(&setup, at(0)).unwrap();
    let ops = [
        pay(1, 10, fence(1), (100, 1), 30),
        pay(1, 10, fence(2), (70, 2), 30),
        pay(2, 10, fence(1), (100, 1), 30),
        pay(2, 99, fence(1), (100, 1), 30),
    ];
    let results = db.commit_batch(&ops, at(1)).unwrap();
    let not_found = rejected(Rejection::OrderNotFound);
    let expected = [
        COMMITTED,
        rejected(Rejection::OrderAlreadyPaid),
        not_found.clone(),
        not_found,
    ];
    assert_eq!(results, expected);
    let order = db.find_order(10).expect("the order");
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.paid_at, Some(at(1)));
    let events: Vec<&str> = db.outbox_events().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events, ["pay-10"]);
}

#[test]
fn a_live_key_refuses_with_its_record_and_an_expired_one_is_replaced() {
    let mut db = ModelDb::new();
    let first = keyed(charge(1, None, (0, 0), 10), "k", "a", at(10));
    db.commit_batch(std::slice::from_ref(&first), at(0))
        .unwrap();
    let again = keyed(charge(1, fence(1), (10, 1), 10), "k", "b", at(20));
    let used = rejected(Rejection::IdempotencyKeyUsed(Box::new(
        first.idempotency.clone().unwrap(),
    )));
    assert_eq!(
        db.commit_batch(std::slice::from_ref(&again), at(9)),
        Ok(vec![used])
    );
    assert_eq!(
        db.commit_batch(std::slice::from_ref(&again), at(10)),
        Ok(vec![COMMITTED])
    );
    assert_eq!(
        db.idempotency_record("k", at(11)),
        again.idempotency.as_ref()
    );
}

#[test]
fn a_refused_write_keeps_its_key_free_and_its_event_unwritten() {
    let mut db = ModelDb::new();
    let mut stale = keyed(charge(1, fence(3), (0, 3), 10), "k", "a", at(10));
    stale.event = Some(event("e1", 1));
    let results = db.commit_batch(&[stale], at(0)).unwrap();
    assert_eq!(results, [rejected(Rejection::StaleFence)]);
    assert_eq!(db.rows(), super::Rows::default());
}

#[test]
fn a_duplicate_order_id_fails_the_whole_batch() {
    let mut db = ModelDb::new();
    let ops = [
        charge(1, None, (0, 0), 10),
        create_order(1, 10, 30),
        create_order(2, 10, 40),
    ];
    let error = ModelError::Duplicate {
        table: "orders",
        key: "PRIMARY",
    };
    assert_eq!(db.commit_batch(&ops, at(0)), Err(error));
    assert_eq!(db.rows(), super::Rows::default());
}

#[test]
fn a_negative_balance_fails_the_whole_batch() {
    let mut db = ModelDb::new();
    let ops = [charge(2, None, (0, 0), 10), charge(1, None, (0, 0), -5)];
    let error = ModelError::ConstraintFailed {
        constraint: "balances_balance_not_negative",
    };
    assert_eq!(db.commit_batch(&ops, at(0)), Err(error));
    assert_eq!(db.rows(), super::Rows::default());
}

#[test]
fn a_failed_event_insert_keeps_its_seq_values_taken() {
    let mut db = ModelDb::new();
    let mut first = charge(1, None, (0, 0), 10);
    first.event = Some(event("e1", 1));
    db.commit_batch(&[first], at(0)).unwrap();
    let mut twice = charge(1, fence(1), (10, 1), 10);
    twice.event = Some(event("e1", 1));
    assert!(db.commit_batch(&[twice], at(1)).is_err());
    let mut next = charge(1, fence(1), (10, 1), 10);
    next.event = Some(event("e2", 1));
    db.commit_batch(&[next], at(2)).unwrap();
    let seqs: Vec<i64> = db.outbox_events().map(|e| e.seq).collect();
    // The failed batch took seq 2 in its set-based attempt and 3 in its checked one.
    assert_eq!(seqs, [1, 4]);
}

#[test]
fn a_key_on_an_order_creation_is_stored_whether_or_not_the_batch_has_a_refusal() {
    let mut db = ModelDb::new();
    let order = keyed(create_order(1, 10, 30), "order-key", "a", at(10));
    db.commit_batch(&[order], at(0)).unwrap();
    assert!(db.idempotency_record("order-key", at(1)).is_some());

    let order = keyed(create_order(1, 11, 30), "other-key", "a", at(10));
    let stale = charge(2, fence(5), (0, 5), 10);
    let results = db.commit_batch(&[order, stale], at(1)).unwrap();
    assert_eq!(results, [COMMITTED, rejected(Rejection::StaleFence)]);
    assert!(db.find_order(11).is_some());
    // The checked path records it with its creation, as the set-based one does.
    assert!(db.idempotency_record("other-key", at(1)).is_some());
}

#[test]
fn a_bump_by_a_second_writer_makes_the_first_writers_fence_stale() {
    let mut db = ModelDb::new();
    db.commit_batch(&[charge(1, None, (0, 0), 100)], at(0))
        .unwrap();
    let bump = db.bump(1, 5, 99, at(1)).unwrap();
    assert!(matches!(bump.command, WriteCommand::Charge(_)));
    assert_eq!(
        db.fence(1),
        Some(Fence {
            version: 2,
            token: 99
        })
    );
    let results = db.commit_batch(&[charge(1, fence(1), (100, 1), 1)], at(2));
    assert_eq!(results, Ok(vec![rejected(Rejection::StaleFence)]));
    let amounts: Vec<i64> = db.ledger(1).map(|entry| entry.amount).collect();
    assert_eq!(amounts, [100, 5]);
}
