//! The BuyerActor: one per active buyer, the only place that buyer's money moves.
//!
//! Requests of one buyer are handled in arrival order. A charge or payment is decided against
//! the actor's in-memory state, handed to the coordinator, and the state advances at once, so the
//! next request is decided while the previous one commits (pipelining). Each write is fenced on
//! the version and token the actor last wrote, so a write that depended on a refused one is
//! refused too; any refused or failed write drops the state, which is reloaded from the database
//! before the next request (with a fresh fence token).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use tokio::sync::oneshot;

mod command;
mod orders;
mod settle;

pub use command::{BuyerCommand, Command, Reply};
use orders::{KnownOrder, Lookup, OrderBook};
use settle::{Follow, Settled};

use super::coordinator::{CommitError, CommitReply};
use super::errors::{BuyerError, OverloadReason, Receipt, StoredResponse};
use super::mailbox::{Handling, Permit};
use super::registry::BuyerDeps;
use crate::db::models::{BalanceRow, IdempotencyRow, LedgerRow, OrderRow, PaymentRow};
use crate::db::queries;
use crate::db::writer::{BalanceChange, Fence, Rejection, WriteCommand, WriteOp, WriteResult};
use crate::domain::{
    BalanceState, BuyerId, ChargeReceipt, IdempotencyKey, Movement, OrderId, OrderStatus,
    OrderView, PaymentId, PaymentReceipt, Points,
};
use crate::events;
use crate::metrics::Outcome;

/// Most committed Idempotency-Keys a buyer's actor remembers (older ones are found in the
/// database by the HTTP layer, or by the writer's unique key).
const RECENT_KEYS_MAX: usize = 256;

/// The balance as the actor last wrote (or loaded) it.
struct Loaded {
    balance: BalanceState,
    /// The row the next write must find; `None` while the buyer has no balance row.
    fence: Option<Fence>,
    /// This incarnation's token, written with every change.
    token: i64,
}

/// A decided write, ready to go to the coordinator.
struct Write {
    /// Its place in the commit queue, taken before the state advanced.
    place: Permit,
    op: WriteOp,
    keyed: Option<(String, String)>,
    tracked: Tracked,
    /// The answer once it has committed.
    receipt: Receipt,
}

/// What the actor must learn about a committed (or failed) write.
enum Tracked {
    Balance,
    Payment {
        order_id: OrderId,
        done: oneshot::Sender<bool>,
    },
    OrderCreation {
        order_id: OrderId,
        total_price: Points,
    },
}

pub struct BuyerActor {
    buyer: BuyerId,
    deps: Arc<BuyerDeps>,
    mailbox: Arc<super::mailbox::Mailbox>,
    state: Option<Loaded>,
    /// Bumped at every load; results of writes from an older generation no longer touch state.
    generation: u64,
    inflight: usize,
    last_active: Instant,
    keys_in_flight: HashMap<String, String>,
    /// Committed keys: fingerprint and answer.
    recent_keys: HashMap<String, (String, StoredResponse, Instant)>,
    orders: OrderBook,
}

impl BuyerActor {
    pub fn new(
        buyer: BuyerId,
        deps: Arc<BuyerDeps>,
        mailbox: Arc<super::mailbox::Mailbox>,
    ) -> Self {
        BuyerActor {
            buyer,
            deps,
            mailbox,
            state: None,
            generation: 0,
            inflight: 0,
            last_active: Instant::now(),
            keys_in_flight: HashMap::new(),
            recent_keys: HashMap::new(),
            orders: OrderBook::default(),
        }
    }

    fn install(&mut self, row: Option<BalanceRow>) {
        self.generation += 1;
        let (token, _) = uuid::Uuid::new_v4().as_u64_pair();
        self.state = Some(match row {
            Some(row) => Loaded {
                balance: BalanceState {
                    balance: Points::new(row.balance),
                    version: row.version,
                },
                fence: Some(Fence {
                    version: row.version,
                    token: row.fence_token,
                }),
                token: token as i64,
            },
            None => Loaded {
                balance: BalanceState::EMPTY,
                fence: None,
                token: token as i64,
            },
        });
    }

    /// Drops the state after a write of the current generation failed; the next command
    /// reloads it from the database.
    fn invalidate(&mut self, generation: u64) {
        if generation == self.generation && self.state.is_some() {
            tracing::debug!(buyer_id = %self.buyer, "buyer state dropped after a failed write; will reload");
            self.state = None;
            self.orders.known.clear();
        }
    }

