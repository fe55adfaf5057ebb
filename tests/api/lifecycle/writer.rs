//! The database's own guard of the lifecycle, at the writer: a refund decided on a stale view
//! of its payment, or a cancellation of an order paid meanwhile, changes nothing, whichever
//! engine or actor decided it.

use chrono::Utc;
use diesel::prelude::*;
use payment_engine::db::models::{LedgerRow, RefundRow};
use payment_engine::db::writer::{
    BalanceChange, Fence, RefundWrite, Rejection, WriteCommand, WriteOp, WriteResult, commit_batch,
};
use payment_engine::domain::{EntryKind, OrderStatus};
use serde_json::json;

use super::{assert_lifecycle_books, paid_order};
use crate::helpers::spawn_app;

fn op(buyer: i64, command: WriteCommand) -> WriteOp {
    WriteOp {
        buyer_id: buyer,
        command,
        idempotency: None,
        event: None,
        lease: None,
    }
}

/// A refund of `amount` of `payment` (order `order`) expecting its refunded total `before`.
fn refund(conn: &mut MysqlConnection, ids: (i64, i64, i64), amount: i64, before: i64) -> WriteOp {
    let (buyer, order, payment) = ids;
    let row = payment_engine::db::queries::find_balance(conn, buyer)
        .unwrap()
        .expect("the buyer has a balance");
    let now = Utc::now().naive_utc();
    let version = row.version + 1;
    let entry = LedgerRow {
        buyer_id: buyer,
        version,
        kind: EntryKind::Refund,
        amount,
        balance_after: row.balance + amount,
        order_id: Some(order),
        payment_id: Some(payment),
        refund_id: Some(900 + before),
        created_at: now,
    };
    let change = BalanceChange {
        expected: Some(Fence {
            version: row.version,
            token: row.fence_token,
        }),
        balance: row.balance + amount,
        fence_token: row.fence_token,
        entry,
    };
    let refund = RefundWrite {
        change,
        row: RefundRow {
            id: 900 + before,
            payment_id: payment,
            order_id: order,
            buyer_id: buyer,
            amount,
            reason: None,
            balance_after: row.balance + amount,
            ledger_version: version,
            refunded_at: now,
        },
        refunded_before: before,
        refunded_after: before + amount,
        // The payment in these tests is of 400 points.
        order_status: if before + amount == 400 {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        },
    };
    op(buyer, WriteCommand::Refund(refund))
}

#[actix_web::test]
async fn a_refund_expecting_another_refunded_total_writes_nothing() {
    let app = spawn_app().await;
    let (order, payment) = paid_order(&app, 1, 1_000, 400).await;
    app.refund(payment, json!({ "buyerId": 1, "amount": 100 }), None)
        .await
        .expect(201);
    let mut conn = app.db_conn();
    // Decided as if the first refund had not happened: its fence is the balance row as it is
    // now, so only the payment's refunded total can refuse it.
    let stale = refund(&mut conn, (1, order, payment), 350, 0);
    let results = commit_batch(&mut conn, &[stale], Utc::now().naive_utc()).unwrap();
    assert_eq!(results, vec![WriteResult::Rejected(Rejection::StaleFence)]);
    let fresh = refund(&mut conn, (1, order, payment), 300, 100);
    let results = commit_batch(&mut conn, &[fresh], Utc::now().naive_utc()).unwrap();
    assert_eq!(results, vec![WriteResult::Committed]);
    assert_lifecycle_books(&mut conn);
}

#[actix_web::test]
async fn a_cancel_of_an_order_paid_meanwhile_is_refused_and_a_payment_of_a_cancelled_one_too() {
    let app = spawn_app().await;
    let (paid, _) = paid_order(&app, 1, 1_000, 400).await;
    let mut conn = app.db_conn();
    let now = Utc::now().naive_utc();
    let cancel = |order_id| {
        op(
            1,
            WriteCommand::Cancel {
                order_id,
                cancelled_at: now,
            },
        )
    };
    let results = commit_batch(&mut conn, &[cancel(paid)], now).unwrap();
    assert_eq!(
        results,
        vec![WriteResult::Rejected(Rejection::OrderAlreadyPaid)]
    );
    let theirs = app.new_order(2, 10).await;
    let results = commit_batch(&mut conn, &[cancel(theirs)], now).unwrap();
    assert_eq!(
        results,
        vec![WriteResult::Rejected(Rejection::OrderNotFound)]
    );

    let pending = app.new_order(1, 10).await;
    app.cancel(1, pending).await.ok();
    // The buyer's actor knows it is cancelled; a stale view (another engine's) would still try.
    app.pay(1, pending)
        .await
        .expect_problem(409, "order_cancelled");
    assert_lifecycle_books(&mut conn);
}
