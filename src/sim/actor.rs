//! A buyer's actor as the simulation runs it: the same steps as `actors::buyer`'s shell (load
//! what is needed, decide, reserve a commit place, accept, settle), with the mailbox, the
//! database reads and the replies made explicit so that the simulation schedules each of them.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use super::model::ModelDb;
use crate::db::writer::{known_order, known_payment, stored_balance};
use crate::domain::buyer::{
    Answer, BuyerRules, BuyerState, Command, Decision, KnownOrder, KnownPayment, Needs,
    PendingWrite, PlannedWrite, Receipt, Refusal, StoredBalance, WriteOutcome, awaited_answer,
};
use crate::domain::{BuyerId, IdempotencyKey, OrderId, PaymentId};

pub type RequestId = u64;

/// A request a client sent to a buyer.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: RequestId,
    pub command: Command,
    pub key: Option<IdempotencyKey>,
}

/// What a client was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Receipt(Receipt),
    Refused(Refusal),
    /// The batch failed (or its COMMIT's outcome is unknown): a retryable 503.
    Failed,
    /// The commit queue was full: 503.
    Overloaded,
    /// The actor died while handling the request: 500.
    Lost,
}

/// A message in the actor's mailbox.
#[derive(Debug, Clone)]
pub enum Message {
    Command(Request),
    Settled {
        pending: PendingWrite,
        outcome: WriteOutcome,
        request: RequestId,
        /// A committed write's request was answered by the coordinator already.
        answered: bool,
    },
}

/// A read of the database started for a command; the mailbox waits until it completes.
#[derive(Debug, Clone)]
pub struct Loading {
    request: Request,
    balance: Option<Option<StoredBalance>>,
    order: Option<(OrderId, KnownOrder)>,
    payment: Option<(PaymentId, KnownPayment)>,
    /// The buyer's disturbance epoch when the read was made.
    epoch: u64,
}

/// What the world tells an actor's step.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub now: DateTime<Utc>,
    /// The buyer's disturbance epoch now.
    pub epoch: u64,
    /// The fence token a load installs.
    pub token: i64,
    /// Whether the commit queue has a place.
    pub room: bool,
}

/// What the actor hands to the world: replies and writes to submit.
#[derive(Debug, Default)]
pub struct Effects {
    pub replies: Vec<(RequestId, Response)>,
    pub writes: Vec<(RequestId, PlannedWrite)>,
}

/// One incarnation of a buyer's actor.
#[derive(Debug)]
pub struct SimActor {
    pub state: BuyerState,
    pub incarnation: u32,
    pub inbox: VecDeque<Message>,
    pub loading: Option<Loading>,
    pub awaiting: BTreeMap<OrderId, Vec<(RequestId, Command)>>,
    /// The disturbance epoch of the read the current generation was installed from.
    pub generation_epoch: u64,
}

impl SimActor {
    pub fn new(buyer: BuyerId, rules: BuyerRules, incarnation: u32) -> Self {
        SimActor {
            state: BuyerState::new(buyer, rules),
            incarnation,
            inbox: VecDeque::new(),
            loading: None,
            awaiting: BTreeMap::new(),
            generation_epoch: 0,
        }
    }

    pub fn has_work(&self) -> bool {
        self.loading.is_some() || !self.inbox.is_empty()
    }

    /// Handles the next message, or completes the read in progress.
    pub fn step(&mut self, db: &ModelDb, at: Step) -> Effects {
        let mut effects = Effects::default();
        if let Some(loading) = self.loading.take() {
            self.complete_load(loading, at, &mut effects);
            return effects;
        }
        match self.inbox.pop_front() {
            Some(Message::Command(request)) => {
                let needs = self.state.needs(&request.command);
                if needs.nothing() {
                    self.execute_or_reload(request, db, at, &mut effects);
                } else {
                    self.loading = Some(read(db, &self.state, request, needs, at.epoch));
                }
            }
            Some(Message::Settled {
                pending,
                outcome,
                request,
                answered,
            }) => self.settle(&pending, &outcome, request, answered, &mut effects),
            None => {}
        }
        effects
    }

    fn execute_or_reload(
        &mut self,
        request: Request,
        db: &ModelDb,
        at: Step,
        effects: &mut Effects,
    ) {
        match self.execute(&request, at, effects) {
            // As the shell does: a rule refused on cached state, nothing in flight: read the
            // balance again before refusing.
            Err(Refusal::Rule(_)) if self.state.idle() => {
                let needs = self.state.reload_needs(&request.command);
                self.loading = Some(read(db, &self.state, request, needs, at.epoch));
            }
            Err(refusal) => effects
                .replies
                .push((request.id, Response::Refused(refusal))),
            Ok(()) => {}
        }
    }