    /// Decides `command`. `Ok`: the request is answered (now, or once its write has committed;
    /// `reply` has been taken). `Err`: refused, and `reply` is still there.
    fn execute(
        &mut self,
        command: Command,
        key: Option<IdempotencyKey>,
        reply: &mut Option<Reply>,
        ctx: &mut Context<Self>,
    ) -> Result<(), BuyerError> {
        if self.state.is_none() {
            // A write failed while this command's data was loading.
            return Err(BuyerError::WriteConflict);
        }
        let keyed = key.map(|key| (key.as_str().to_owned(), command.fingerprint(self.buyer)));
        if let Some((key, fingerprint)) = &keyed {
            if let Some(in_flight) = self.keys_in_flight.get(key) {
                return Err(if in_flight == fingerprint {
                    BuyerError::IdempotencyKeyInFlight
                } else {
                    BuyerError::IdempotencyKeyMismatch
                });
            }
            if let Some((committed, answer, _)) = self
                .recent_keys
                .get(key)
                .filter(|(_, _, until)| *until > Instant::now())
            {
                if committed != fingerprint {
                    return Err(BuyerError::IdempotencyKeyMismatch);
                }
                let replay = Receipt::Replayed(answer.clone());
                if let Some(reply) = reply.take() {
                    let _ = reply.send(Ok(replay));
                }
                return Ok(());
            }
        }
        match command {
            Command::Charge { amount } => self.charge(amount, keyed, reply, ctx),
            Command::Pay {
                order_id,
                payment_id,
            } => self.pay(order_id, payment_id, keyed, reply, ctx),
            Command::CreateOrder {
                order_id,
                total_price,
            } => self.create_order(order_id, total_price, reply, ctx),
        }
    }

    fn charge(
        &mut self,
        amount: Points,
        keyed: Option<(String, String)>,
        reply: &mut Option<Reply>,
        ctx: &mut Context<Self>,
    ) -> Result<(), BuyerError> {
        let state = self.state.as_ref().ok_or(BuyerError::WriteConflict)?;
        let movement = state.balance.charge(amount, self.deps.max_balance)?;
        let now = now_micros();
        let receipt = ChargeReceipt {
            buyer_id: self.buyer,
            amount,
            balance: movement.balance_after,
            version: movement.version,
        };
        let op = WriteOp {
            buyer_id: self.buyer.get(),
            command: WriteCommand::Charge(self.balance_change(&movement, None, now)),
            idempotency: self.idempotency_row(&keyed, &receipt, now),
            event: self
                .deps
                .emit_charge_events
                .then(|| events::points_charged(&receipt, now)),
        };
        let place = self.reserve()?;
        self.advance(&movement);
        let write = Write {
            place,
            op,
            keyed,
            tracked: Tracked::Balance,
            receipt: Receipt::Charged(receipt),
        };
        self.submit(ctx, write, reply);
        Ok(())
    }

    fn pay(
        &mut self,
        order_id: OrderId,
        payment_id: PaymentId,
        keyed: Option<(String, String)>,
        reply: &mut Option<Reply>,
        ctx: &mut Context<Self>,
    ) -> Result<(), BuyerError> {
        let price = match self.orders.lookup(order_id) {
            Lookup::Known(KnownOrder::Payable(price)) => price,
            Lookup::Known(KnownOrder::Paid) => return Err(BuyerError::OrderAlreadyPaid),
            Lookup::Known(KnownOrder::NotOurs) => return Err(BuyerError::OrderNotFound),
            // Another payment of this order is committing: its outcome decides this answer.
            Lookup::Paying(first) => {
                let reply = reply.take();
                actix::spawn(async move {
                    let answer = Err(if first.await {
                        BuyerError::OrderAlreadyPaid
                    } else {
                        BuyerError::WriteConflict
                    });
                    if let Some(reply) = reply {
                        let _ = reply.send(answer);
                    }
                });
                return Ok(());
            }
            Lookup::Unknown => return Err(BuyerError::WriteConflict),
        };
        let state = self.state.as_ref().ok_or(BuyerError::WriteConflict)?;
        let movement = state.balance.pay(price)?;
        let now = now_micros();
        let receipt = PaymentReceipt {
            payment_id,
            order_id,
            buyer_id: self.buyer,
            amount: price,
            balance: movement.balance_after,
            version: movement.version,
            paid_at: now,
        };
        let payment = PaymentRow {
            id: payment_id.get(),
            order_id: order_id.get(),
            buyer_id: self.buyer.get(),
            amount: price.get(),
            balance_after: movement.balance_after.get(),
            ledger_version: movement.version,
            paid_at: now.naive_utc(),
        };
        let op = WriteOp {
            buyer_id: self.buyer.get(),
            command: WriteCommand::Pay {
                change: self.balance_change(&movement, Some((order_id, payment_id)), now),
                payment,
            },
            idempotency: self.idempotency_row(&keyed, &receipt, now),
            event: Some(events::payment_completed(&receipt)),
        };
        let place = self.reserve()?;
        self.advance(&movement);
        let (done, outcome) = oneshot::channel();
        let outcome = async move { outcome.await.unwrap_or(false) }
            .boxed()
            .shared();
        self.orders.known.remove(&order_id);
        self.orders.paying.insert(order_id, outcome);
        let write = Write {
            place,
            op,
            keyed,
            tracked: Tracked::Payment { order_id, done },
            receipt: Receipt::Paid(receipt),
        };
        self.submit(ctx, write, reply);
        Ok(())
    }

