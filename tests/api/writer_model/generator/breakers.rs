//! Writes that should fail the whole batch, if nothing refuses them first: what one buyer's
//! broken write does to everyone else's in its batch.

use payment_engine::db::writer::{Fence, WriteCommand};
use payment_engine::domain::EntryKind;
use rand::Rng;

use super::{BUYERS, Draft, Generator, all_orders};

#[derive(Debug, Clone, Copy)]
pub(super) enum Breaker {
    DuplicateOrderId,
    Overdraft,
    DuplicateEventId,
    DuplicatePaymentId,
    RepeatedLedgerVersion,
    BrokenRefund,
}

pub(super) const BREAKERS: [Breaker; 6] = [
    Breaker::DuplicateOrderId,
    Breaker::Overdraft,
    Breaker::DuplicateEventId,
    Breaker::DuplicatePaymentId,
    Breaker::RepeatedLedgerVersion,
    Breaker::BrokenRefund,
];

impl Generator {
    pub(super) fn add_breaker(&mut self, draft: &mut Draft<'_>, buyer: i64, breaker: Breaker) {
        match breaker {
            Breaker::DuplicateOrderId => self.add_duplicate_order_id(draft, buyer),
            Breaker::Overdraft => self.add_overdraft(draft, buyer),
            Breaker::DuplicateEventId => self.add_duplicate_event_id(draft, buyer),
            Breaker::DuplicatePaymentId => self.add_duplicate_payment_id(draft, buyer),
            Breaker::RepeatedLedgerVersion => self.add_repeated_ledger_version(draft, buyer),
            Breaker::BrokenRefund => self.add_broken_refund(draft, buyer),
        }
    }

    /// Two creations of one order id, which may also be taken already.
    fn add_duplicate_order_id(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let existing = all_orders(draft).map(|o| o.id).collect::<Vec<_>>();
        let id = self.choose(existing).unwrap_or(self.next_order);
        let op = self.create_order(draft, buyer, id, 10);
        let twin = self.create_order(draft, buyer, id, 20);
        draft.ops.extend([op, twin]);
    }

    /// A charge that takes the balance below zero.
    fn add_overdraft(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let overdraft = self.views[&buyer].balance + self.rng.random_range(1..=50);
        let op = self.balance_op(draft, buyer, EntryKind::Charge, -overdraft);
        draft.ops.push(op);
        if self.rng.random_bool(0.5) {
            // Hidden in a chain that ends above zero, on the checked path (another buyer's
            // stale write keeps the batch off the set-based one): a coalesced chain checks
            // only its last balance, so the CHECK that fails is the ledger entry's.
            let op = self.balance_op(draft, buyer, EntryKind::Charge, 2 * overdraft);
            draft.ops.push(op);
            self.add_stale_charge(draft, buyer % BUYERS + 1);
        }
    }

    /// Two charges with one event id, which may also be taken already.
    fn add_duplicate_event_id(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let mut op = self.charge(draft, buyer, None);
        let mut twin = self.charge(draft, buyer, None);
        let existing: Vec<String> = draft
            .model
            .outbox_events()
            .map(|e| e.event_id.clone())
            .collect();
        let id = self.choose(existing).unwrap_or_else(|| self.event_id());
        for op in [&mut op, &mut twin] {
            let mut event = self.event(draft, buyer);
            event.event_id = id.clone();
            op.event = Some(event);
        }
        draft.ops.extend([op, twin]);
    }

    /// A payment of a payable order under a payment id already taken.
    fn add_duplicate_payment_id(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let before = draft.ops.len();
        self.add_payment(draft, buyer, false);
        let paid: Vec<i64> = draft.model.payments().map(|p| p.id).collect();
        let Some(id) = self.choose(paid) else { return };
        if let Some(WriteCommand::Pay { payment, change }) =
            draft.ops.get_mut(before).map(|op| &mut op.command)
        {
            payment.id = id;
            change.entry.payment_id = Some(id);
        }
    }

    /// A properly fenced charge whose ledger entry repeats the version it is fenced on.
    fn add_repeated_ledger_version(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let mut op = self.charge(draft, buyer, None);
        if let WriteCommand::Charge(change) = &mut op.command {
            change.entry.version -= 1;
        }
        let view = self.views.get_mut(&buyer).expect("every buyer has a view");
        view.version -= 1;
        view.fence = Some(Fence {
            version: view.version,
            token: view.token,
        });
        draft.ops.push(op);
    }
}
