//! The rules of one buyer, without I/O: what a command decides against what the buyer's actor
//! knows, and what a write's result teaches it.
//!
//! [`BuyerState`] is driven in three steps, by the actor shell and, the same way, by the
//! deterministic simulation (`crate::sim`):
//! 1. [`BuyerState::needs`] says what must be read first (the balance row, an order), and
//!    [`BuyerState::install`] / [`BuyerState::learn_order`] take what was read;
//! 2. [`BuyerState::decide`] answers a command without changing anything: a refusal, a replay,
//!    a wait on another payment of the same order, or a [`PlannedWrite`]. Once the write has a
//!    place in the commit queue, [`BuyerState::accept`] advances the state at once, so the next
//!    command is decided while this one commits (pipelining), fenced on this write's result;
//! 3. [`BuyerState::settle`] takes the write's result. A write of the current generation that
//!    did not commit drops the balance: every later write in flight was fenced on it and the
//!    writer refuses them, and the next command reloads the row with a new fence token. Results
//!    of an older generation never touch the reloaded balance.

use chrono::{DateTime, Utc};

mod books;
mod decide;
mod keys;
mod orders;
mod outcome;
mod payments;
mod request;
#[cfg(test)]
mod tests;

pub use decide::awaited_answer;
pub use keys::{KeyBook, RECENT_KEYS_MAX};
pub use orders::{KNOWN_ORDERS_MAX, KnownOrder, Lookup, OrderBook};
use outcome::answer_of;
pub use outcome::{Answer, BatchFailure, OrderFate, Settlement, WriteOutcome, WriteRefusal};
pub use payments::{KNOWN_PAYMENTS_MAX, KnownPayment, PaymentBook, PaymentLookup};
pub use request::{
    Command, Decision, FencedMovement, Fingerprint, KeyClaim, KeyRecord, Needs, PendingWrite,
    PlannedWrite, Receipt, RefundPlan, Refusal, StoredResponse, Tracked, WriteKind,
};

use super::{BalanceState, BuyerId, IdempotencyKey, OrderId, PaymentId, Points};
#[cfg(test)]
use super::{ChargeReceipt, OrderStatus, OrderView, PaymentReceipt};
use books::LazyBooks;

/// The balance row state a write expects to replace: its version and the token of the
/// incarnation that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub version: i64,
    pub token: i64,
}

/// A buyer's balance row as read from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBalance {
    pub balance: Points,
    pub version: i64,
    pub fence_token: i64,
}

/// Counts loads of the balance: a write's result settles against the generation it was decided
/// in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Generation(pub u64);

/// The limits every buyer's rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuyerRules {
    pub max_balance: Points,
    /// How long a committed Idempotency-Key holds.
    pub idempotency_ttl: chrono::Duration,
}

/// The balance as this state last wrote (or loaded) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loaded {
    balance: BalanceState,
    /// The row the next write must find; `None` while the buyer has no balance row.
    fence: Option<Fence>,
    /// This incarnation's token, written with every change.
    token: i64,
}

/// What one buyer's actor knows, and the rules it decides by.
#[derive(Debug, Clone)]
pub struct BuyerState {
    buyer: BuyerId,
    rules: BuyerRules,
    /// `None` until loaded, and again after a write of this generation failed.
    balance: Option<Loaded>,
    generation: Generation,
    in_flight: usize,
    /// Keys, orders and payments known: boxed on first use.
    books: LazyBooks,
}

impl BuyerState {
    pub fn new(buyer: BuyerId, rules: BuyerRules) -> Self {
        BuyerState {
            buyer,
            rules,
            balance: None,
            generation: Generation::default(),
            in_flight: 0,
            books: LazyBooks::default(),
        }
    }

    pub fn buyer(&self) -> BuyerId {
        self.buyer
    }