    fn create_order(
        &mut self,
        order_id: OrderId,
        total_price: Points,
        reply: &mut Option<Reply>,
        ctx: &mut Context<Self>,
    ) -> Result<(), BuyerError> {
        let now = now_micros();
        let view = OrderView {
            order_id,
            buyer_id: self.buyer,
            total_price,
            status: OrderStatus::Pending,
            created_at: now,
            paid_at: None,
        };
        let op = WriteOp {
            buyer_id: self.buyer.get(),
            command: WriteCommand::CreateOrder(OrderRow {
                id: order_id.get(),
                buyer_id: self.buyer.get(),
                total_price: total_price.get(),
                status: OrderStatus::Pending,
                created_at: now.naive_utc(),
                paid_at: None,
            }),
            idempotency: None,
            event: None,
        };
        let place = self.reserve()?;
        self.orders.creating.insert(order_id, total_price);
        let tracked = Tracked::OrderCreation {
            order_id,
            total_price,
        };
        let write = Write {
            place,
            op,
            keyed: None,
            tracked,
            receipt: Receipt::OrderCreated(view),
        };
        self.submit(ctx, write, reply);
        Ok(())
    }

    fn balance_change(
        &self,
        movement: &Movement,
        payment: Option<(OrderId, PaymentId)>,
        now: DateTime<Utc>,
    ) -> BalanceChange {
        let state = self.state.as_ref().expect("checked by the caller");
        BalanceChange {
            expected: state.fence,
            balance: movement.balance_after.get(),
            fence_token: state.token,
            entry: LedgerRow {
                buyer_id: self.buyer.get(),
                version: movement.version,
                kind: movement.kind,
                amount: movement.amount.get(),
                balance_after: movement.balance_after.get(),
                order_id: payment.map(|(order, _)| order.get()),
                payment_id: payment.map(|(_, id)| id.get()),
                created_at: now.naive_utc(),
            },
        }
    }

    fn idempotency_row<R: serde::Serialize>(
        &self,
        keyed: &Option<(String, String)>,
        receipt: &R,
        now: DateTime<Utc>,
    ) -> Option<IdempotencyRow> {
        let (key, fingerprint) = keyed.as_ref()?;
        let ttl = chrono::Duration::from_std(self.deps.idempotency_ttl)
            .unwrap_or(chrono::Duration::days(1));
        Some(IdempotencyRow {
            idempotency_key: key.clone(),
            buyer_id: self.buyer.get(),
            fingerprint: fingerprint.clone(),
            response_status: 200,
            response_body: serde_json::to_string(receipt).unwrap_or_default(),
            created_at: now.naive_utc(),
            expires_at: (now + ttl).naive_utc(),
        })
    }

    /// A place in the commit queue, taken before the state advances.
    fn reserve(&self) -> Result<Permit, BuyerError> {
        self.deps
            .coordinator
            .reserve()
            .map_err(|_| BuyerError::Overloaded(OverloadReason::CommitQueue))
    }

    fn advance(&mut self, movement: &Movement) {
        if let Some(state) = self.state.as_mut() {
            state.balance = BalanceState::after(movement);
            state.fence = Some(Fence {
                version: movement.version,
                token: state.token,
            });
        }
    }

    /// Sends the write to the coordinator and follows it: once it has committed the request
    /// gets its receipt and the actor learns the result ([`Settled`]).
    fn submit(&mut self, ctx: &mut Context<Self>, write: Write, reply: &mut Option<Reply>) {
        let Write {
            place,
            op,
            keyed,
            tracked,
            receipt,
        } = write;
        self.inflight += 1;
        if let Some((key, fingerprint)) = &keyed {
            self.keys_in_flight.insert(key.clone(), fingerprint.clone());
        }
        let follow = Follow {
            actor: ctx.address(),
            generation: self.generation,
            keyed,
            tracked: Some(tracked),
            receipt: Some(receipt),
            reply: reply.take(),
        };
        self.deps
            .coordinator
            .submit(place, op, Box::new(move |result| follow.run(result)));
    }