    fn complete_load(&mut self, loading: Loading, at: Step, effects: &mut Effects) {
        if let Some(balance) = loading.balance {
            self.state.install(balance, at.token);
            self.generation_epoch = loading.epoch;
        }
        if let Some((order_id, known)) = loading.order {
            self.state.learn_order(order_id, known);
        }
        if let Some((payment_id, known)) = loading.payment {
            self.state.learn_payment(payment_id, known);
        }
        let request = loading.request;
        if let Err(refusal) = self.execute(&request, at, effects) {
            effects
                .replies
                .push((request.id, Response::Refused(refusal)));
        }
    }

    /// The shell's `execute`: decide, then answer, wait, or accept a write.
    fn execute(
        &mut self,
        request: &Request,
        at: Step,
        effects: &mut Effects,
    ) -> Result<(), Refusal> {
        match self
            .state
            .decide(&request.command, request.key.as_ref(), at.now)?
        {
            Decision::Replay(answer) => effects
                .replies
                .push((request.id, Response::Receipt(Receipt::Replayed(answer)))),
            Decision::AwaitOrder(order_id) => self
                .awaiting
                .entry(order_id)
                .or_default()
                .push((request.id, request.command.clone())),
            Decision::Answer(receipt) => effects
                .replies
                .push((request.id, Response::Receipt(receipt))),
            Decision::Write(_) if !at.room => {
                effects.replies.push((request.id, Response::Overloaded))
            }
            Decision::Write(write) => {
                self.state.accept(&write);
                effects.writes.push((request.id, write));
            }
        }
        Ok(())
    }

    /// The shell's `Settled` handler.
    fn settle(
        &mut self,
        pending: &PendingWrite,
        outcome: &WriteOutcome,
        request: RequestId,
        answered: bool,
        effects: &mut Effects,
    ) {
        let settlement = self.state.settle(pending, outcome);
        if let Some((order_id, fate)) = settlement.order {
            for (waiting, command) in self.awaiting.remove(&order_id).unwrap_or_default() {
                let response = match awaited_answer(&command, order_id, fate) {
                    Ok(receipt) => Response::Receipt(receipt),
                    Err(refusal) => Response::Refused(refusal),
                };
                effects.replies.push((waiting, response));
            }
        }
        if answered {
            return;
        }
        let response = match settlement.answer {
            Answer::Replay(answer) => Response::Receipt(Receipt::Replayed(answer)),
            Answer::Refused(refusal) => Response::Refused(refusal),
            Answer::Failed(_) => Response::Failed,
            Answer::Committed => unreachable!("a committed write's request is answered at commit"),
        };
        effects.replies.push((request, response));
    }

    /// The actor dies: requests it had started are lost; those still queued go to the next
    /// incarnation, as the registry resends commands that never started.
    pub fn die(self) -> (Vec<RequestId>, VecDeque<Request>) {
        let mut lost: Vec<RequestId> = self
            .awaiting
            .into_values()
            .flatten()
            .map(|(id, _)| id)
            .collect();
        lost.extend(self.loading.map(|loading| loading.request.id));
        let mut queued = VecDeque::new();
        for message in self.inbox {
            match message {
                Message::Command(request) => queued.push_back(request),
                Message::Settled {
                    request, answered, ..
                } if !answered => lost.push(request),
                Message::Settled { .. } => {}
            }
        }
        (lost, queued)
    }
}

/// The shell's read (`actors::buyer::load`): the balance row, the order and the payment it
/// needs, as the database has them now, taken as the engine's own `known_*` take the rows.
fn read(db: &ModelDb, state: &BuyerState, request: Request, needs: Needs, epoch: u64) -> Loading {
    let buyer = state.buyer();
    Loading {
        balance: needs
            .balance
            .then(|| db.balance(buyer.get()).map(stored_balance)),
        order: needs
            .order
            .map(|order_id| (order_id, known_order(buyer, db.find_order(order_id.get())))),
        payment: needs.payment.map(|payment_id| {
            let row = db.find_payment(payment_id.get());
            (payment_id, known_payment(buyer, row))
        }),
        request,
        epoch,
    }
}
