//! Cancellations and refunds as a buyer actor builds them, and the stale or misdirected ones a
//! stale view (or another engine) produces: a cancel of a paid or cancelled order, a refund
//! decided on a refunded total that has moved since, of another buyer's or an unknown payment.

use payment_engine::db::models::RefundRow;
use payment_engine::db::writer::{RefundWrite, WriteCommand, WriteOp};
use payment_engine::domain::{EntryKind, OrderStatus};
use rand::Rng;

use super::{Draft, Generator, UNKNOWN_ORDER_BASE, all_orders};

/// Payment ids no payment has.
const UNKNOWN_PAYMENT_BASE: i64 = 2_000_000;

/// A payment as a refund decided now sees it: committed, with the refunds earlier in the batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refundable {
    id: i64,
    order_id: i64,
    buyer_id: i64,
    amount: i64,
    /// What the model's row shows.
    committed: i64,
    /// With this batch's refunds of it.
    refunded: i64,
}

impl Generator {
    /// A cancellation of one of the buyer's orders (pending, paid or cancelled, or created in
    /// this batch), now and then of another buyer's or an unknown order.
    pub(super) fn add_cancel(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let order_id = match self.rng.random_range(0..10) {
            0 => Some(UNKNOWN_ORDER_BASE + self.rng.random_range(0..1_000)),
            1 => {
                let theirs = all_orders(draft).filter(|o| o.buyer_id != buyer);
                let theirs = theirs.map(|o| o.id).collect();
                self.choose(theirs)
            }
            2..5 => {
                let pending = all_orders(draft)
                    .filter(|o| o.buyer_id == buyer && o.status == OrderStatus::Pending);
                let pending = pending.map(|o| o.id).collect();
                self.choose(pending)
            }
            _ => {
                let mine = all_orders(draft).filter(|o| o.buyer_id == buyer);
                let mine = mine.map(|o| o.id).collect();
                self.choose(mine)
            }
        };
        let Some(order_id) = order_id else {
            return self.add(draft, buyer, super::Action::CreateOrder);
        };
        let mut op = WriteOp {
            buyer_id: buyer,
            command: WriteCommand::Cancel {
                order_id,
                cancelled_at: self.moment(draft),
            },
            idempotency: None,
            event: Some(self.event(draft, buyer)),
            lease: None,
        };
        if self.rng.random_bool(0.1) {
            op.idempotency = Some(self.fresh_key(draft, buyer));
        }
        draft.ops.push(op);
    }

    /// A refund of one of the buyer's payments, of all that is left or part of it, decided on
    /// the refunded total as the batch leaves it; `stale`: on a total that is no longer (or
    /// never was) the payment's.
    pub(super) fn add_refund(&mut self, draft: &mut Draft<'_>, buyer: i64, stale: bool) {
        let mine = refundable(draft)
            .into_iter()
            .filter(|p| p.buyer_id == buyer && (stale || p.refunded < p.amount))
            .collect();
        let Some(payment) = self.choose(mine) else {
            return self.add(draft, buyer, super::Action::Pay);
        };
        let left = payment.amount - payment.refunded;
        let amount = match (left, self.rng.random_bool(0.4)) {
            // A stale view of a payment refunded in full (or past it, by a broken refund).
            (..=0, _) => 1,
            (_, true) => left,
            (_, false) => self.rng.random_range(1..=left),
        };
        let before = match stale {
            false => payment.refunded,
            true if payment.refunded != payment.committed => payment.committed,
            true => payment.refunded + self.rng.random_range(1..=3),
        };
        let after = before + amount;
        let op = self.refund(draft, buyer, payment, (before, after));
        draft.ops.push(op);
    }