    /// Applies a write's result to the actor's knowledge; `Ok(Some(..))` is a replayed answer.
    fn settle(
        &mut self,
        generation: u64,
        reply: CommitReply,
        keyed: Option<(String, String)>,
        tracked: Tracked,
    ) -> Result<Option<StoredResponse>, BuyerError> {
        self.inflight -= 1;
        self.last_active = Instant::now();
        if let Some((key, _)) = &keyed {
            self.keys_in_flight.remove(key);
        }
        let committed = reply == Ok(WriteResult::Committed);
        let moves_money = !matches!(tracked, Tracked::OrderCreation { .. });
        match tracked {
            Tracked::Payment { order_id, done } => {
                self.orders.paying.remove(&order_id);
                if committed {
                    self.orders.remember(order_id, KnownOrder::Paid);
                }
                let _ = done.send(committed);
            }
            Tracked::OrderCreation {
                order_id,
                total_price,
            } => {
                self.orders.creating.remove(&order_id);
                if committed {
                    self.orders
                        .remember(order_id, KnownOrder::Payable(total_price));
                }
            }
            Tracked::Balance => {}
        }
        if !committed && moves_money {
            self.invalidate(generation);
        }
        match reply {
            Ok(WriteResult::Committed) => Ok(None),
            Ok(WriteResult::Rejected(rejection)) => match rejection {
                Rejection::StaleFence => Err(BuyerError::WriteConflict),
                Rejection::OrderNotFound => Err(BuyerError::OrderNotFound),
                Rejection::OrderAlreadyPaid => Err(BuyerError::OrderAlreadyPaid),
                Rejection::IdempotencyKeyUsed(record) => match keyed {
                    Some((_, fingerprint)) if fingerprint == record.fingerprint => {
                        Ok(Some(StoredResponse::from_row(&record)))
                    }
                    _ => Err(BuyerError::IdempotencyKeyMismatch),
                },
            },
            Err(CommitError::Unavailable) => Err(BuyerError::DatabaseUnavailable),
            Err(CommitError::Internal) => Err(BuyerError::Internal),
        }
    }

    fn remember_key(&mut self, key: String, fingerprint: String, receipt: &Receipt) {
        let body = match receipt {
            Receipt::Charged(body) => serde_json::to_string(body),
            Receipt::Paid(body) => serde_json::to_string(body),
            Receipt::OrderCreated(_) | Receipt::Replayed(_) => return,
        };
        if self.recent_keys.len() >= RECENT_KEYS_MAX {
            self.recent_keys.clear();
        }
        let answer = StoredResponse {
            status: 200,
            body: body.unwrap_or_default(),
        };
        let Some(until) = Instant::now().checked_add(self.deps.idempotency_ttl) else {
            return;
        };
        self.recent_keys.insert(key, (fingerprint, answer, until));
    }

    fn passivate_if_idle(&mut self, ctx: &mut Context<Self>) {
        let idle = self.last_active.elapsed() >= self.deps.idle_timeout;
        if idle && self.inflight == 0 && self.mailbox.depth() == 0 {
            let me = ctx.address();
            self.deps
                .actors
                .remove_if(&self.buyer, |_, handle| handle.addr == me);
            tracing::trace!(buyer_id = %self.buyer, "idle buyer actor passivated");
            self.deps.metrics.buyers.passivated.inc();
            ctx.stop();
        }
    }
}

/// Now, at the database's precision (microseconds), so a stored answer and a later read agree.
fn now_micros() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

impl Actor for BuyerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let check_every = (self.deps.idle_timeout / 2).max(Duration::from_millis(100));
        ctx.run_interval(check_every, Self::passivate_if_idle);
    }
}

impl Handler<BuyerCommand> for BuyerActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, message: BuyerCommand, ctx: &mut Context<Self>) -> Self::Result {
        let BuyerCommand {
            command,
            idempotency_key,
            permit,
            started,
            reply,
        } = message;
        started.store(true, Ordering::Release);
        let handling = permit.start();
        drop(permit);
        self.last_active = Instant::now();