    /// The balance as decided so far (including writes in flight); `None` if it must be loaded.
    pub fn balance(&self) -> Option<BalanceState> {
        self.balance.map(|loaded| loaded.balance)
    }

    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Writes accepted and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// With no write in flight, the database is the truth: a refusal on cached state is worth
    /// checking against it once more (another engine may have changed the buyer).
    pub fn idle(&self) -> bool {
        self.in_flight == 0
    }

    /// What must be read before `command` can be decided. Reading an order (or a payment) is a
    /// moment to refresh the balance too (same round trip) when nothing is in flight; reading
    /// the balance forgets the orders and payments known, so the command's own is read with it.
    pub fn needs(&self, command: &Command) -> Needs {
        let (unknown, in_flight, order, payment) = match command {
            Command::Pay { order_id, .. } | Command::Cancel { order_id } => (
                self.books.get().orders.lookup(*order_id) == Lookup::Unknown,
                self.books.get().orders.in_flight(*order_id),
                Some(*order_id),
                None,
            ),
            Command::Refund { payment_id, .. } => (
                self.books.get().payments.lookup(*payment_id) == PaymentLookup::Unknown,
                self.books.get().payments.in_flight(*payment_id),
                None,
                Some(*payment_id),
            ),
            Command::Charge { .. } | Command::CreateOrder { .. } => {
                return Needs {
                    balance: self.balance.is_none(),
                    ..Needs::default()
                };
            }
        };
        let balance = self.balance.is_none() || (unknown && self.idle());
        let read = unknown || (balance && !in_flight);
        Needs {
            balance,
            order: order.filter(|_| read),
            payment: payment.filter(|_| read),
        }
    }

    /// What to read to check a refusal once more against the database: the balance, and the
    /// command's order or payment (a reload forgets those known).
    pub fn reload_needs(&self, command: &Command) -> Needs {
        let (order, payment) = match command {
            Command::Pay { order_id, .. } | Command::Cancel { order_id }
                if !self.books.get().orders.in_flight(*order_id) =>
            {
                (Some(*order_id), None)
            }
            Command::Refund { payment_id, .. }
                if !self.books.get().payments.in_flight(*payment_id) =>
            {
                (None, Some(*payment_id))
            }
            _ => (None, None),
        };
        Needs {
            balance: true,
            order,
            payment,
        }
    }

    /// Takes the balance row as read (`None`: the buyer has none yet), with a new fence token
    /// for this incarnation: a new generation begins, and the orders known are forgotten.
    pub fn install(&mut self, stored: Option<StoredBalance>, token: i64) {
        self.generation.0 += 1;
        // What was read of orders and payments before may be older than this row (another
        // writer, or an earlier incarnation's writes, may have paid or refunded them since):
        // read them again too.
        self.books.forget_known();
        self.balance = Some(match stored {
            Some(row) => Loaded {
                balance: BalanceState {
                    balance: row.balance,
                    version: row.version,
                },
                fence: Some(Fence {
                    version: row.version,
                    token: row.fence_token,
                }),
                token,
            },
            None => Loaded {
                balance: BalanceState::EMPTY,
                fence: None,
                token,
            },
        });
    }

    /// Takes an order as read from the database.
    pub fn learn_order(&mut self, order_id: OrderId, known: KnownOrder) {
        self.books.get_mut().orders.remember(order_id, known);
    }

    /// Takes a payment as read from the database.
    pub fn learn_payment(&mut self, payment_id: PaymentId, known: KnownPayment) {
        self.books.get_mut().payments.remember(payment_id, known);
    }

