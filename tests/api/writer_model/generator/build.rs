//! Single writes as a buyer actor builds them, chained on its view.

use chrono::{Duration, NaiveDateTime};
use payment_engine::db::models::{IdempotencyRow, LedgerRow, NewOutboxEvent, OrderRow, PaymentRow};
use payment_engine::db::writer::{BalanceChange, Fence, WriteCommand, WriteOp};
use payment_engine::domain::{EntryKind, OrderStatus};
use rand::Rng;

use super::{Draft, Generator};

impl Generator {
    /// A charge chained on the buyer's view, with a key (`record`, or now and then a fresh one)
    /// and, as when charge events are enabled, now and then an event.
    pub(super) fn charge(
        &mut self,
        draft: &Draft<'_>,
        buyer: i64,
        record: Option<IdempotencyRow>,
    ) -> WriteOp {
        let amount = self.rng.random_range(1..=500);
        let mut op = self.balance_op(draft, buyer, EntryKind::Charge, amount);
        op.idempotency = record.or_else(|| {
            self.rng
                .random_bool(0.3)
                .then(|| self.fresh_key(draft, buyer))
        });
        if self.rng.random_bool(0.5) {
            op.event = Some(self.event(draft, buyer));
        }
        op
    }

    pub(super) fn pay(
        &mut self,
        draft: &Draft<'_>,
        buyer: i64,
        order_id: i64,
        price: i64,
    ) -> WriteOp {
        let mut op = self.balance_op(draft, buyer, EntryKind::Payment, -price);
        let payment_id = self.next_payment;
        self.next_payment += 1;
        let WriteCommand::Charge(mut change) = op.command else {
            unreachable!("balance_op builds a balance change")
        };
        change.entry.order_id = Some(order_id);
        change.entry.payment_id = Some(payment_id);
        let payment = PaymentRow {
            id: payment_id,
            order_id,
            buyer_id: buyer,
            amount: price,
            refunded_amount: 0,
            balance_after: change.balance,
            ledger_version: change.entry.version,
            paid_at: change.entry.created_at,
        };
        op.command = WriteCommand::Pay { change, payment };
        if self.rng.random_bool(0.3) {
            op.idempotency = Some(self.fresh_key(draft, buyer));
        }
        op.event = Some(self.event(draft, buyer));
        op
    }

    /// A balance change by `amount` from the buyer's view, which advances as the actor's does
    /// when it submits the write.
    pub(super) fn balance_op(
        &mut self,
        draft: &Draft<'_>,
        buyer: i64,
        kind: EntryKind,
        amount: i64,
    ) -> WriteOp {
        let at = self.moment(draft);
        let view = self.views.get_mut(&buyer).expect("every buyer has a view");
        let change = BalanceChange {
            expected: view.fence,
            balance: view.balance + amount,
            fence_token: view.token,
            entry: LedgerRow {
                buyer_id: buyer,
                version: view.version + 1,
                kind,
                amount,
                balance_after: view.balance + amount,
                order_id: None,
                payment_id: None,
                refund_id: None,
                created_at: at,
            },
        };
        view.balance += amount;
        view.version += 1;
        view.fence = Some(Fence {
            version: view.version,
            token: view.token,
        });
        WriteOp {
            buyer_id: buyer,
            command: WriteCommand::Charge(change),
            idempotency: None,
            event: None,
            lease: None,
        }
    }

    pub(super) fn create_order(
        &mut self,
        draft: &Draft<'_>,
        buyer: i64,
        id: i64,
        price: i64,
    ) -> WriteOp {
        WriteOp {
            buyer_id: buyer,
            command: WriteCommand::CreateOrder(OrderRow {
                id,
                buyer_id: buyer,
                total_price: price,
                status: OrderStatus::Pending,
                created_at: self.moment(draft),
                paid_at: None,
                cancelled_at: None,
            }),
            idempotency: None,
            event: None,
            lease: None,
        }
    }

    pub(super) fn fresh_key(&mut self, draft: &Draft<'_>, buyer: i64) -> IdempotencyRow {
        let key = format!("key-{}", self.next_key);
        self.next_key += 1;
        let fingerprint = format!("fp-{}", self.rng.random_range(0..1_000_000));
        self.keys.push((key.clone(), fingerprint.clone()));
        self.record(draft, buyer, key, fingerprint)
    }

    /// A record of `key` that expires within seconds (so that it is seen expired) or a day.
    pub(super) fn record(
        &mut self,
        draft: &Draft<'_>,
        buyer: i64,
        key: String,
        fingerprint: String,
    ) -> IdempotencyRow {
        let created_at = self.moment(draft);
        let ttl = if self.rng.random_bool(0.5) {
            Duration::microseconds(self.rng.random_range(1_000_000..6_000_000))
        } else {
            Duration::days(1)
        };
        IdempotencyRow {
            idempotency_key: key,
            buyer_id: buyer,
            response_status: 200,
            response_body: format!("{{\"fingerprint\":\"{fingerprint}\"}}"),
            fingerprint,
            created_at,
            expires_at: created_at + ttl,
        }
    }

    pub(super) fn event(&mut self, draft: &Draft<'_>, buyer: i64) -> NewOutboxEvent {
        NewOutboxEvent {
            event_id: self.event_id(),
            event_type: "WriterModelTest".to_owned(),
            schema_version: 1,
            buyer_id: buyer,
            payload: format!("{{\"n\":{}}}", self.rng.random_range(0..1_000)),
            occurred_at: self.moment(draft),
        }
    }

    pub(super) fn event_id(&mut self) -> String {
        uuid::Uuid::from_u128(self.rng.random()).to_string()
    }

    /// When the actor decided a write: shortly before the batch commits, to the microsecond
    /// (what DATETIME(6) keeps).
    pub(super) fn moment(&mut self, draft: &Draft<'_>) -> NaiveDateTime {
        draft.now - Duration::microseconds(self.rng.random_range(0..5_000))
    }
}