        let load_order = match &command {
            Command::Pay { order_id, .. }
                if matches!(self.orders.lookup(*order_id), Lookup::Unknown) =>
            {
                Some(*order_id)
            }
            _ => None,
        };
        // Reading an order from the database is a moment to refresh the balance too (same round
        // trip): with nothing in flight, the database is the truth.
        let load_state = self.state.is_none() || (load_order.is_some() && self.inflight == 0);
        if !load_state && load_order.is_none() {
            let mut reply = Some(reply);
            let decided = self.execute(command.clone(), idempotency_key.clone(), &mut reply, ctx);
            // A money rule refused on cached state; another engine on the same database may
            // have changed the buyer since. With none of our writes in flight, the database is
            // the truth: check once more against it before refusing.
            if matches!(decided, Err(BuyerError::Rule(_))) && self.inflight == 0 {
                if let Some(reply) = reply.take() {
                    let load = Load {
                        state: true,
                        order: None,
                    };
                    return self.load_then_execute(command, idempotency_key, load, reply, handling);
                }
            }
            reply_with(reply, decided, handling);
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        let load = Load {
            state: load_state,
            order: load_order,
        };
        self.load_then_execute(command, idempotency_key, load, reply, handling)
    }
}

impl Handler<Settled> for BuyerActor {
    type Result = ();

    fn handle(&mut self, settled: Settled, _ctx: &mut Context<Self>) {
        let Settled {
            generation,
            keyed,
            tracked,
            result,
            receipt,
            reply,
        } = settled;
        let key = keyed.clone();
        let outcome = self.settle(generation, result, keyed, tracked);
        if let (Ok(None), Some((key, fingerprint)), Some(receipt)) = (&outcome, key, &receipt) {
            self.remember_key(key, fingerprint, receipt);
        }
        if let Some(reply) = reply {
            let answer = match outcome {
                Ok(Some(replay)) => Ok(Receipt::Replayed(replay)),
                // Only an uncommitted write comes with its reply, and only a commit settles to
                // Ok(None): not reached.
                Ok(None) => Err(BuyerError::Internal),
                Err(error) => Err(error),
            };
            let _ = reply.send(answer);
        }
    }
}

/// Records how handling ended and, for a refusal, answers the request (an accepted command's
/// answer is on its way: `reply` was taken).
fn reply_with(reply: Option<Reply>, decided: Result<(), BuyerError>, handling: Handling) {
    handling.finish(outcome_of(&decided));
    if let (Err(error), Some(reply)) = (decided, reply) {
        let _ = reply.send(Err(error));
    }
}

/// How a command's handling ended, for the actor metrics: accepted (its write is on its way),
/// refused by a rule of the buyer's own making, or failed.
fn outcome_of(decided: &Result<(), BuyerError>) -> Outcome {
    match decided {
        Ok(()) => Outcome::Ok,
        Err(
            BuyerError::Rule(_)
            | BuyerError::OrderNotFound
            | BuyerError::OrderAlreadyPaid
            | BuyerError::IdempotencyKeyInFlight
            | BuyerError::IdempotencyKeyMismatch,
        ) => Outcome::Refused,
        Err(_) => Outcome::Failed,
    }
}

/// What a command needs read from the database before it can be decided.
struct Load {
    state: bool,
    order: Option<OrderId>,
}

impl BuyerActor {
    /// Loads the buyer's balance and/or an order, then executes the command. The reads block
    /// this buyer's mailbox (AtomicResponse) so later commands see their result.
    fn load_then_execute(
        &mut self,
        command: Command,
        idempotency_key: Option<IdempotencyKey>,
        load: Load,
        reply: Reply,
        handling: Handling,
    ) -> AtomicResponse<Self, ()> {
        let buyer = self.buyer;
        let db = self.deps.db.clone();
        let Load {
            state: load_state,
            order: load_order,
        } = load;
        let load = async move {
            db.run(move |conn| {
                let balance = if load_state {
                    Some(queries::find_balance(conn, buyer.get())?)
                } else {
                    None
                };
                let order = match load_order {
                    Some(order_id) => Some((order_id, queries::find_order(conn, order_id.get())?)),
                    None => None,
                };
                Ok((balance, order))
            })
            .await
        };
        AtomicResponse::new(Box::pin(load.into_actor(self).map(
            move |loaded, act, ctx| {
                let mut reply = Some(reply);
                let decided = match loaded {
                    Ok((balance, order)) => {
                        if let Some(row) = balance {
                            act.install(row);
                        }
                        if let Some((order_id, row)) = order {
                            act.orders.remember_row(act.buyer, order_id, row);
                        }
                        act.execute(command, idempotency_key, &mut reply, ctx)
                    }
                    Err(error) => Err(BuyerError::from_db(error)),
                };
                reply_with(reply, decided, handling);
            },
        )))
    }
}
