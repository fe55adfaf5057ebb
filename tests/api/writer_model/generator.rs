//! Random batches of writes, built the way buyer actors build them (each buyer's writes chained
//! on the fence its cached state last saw), with deliberately bad ones mixed in.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime};
use payment_engine::db::models::OrderRow;
use payment_engine::db::writer::{Fence, WriteCommand, WriteOp};
use payment_engine::domain::OrderStatus;
use payment_engine::sim::model::ModelDb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod breakers;
mod build;
mod lifecycle;

use breakers::BREAKERS;

const BUYERS: i64 = 4;
const MAX_OPS_PER_BATCH: usize = 8;
/// Order ids no order has: the generator's own start at 1.
const UNKNOWN_ORDER_BASE: i64 = 1_000_000;

/// What one op sets out to do; the outcome is read from the results, not assumed.
#[derive(Debug, Clone, Copy)]
enum Action {
    Charge,
    Pay,
    CreateOrder,
    StaleCharge,
    PayUnknownOrder,
    PayOthersOrder,
    PayPaidOrder,
    ReuseKeySameFingerprint,
    ReuseKeyOtherFingerprint,
    KeyExpiredAtOnce,
    KeyedOrderCreation,
    Cancel,
    Refund,
    StaleRefund,
    MisdirectedRefund,
}

const ACTIONS: [(Action, u32); 15] = [
    (Action::Charge, 25),
    (Action::Pay, 20),
    (Action::CreateOrder, 15),
    (Action::StaleCharge, 6),
    (Action::PayUnknownOrder, 4),
    (Action::PayOthersOrder, 4),
    (Action::PayPaidOrder, 4),
    (Action::ReuseKeySameFingerprint, 5),
    (Action::ReuseKeyOtherFingerprint, 4),
    (Action::KeyExpiredAtOnce, 2),
    (Action::KeyedOrderCreation, 2),
    (Action::Cancel, 7),
    (Action::Refund, 9),
    (Action::StaleRefund, 3),
    (Action::MisdirectedRefund, 3),
];

/// A buyer actor's cached state.
#[derive(Debug, Clone, Copy)]
struct View {
    balance: i64,
    version: i64,
    fence: Option<Fence>,
    token: i64,
}

pub struct Generator {
    rng: ChaCha8Rng,
    views: BTreeMap<i64, View>,
    next_order: i64,
    next_payment: i64,
    next_refund: i64,
    next_key: u64,
    /// Every (key, fingerprint) generated so far (a few were replaced before they were sent).
    keys: Vec<(String, String)>,
    clock: NaiveDateTime,
}