    /// Decides `command` against what is known, changing nothing.
    pub fn decide(
        &self,
        command: &Command,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
    ) -> Result<Decision, Refusal> {
        let loaded = self.balance.as_ref().ok_or(Refusal::StaleState)?;
        let claim = key.map(|key| KeyClaim {
            key: key.clone(),
            fingerprint: command.fingerprint(self.buyer),
        });
        if let Some(claim) = &claim {
            if let Some(answer) = self.books.get().keys.check(claim, now)? {
                return Ok(Decision::Replay(answer));
            }
        }
        let (kind, receipt) = match self.decide_write(loaded, command, now)? {
            Ok(write) => write,
            Err(decision) => return Ok(decision),
        };
        // A cancellation is idempotent by nature: its key is checked but not recorded.
        let key = claim.and_then(|claim| {
            Some(KeyRecord {
                answer: receipt.stored()?,
                claim,
                expires_at: now + self.rules.idempotency_ttl,
            })
        });
        Ok(Decision::Write(PlannedWrite {
            buyer: self.buyer,
            generation: self.generation,
            kind,
            key,
            receipt,
            at: now,
        }))
    }

    /// `write` has its place in the commit queue: the state advances past it at once.
    pub fn accept(&mut self, write: &PlannedWrite) {
        debug_assert_eq!(write.generation, self.generation, "decided on this state");
        self.in_flight += 1;
        if let Some(record) = &write.key {
            self.books.get_mut().keys.start(&record.claim);
        }
        if let (Some(change), Some(loaded)) = (write.change(), self.balance.as_mut()) {
            loaded.balance = BalanceState::after(&change.movement);
            loaded.fence = Some(change.fence_after());
        }
        match &write.kind {
            WriteKind::Pay { order_id, .. } | WriteKind::Cancel { order_id, .. } => {
                self.books.get_mut().orders.start_settling(*order_id)
            }
            WriteKind::CreateOrder {
                order_id,
                total_price,
            } => self
                .books
                .get_mut()
                .orders
                .start_creation(*order_id, *total_price),
            WriteKind::Refund { refund, .. } => self
                .books
                .get_mut()
                .payments
                .start_refund(refund.payment_id, refund.amount),
            WriteKind::Charge(_) => {}
        }
    }

    /// Takes the result of a write accepted earlier.
    pub fn settle(&mut self, pending: &PendingWrite, outcome: &WriteOutcome) -> Settlement {
        self.in_flight = self
            .in_flight
            .checked_sub(1)
            .expect("every settled write was accepted");
        let committed = *outcome == WriteOutcome::Committed;
        if let Some(record) = &pending.key {
            self.books.get_mut().keys.finish(record, committed);
        }
        let order = match pending.tracked {
            Tracked::Payment {
                order_id,
                payment_id,
                amount,
            } => {
                // Refunds of a payment just made are decided without reading it back.
                if committed {
                    let known = KnownPayment::Refundable {
                        order_id,
                        amount,
                        refunded: Points::ZERO,
                    };
                    self.books.get_mut().payments.remember(payment_id, known);
                }
                Some((order_id, OrderFate::Paid))
            }
            Tracked::Cancellation { order_id } => Some((order_id, OrderFate::Cancelled)),
            Tracked::OrderCreation {
                order_id,
                total_price,
            } => {
                self.books
                    .get_mut()
                    .orders
                    .finish_creation(order_id, total_price, committed);
                None
            }
            Tracked::Refund { payment_id } => {
                self.books
                    .get_mut()
                    .payments
                    .finish_refund(payment_id, committed);
                None
            }
            Tracked::Balance => None,
        };
        let order = order.map(|(order_id, fate)| {
            let fate = committed.then_some(fate);
            self.books
                .get_mut()
                .orders
                .finish_settling(order_id, fate.map(OrderFate::known));
            (order_id, fate)
        });
        if !committed && pending.moves_money() {
            self.invalidate(pending.generation);
        }
        Settlement {
            answer: answer_of(pending, outcome),
            order,
        }
    }

    /// Drops what is known of the buyer (another engine may have moved its money since it was
    /// read): the next command reloads it. Writes in flight settle as usual.
    pub fn forget(&mut self) {
        self.invalidate(self.generation);
    }

    /// Drops the balance after a write of the current generation failed: the next command
    /// reloads it.
    fn invalidate(&mut self, generation: Generation) {
        if generation == self.generation && self.balance.is_some() {
            self.balance = None;
            self.books.forget_known();
        }
    }
}