    /// A refund of another buyer's payment, or of one that does not exist.
    pub(super) fn add_misdirected_refund(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let theirs = refundable(draft)
            .into_iter()
            .filter(|p| p.buyer_id != buyer)
            .collect();
        let payment = self.choose(theirs).unwrap_or(Refundable {
            id: UNKNOWN_PAYMENT_BASE + self.rng.random_range(0..1_000),
            order_id: UNKNOWN_ORDER_BASE,
            buyer_id: buyer,
            amount: 10,
            committed: 0,
            refunded: 0,
        });
        let amount = self.rng.random_range(1..=payment.amount);
        let before = payment.refunded;
        let op = self.refund(draft, buyer, payment, (before, before + amount));
        draft.ops.push(op);
    }

    /// A refund that takes the payment's refunded total past its amount (a CHECK fails the
    /// batch), or one under a refund id already taken (a duplicate key fails it).
    pub(super) fn add_broken_refund(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let mine = refundable(draft)
            .into_iter()
            .filter(|p| p.buyer_id == buyer)
            .collect();
        let Some(payment) = self.choose(mine) else {
            return self.add_payment(draft, buyer, false);
        };
        let taken: Vec<i64> = draft.model.refunds().map(|r| r.id).collect();
        let duplicate = self.rng.random_bool(0.5) && !taken.is_empty();
        let before = payment.refunded;
        let after = match duplicate {
            true => before + (payment.amount - before).min(1),
            false => payment.amount + 1,
        };
        let mut op = self.refund(draft, buyer, payment, (before, after));
        if let (true, WriteCommand::Refund(refund)) = (duplicate, &mut op.command) {
            let id = self.choose(taken).expect("not empty");
            refund.row.id = id;
            refund.change.entry.refund_id = Some(id);
        }
        draft.ops.push(op);
    }

    /// The write of a refund moving `payment`'s refunded total from `totals.0` to `totals.1`.
    fn refund(
        &mut self,
        draft: &Draft<'_>,
        buyer: i64,
        payment: Refundable,
        (before, after): (i64, i64),
    ) -> WriteOp {
        let amount = after - before;
        let mut op = self.balance_op(draft, buyer, EntryKind::Refund, amount);
        let refund_id = self.next_refund;
        self.next_refund += 1;
        let WriteCommand::Charge(mut change) = op.command else {
            unreachable!("balance_op builds a balance change")
        };
        change.entry.order_id = Some(payment.order_id);
        change.entry.payment_id = Some(payment.id);
        change.entry.refund_id = Some(refund_id);
        let row = RefundRow {
            id: refund_id,
            payment_id: payment.id,
            order_id: payment.order_id,
            buyer_id: buyer,
            amount,
            reason: self
                .rng
                .random_bool(0.5)
                .then(|| "changed my mind".to_owned()),
            balance_after: change.balance,
            ledger_version: change.entry.version,
            refunded_at: change.entry.created_at,
        };
        let order_status = match after == payment.amount {
            true => OrderStatus::Refunded,
            false => OrderStatus::PartiallyRefunded,
        };
        op.command = WriteCommand::Refund(RefundWrite {
            change,
            row,
            refunded_before: before,
            refunded_after: after,
            order_status,
        });
        if self.rng.random_bool(0.3) {
            op.idempotency = Some(self.fresh_key(draft, buyer));
        }
        op.event = Some(self.event(draft, buyer));
        op
    }
}

/// The committed payments, each with the refunds of it earlier in the batch counted.
fn refundable(draft: &Draft<'_>) -> Vec<Refundable> {
    draft
        .model
        .payments()
        .map(|p| {
            let mut in_batch = draft.ops.iter().filter_map(|op| match &op.command {
                WriteCommand::Refund(refund) if refund.row.payment_id == p.id => {
                    Some(refund.refunded_after)
                }
                _ => None,
            });
            Refundable {
                id: p.id,
                order_id: p.order_id,
                buyer_id: p.buyer_id,
                amount: p.amount,
                committed: p.refunded_amount,
                refunded: in_batch.next_back().unwrap_or(p.refunded_amount),
            }
        })
        .collect()
}