/// The batch being built.
struct Draft<'a> {
    model: &'a ModelDb,
    now: NaiveDateTime,
    ops: Vec<WriteOp>,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut generator = Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            views: BTreeMap::new(),
            next_order: 1,
            next_payment: 1,
            next_refund: 1,
            next_key: 1,
            keys: Vec::new(),
            clock: chrono::DateTime::from_timestamp(1_900_000_000, 0)
                .expect("a valid time")
                .naive_utc(),
        };
        let empty = ModelDb::new();
        for buyer in 1..=BUYERS {
            generator.reload(buyer, &empty);
        }
        generator
    }

    /// The next batch and the time it commits at.
    pub fn batch(&mut self, model: &ModelDb) -> (Vec<WriteOp>, NaiveDateTime) {
        self.clock += Duration::microseconds(self.rng.random_range(1_000_000..2_000_000));
        let mut draft = Draft {
            model,
            now: self.clock,
            ops: Vec::new(),
        };
        let count = self.rng.random_range(1..=MAX_OPS_PER_BATCH);
        let breaker_at = self
            .rng
            .random_bool(0.1)
            .then(|| self.rng.random_range(0..count));
        for index in 0..count {
            let buyer = self.rng.random_range(1..=BUYERS);
            if breaker_at == Some(index) {
                let breaker = BREAKERS[self.rng.random_range(0..BREAKERS.len())];
                self.add_breaker(&mut draft, buyer, breaker);
            } else {
                let action = self.pick_action();
                self.add(&mut draft, buyer, action);
            }
        }
        (draft.ops, draft.now)
    }

    /// A second writer's charge, fenced on the row as it is, with a token of its own.
    pub fn bump(&mut self, model: &ModelDb) -> Option<(WriteOp, NaiveDateTime)> {
        if !self.rng.random_bool(0.08) {
            return None;
        }
        self.clock += Duration::microseconds(self.rng.random_range(1..1_000));
        let buyer = self.rng.random_range(1..=BUYERS);
        let amount = self.rng.random_range(1..=50);
        let token = self.rng.random();
        Some((model.bump_op(buyer, amount, token, self.clock), self.clock))
    }

    /// After a batch, as the actors do: a buyer whose write did not commit reloads its state
    /// (with a new token, as a new incarnation would); now and then one restarts anyway.
    pub fn settle(&mut self, model: &ModelDb, failed_buyers: &[i64]) {
        for buyer in 1..=BUYERS {
            if failed_buyers.contains(&buyer) || self.rng.random_bool(0.03) {
                self.reload(buyer, model);
            }
        }
    }

    fn reload(&mut self, buyer: i64, model: &ModelDb) {
        let row = model.balance(buyer);
        let view = View {
            balance: row.map_or(0, |row| row.balance),
            version: row.map_or(0, |row| row.version),
            fence: model.fence(buyer),
            token: self.rng.random(),
        };
        self.views.insert(buyer, view);
    }

    fn pick_action(&mut self) -> Action {
        let total: u32 = ACTIONS.iter().map(|(_, weight)| weight).sum();
        let mut roll = self.rng.random_range(0..total);
        for (action, weight) in ACTIONS {
            if roll < weight {
                return action;
            }
            roll -= weight;
        }
        unreachable!("the roll is below the total weight")
    }

    fn add(&mut self, draft: &mut Draft<'_>, buyer: i64, action: Action) {
        match action {
            Action::Charge => {
                let op = self.charge(draft, buyer, None);
                draft.ops.push(op);
            }
            Action::Pay => self.add_payment(draft, buyer, false),
            Action::CreateOrder | Action::KeyedOrderCreation => {
                let price = self.rng.random_range(1..=300);
                let mut op = self.create_order(draft, buyer, self.next_order, price);
                self.next_order += 1;
                if let Action::KeyedOrderCreation = action {
                    op.idempotency = Some(self.fresh_key(draft, buyer));
                }
                draft.ops.push(op);
            }
            Action::StaleCharge => self.add_stale_charge(draft, buyer),
            Action::PayUnknownOrder => {
                let order = UNKNOWN_ORDER_BASE + self.rng.random_range(0..1_000);
                let price = self.rng.random_range(1..=100);
                let op = self.pay(draft, buyer, order, price);
                draft.ops.push(op);
            }
            Action::PayOthersOrder => {
                let theirs = all_orders(draft)
                    .filter(|o| o.buyer_id != buyer)
                    .map(|o| (o.id, o.total_price))
                    .collect();
                match self.choose(theirs) {
                    Some((id, price)) => {
                        let op = self.pay(draft, buyer, id, price);
                        draft.ops.push(op);
                    }
                    None => self.add(draft, buyer, Action::PayUnknownOrder),
                }
            }
            Action::PayPaidOrder => self.add_payment(draft, buyer, true),
            Action::ReuseKeySameFingerprint | Action::ReuseKeyOtherFingerprint => {
                let same = matches!(action, Action::ReuseKeySameFingerprint);
                self.add_reused_key(draft, buyer, same);
            }
            Action::Cancel => self.add_cancel(draft, buyer),
            Action::Refund | Action::StaleRefund => {
                self.add_refund(draft, buyer, matches!(action, Action::StaleRefund))
            }
            Action::MisdirectedRefund => self.add_misdirected_refund(draft, buyer),
            Action::KeyExpiredAtOnce => {
                // Two writes with one key, the first record expired as it is written.
                let mut record = self.fresh_key(draft, buyer);
                record.expires_at = draft.now;
                let first = self.charge(draft, buyer, Some(record.clone()));
                record.fingerprint.push_str("-again");
                let second = self.charge(draft, buyer, Some(record));
                draft.ops.extend([first, second]);
            }
        }
    }

    /// A payment of one of the buyer's orders: a payable one, or (`paid`) one that is paid or
    /// being paid in this batch.
    fn add_payment(&mut self, draft: &mut Draft<'_>, buyer: i64, paid: bool) {
        let paying = paying_in(draft);
        let balance = self.views[&buyer].balance;
        let candidates: Vec<(i64, i64)> = all_orders(draft)
            .filter(|o| o.buyer_id == buyer)
            .filter(|o| {
                let is_paid = !is_pending(o) || paying.contains(&o.id);
                if paid {
                    is_paid
                } else {
                    !is_paid && o.total_price <= balance
                }
            })
            .map(|o| (o.id, o.total_price))
            .collect();
        match self.choose(candidates) {
            Some((id, price)) => {
                let op = self.pay(draft, buyer, id, price);
                draft.ops.push(op);
            }
            None => {
                let op = self.charge(draft, buyer, None);
                draft.ops.push(op);
            }
        }
    }

    fn add_stale_charge(&mut self, draft: &mut Draft<'_>, buyer: i64) {
        let fence = self.views[&buyer].fence;
        let stale = match (self.rng.random_range(0..3), fence) {
            (0, Some(f)) => Some(Fence {
                version: f.version - 1,
                token: f.token,
            }),
            (1, Some(f)) => Some(Fence {
                version: f.version,
                token: f.token ^ 1,
            }),
            (_, Some(_)) => None,
            (_, None) => Some(Fence {
                version: 1,
                token: 1,
            }),
        };
        let mut op = self.charge(draft, buyer, None);
        if let WriteCommand::Charge(change) = &mut op.command {
            change.expected = stale;
        }
        draft.ops.push(op);
    }

    /// A write with a key sent before: a charge, or a payment (of an order payable or not),
    /// or a stale charge, so that the key is checked before the order and the fence.
    fn add_reused_key(&mut self, draft: &mut Draft<'_>, buyer: i64, same: bool) {
        let Some((key, fingerprint)) = self.choose(self.keys.clone()) else {
            return self.add(draft, buyer, Action::Charge);
        };
        let fingerprint = if same {
            fingerprint
        } else {
            format!("{fingerprint}-other")
        };
        let record = self.record(draft, buyer, key, fingerprint);
        let bases = [
            Action::Charge,
            Action::Charge,
            Action::Pay,
            Action::PayPaidOrder,
            Action::PayUnknownOrder,
            Action::StaleCharge,
        ];
        let base = bases[self.rng.random_range(0..bases.len())];
        self.add(draft, buyer, base);
        if let Some(op) = draft.ops.last_mut() {
            op.idempotency = Some(record);
        }
    }

    fn choose<T>(&mut self, mut items: Vec<T>) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        let index = self.rng.random_range(0..items.len());
        Some(items.swap_remove(index))
    }
}

/// The orders committed so far and those created earlier in this batch.
fn all_orders<'a>(draft: &'a Draft<'_>) -> impl Iterator<Item = &'a OrderRow> {
    let created = draft.ops.iter().filter_map(|op| match &op.command {
        WriteCommand::CreateOrder(order) => Some(order),
        _ => None,
    });
    draft.model.orders().chain(created)
}

fn paying_in(draft: &Draft<'_>) -> Vec<i64> {
    draft
        .ops
        .iter()
        .filter_map(|op| match &op.command {
            WriteCommand::Pay { payment, .. } => Some(payment.order_id),
            _ => None,
        })
        .collect()
}

fn is_pending(order: &OrderRow) -> bool {
    order.status == OrderStatus::Pending
}
