//! Random pipelines against a model of the database: one seed drives the commands, how the
//! writer's batches end and when their results reach the state; invariants are checked after
//! every step.
use std::collections::{HashMap, HashSet, VecDeque};

use proptest::prelude::*;

use super::*;

use super::sim_db::*;
use crate::domain::RefundId;

/// What the state's balance must be, counted since the last install.
#[derive(Default)]
struct SinceInstall {
    installed: bool,
    generation: Generation,
    base: Option<BalanceState>,
    accepted_amount: i64,
    accepted_writes: i64,
    /// A money write of this generation did not commit: the balance must be dropped.
    dropped: bool,
    /// The row changed by other hands than this generation's writes.
    moved_behind: bool,
}

struct Sim {
    state: BuyerState,
    db: Db,
    now: DateTime<Utc>,
    last_token: i64,
    next_order: i64,
    next_payment: i64,
    created: Vec<OrderId>,
    /// The keyed requests sent so far.
    keyed: Vec<(Command, IdempotencyKey)>,
    /// Accepted, not yet taken by the writer.
    queued: VecDeque<PlannedWrite>,
    /// Written, the result not yet settled.
    written: VecDeque<(PlannedWrite, WriteOutcome)>,
    accepted: usize,
    settled: usize,
    books: SinceInstall,
}

impl Sim {
    fn new() -> Self {
        let rules = BuyerRules {
            max_balance: points(SIM_MAX_BALANCE),
            idempotency_ttl: Duration::seconds(SIM_TTL_S),
        };
        let mut db = Db::default();
        let foreign = DbOrder {
            buyer: other_buyer(),
            paid: false,
            total_price: points(10),
        };
        db.orders.insert(order(FOREIGN_ORDER), foreign);
        Sim {
            state: BuyerState::new(buyer(), rules),
            db,
            now: t0(),
            last_token: 100,
            next_order: 1,
            next_payment: 1,
            created: Vec::new(),
            keyed: Vec::new(),
            queued: VecDeque::new(),
            written: VecDeque::new(),
            accepted: 0,
            settled: 0,
            books: SinceInstall::default(),
        }
    }

    fn run(&mut self, step: &Step) {
        let key_of = |index: &Option<u8>| index.map(|i| key(&format!("key-{i}")));
        match step {
            Step::Charge { amount, key } => self.command(&charge(*amount), key_of(key)),
            Step::Pay { order, key } => {
                let order_id = match self.created.iter().rev().nth(*order) {
                    Some(id) => *id,
                    None if *order % 2 == 0 => super::order(FOREIGN_ORDER),
                    None => super::order(MISSING_ORDER),
                };
                let payment_id = payment(self.next_payment);
                self.next_payment += 1;
                let command = Command::Pay {
                    order_id,
                    payment_id,
                };
                self.command(&command, key_of(key));
            }
            Step::CreateOrder { price, key } => {
                let order_id = self.next_order;
                self.next_order += 1;
                self.command(&create(order_id, *price), key_of(key));
            }
            Step::Commit { writes, fate } => self.commit(*writes, *fate),
            Step::Settle { results } => self.settle(*results),
            Step::Wait { secs } => self.now += Duration::seconds(*secs),
            Step::OtherEnginePays { pick } => {
                if self.db.other_engine_pays(*pick) {
                    self.books.moved_behind = true;
                }
            }
            Step::OtherEngineCharges { amount } => {
                if self.db.other_engine_charges(*amount) {
                    self.books.moved_behind = true;
                }
            }
            Step::Retry { back } => {
                if let Some((command, key)) = self.keyed.iter().rev().nth(*back).cloned() {
                    let command = self.allocate_ids(command);
                    self.command(&command, Some(key));
                }
            }
        }
        self.check();
    }

    /// The same request as the engine receives it again: with ids it allocates afresh.
    fn allocate_ids(&mut self, command: Command) -> Command {
        match command {
            Command::Pay { order_id, .. } => {
                let payment_id = payment(self.next_payment);
                self.next_payment += 1;
                Command::Pay {
                    order_id,
                    payment_id,
                }
            }
            Command::CreateOrder { total_price, .. } => {
                let order_id = self.next_order;
                self.next_order += 1;
                create(order_id, total_price.get())
            }
            Command::Refund {
                payment_id,
                amount,
                reason,
                ..
            } => Command::Refund {
                payment_id,
                refund_id: RefundId::try_from(self.next_payment).expect("positive"),
                amount,
                reason,
            },
            other @ (Command::Charge { .. } | Command::Cancel { .. }) => other,
        }
    }

    /// Reads the balance row, as a new incarnation's generation.
    fn install(&mut self) {
        self.last_token += 1;
        self.state.install(self.db.row, self.last_token);
        self.books = SinceInstall {
            installed: true,
            generation: Generation(self.books.generation.0 + 1),
            base: Some(self.db.row.map_or(BalanceState::EMPTY, |row| BalanceState {
                balance: row.balance,
                version: row.version,
            })),
            ..SinceInstall::default()
        };
    }

    /// What the actor shell does with a command.
    fn command(&mut self, command: &Command, key: Option<IdempotencyKey>) {
        if let Some(key) = &key {
            self.keyed.push((command.clone(), key.clone()));
        }
        let needs = self.state.needs(command);
        if needs.balance {
            self.install();
        }
        if let Some(order_id) = needs.order {
            self.state
                .learn_order(order_id, self.db.known_order(order_id));
        }
        let mut decision = self.state.decide(command, key.as_ref(), self.now);
        // A money rule's refusal is checked once more against the database when idle.
        if matches!(decision, Err(Refusal::Rule(_))) && self.state.idle() {
            let reload = self.state.reload_needs(command);
            self.install();
            if let Some(order_id) = reload.order {
                self.state
                    .learn_order(order_id, self.db.known_order(order_id));
            }
            decision = self.state.decide(command, key.as_ref(), self.now);
        }
        match decision {
            Ok(Decision::Write(write)) => self.accept(write),
            Ok(Decision::Replay(answer)) => {
                let key = key.expect("only a keyed request replays");
                let stored = self.db.live_key(key.as_str(), self.now);
                let stored = stored.expect("a replayed key has a live record");
                assert_eq!(stored.fingerprint, command.fingerprint(buyer()));
                assert_eq!(answer, stored.answer);
            }
            Ok(Decision::AwaitOrder(order_id)) => {
                let paying = self.unsettled().any(|w| pays(w, order_id));
                assert!(paying, "awaits a payment of {order_id} that is in flight");
            }
            Ok(Decision::Answer(receipt)) => {
                assert!(
                    matches!(command, Command::Cancel { .. }),
                    "only a cancellation is answered without a write: {receipt:?}"
                );
            }
            Err(refusal) => self.check_refusal(command, key.as_ref(), &refusal),
        }
    }

    fn accept(&mut self, write: PlannedWrite) {
        assert_eq!(write.generation, self.state.generation());
        if let WriteKind::Pay { order_id, .. } = write.kind {
            let paying = self.unsettled().any(|w| pays(w, order_id));
            assert!(!paying, "two payments of {order_id} in flight");
            let ours = self.db.known_order(order_id) != KnownOrder::NotOurs;
            let creating = self.unsettled().any(|w| creates(w, order_id));
            assert!(
                ours || creating,
                "pays {order_id}, which is neither stored nor being created"
            );
        }
        if let Some(record) = &write.key {
            let key = &record.claim.key;
            let twice = self.unsettled().any(|w| key_of(w) == Some(key));
            assert!(!twice, "two writes with key {key} in flight");
        }
        if let WriteKind::CreateOrder { order_id, .. } = write.kind {
            self.created.push(order_id);
        }
        self.state.accept(&write);
        self.accepted += 1;
        if let Some(change) = write.change() {
            self.books.accepted_amount += change.movement.amount.get();
            self.books.accepted_writes += 1;
        }
        self.queued.push_back(write);
    }

    fn check_refusal(&self, command: &Command, key: Option<&IdempotencyKey>, refusal: &Refusal) {
        let fingerprint = command.fingerprint(buyer());
        let in_flight_with = |same: bool| {
            self.unsettled().any(|w| {
                w.key.as_ref().is_some_and(|record| {
                    Some(&record.claim.key) == key
                        && (record.claim.fingerprint == fingerprint) == same
                })
            })
        };
        let order_of = |command: &Command| match command {
            Command::Pay { order_id, .. } => self.db.known_order(*order_id),
            other => panic!("{other:?} refused as a payment"),
        };
        let balance = self.state.balance().expect("refused on a loaded balance");
        match refusal {
            Refusal::StaleState | Refusal::NotOwner => {
                panic!("{command:?} refused as {refusal:?} although what it needs was read")
            }
            Refusal::IdempotencyKeyInFlight => assert!(in_flight_with(true)),
            Refusal::IdempotencyKeyMismatch => {
                let key = key.expect("a mismatch needs a key");
                let committed = self.db.live_key(key.as_str(), self.now);
                let committed_other = committed.is_some_and(|k| k.fingerprint != fingerprint);
                assert!(
                    in_flight_with(false) || committed_other,
                    "{key} is no mismatch"
                );
            }
            Refusal::OrderAlreadyPaid => assert_eq!(order_of(command), KnownOrder::Paid),
            Refusal::OrderNotFound => assert_eq!(order_of(command), KnownOrder::NotOurs),
            Refusal::OrderCancelled => assert_eq!(order_of(command), KnownOrder::Cancelled),
            // This workload refunds nothing.
            Refusal::PaymentNotFound | Refusal::RefundExceedsPayment { .. } => {
                panic!("{command:?} refused as a refund: {refusal:?}")
            }
            Refusal::Rule(DomainError::InsufficientBalance {
                balance: have,
                required,
            }) => {
                assert_eq!(*have, balance.balance);
                assert!(have < required);
            }
            Refusal::Rule(DomainError::BalanceLimitExceeded { max }) => {
                let Command::Charge { amount } = command else {
                    panic!("{command:?} refused over the limit")
                };
                assert_eq!(max.get(), SIM_MAX_BALANCE);
                assert!(balance.balance.get() + amount.get() > SIM_MAX_BALANCE);
            }
        }
    }

    fn commit(&mut self, writes: usize, fate: Fate) {
        let batch: Vec<PlannedWrite> = self.queued.drain(..writes.min(self.queued.len())).collect();
        for write in batch {
            let applied = match fate {
                Fate::Fails => None,
                Fate::Commits | Fate::CommitsUnreported => Some(self.db.apply(&write, self.now)),
            };
            let wrote = applied == Some(WriteOutcome::Committed) && write.change().is_some();
            if wrote && write.generation != self.books.generation {
                self.books.moved_behind = true;
            }
            let outcome = match fate {
                Fate::Fails => UNAVAILABLE,
                Fate::Commits => applied.expect("applied"),
                Fate::CommitsUnreported => WriteOutcome::Failed(BatchFailure::Internal),
            };
            self.written.push_back((write, outcome));
        }
    }

    fn settle(&mut self, results: usize) {
        for _ in 0..results {
            let Some((write, outcome)) = self.written.pop_front() else {
                return;
            };
            let pending = write.pending();
            let settlement = self.state.settle(&pending, &outcome);
            self.settled += 1;
            let committed = outcome == WriteOutcome::Committed;
            let order = match write.kind {
                WriteKind::Pay { order_id, .. } => {
                    Some((order_id, committed.then_some(OrderFate::Paid)))
                }
                _ => None,
            };
            assert_eq!(settlement.order, order);
            assert_eq!(settlement.answer, expected_answer(&write, &outcome));
            let current = write.generation == self.books.generation;
            if !committed && pending.moves_money() && current {
                self.books.dropped = true;
            }
        }
    }

    fn unsettled(&self) -> impl Iterator<Item = &PlannedWrite> {
        self.queued
            .iter()
            .chain(self.written.iter().map(|(write, _)| write))
    }

    /// Writes everything still queued and settles every result.
    fn drain(&mut self) {
        self.commit(usize::MAX, Fate::Commits);
        self.settle(usize::MAX);
        self.check();
        assert_eq!(self.state.in_flight(), 0);
        assert!(self.state.idle());
    }

    fn check(&self) {
        assert_eq!(self.state.in_flight(), self.accepted - self.settled);
        assert_eq!(
            self.state.in_flight(),
            self.queued.len() + self.written.len()
        );
        assert_eq!(self.state.generation(), self.books.generation);
        let expected_none = !self.books.installed || self.books.dropped;
        assert_eq!(
            self.state.balance().is_none(),
            expected_none,
            "balance dropped exactly after a failure of its generation"
        );
        if let Some(now) = self.state.balance() {
            self.check_balance(now);
        }
        self.check_db();
    }

    fn check_balance(&self, now: BalanceState) {
        let books = &self.books;
        let base = books.base.expect("installed");
        assert!(
            (0..=SIM_MAX_BALANCE).contains(&now.balance.get()),
            "{now:?}"
        );
        assert_eq!(
            now.balance.get(),
            base.balance.get() + books.accepted_amount
        );
        assert_eq!(now.version, base.version + books.accepted_writes);
        let this_generation = |w: &&PlannedWrite| w.generation == books.generation;
        let unsettled = self
            .unsettled()
            .filter(this_generation)
            .filter(|w| w.change().is_some());
        if unsettled.count() > 0 {
            return;
        }
        // Nothing of this generation in flight: the loaded row plus what it committed.
        let committed = self
            .db
            .log
            .iter()
            .filter(|c| c.generation == books.generation);
        let (amount, writes) = committed.fold((0, 0), |(a, n), c| (a + c.amount, n + 1));
        assert_eq!(now.balance.get(), base.balance.get() + amount);
        assert_eq!(now.version, base.version + writes);
        if !books.moved_behind {
            let stored = self.db.row.map_or(BalanceState::EMPTY, |row| BalanceState {
                balance: row.balance,
                version: row.version,
            });
            assert_eq!(now, stored, "the state is the stored row");
        }
    }

    fn check_db(&self) {
        let stored = self.db.row.map_or(0, |row| row.balance.get());
        assert_eq!(stored, self.db.moved);
        let mut paid = HashSet::new();
        for order_id in self.db.log.iter().filter_map(|c| c.paid) {
            assert!(paid.insert(order_id), "{order_id} paid twice");
        }
        let mut expiry: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for commit in &self.db.log {
            let Some((key, expires_at)) = &commit.key else {
                continue;
            };
            if let Some(held_until) = expiry.insert(key, *expires_at) {
                assert!(
                    commit.at >= held_until,
                    "{key} moved money twice before it expired"
                );
            }
        }
    }
}

fn pays(write: &PlannedWrite, order_id: OrderId) -> bool {
    matches!(write.kind, WriteKind::Pay { order_id: paid, .. } if paid == order_id)
}

fn creates(write: &PlannedWrite, order_id: OrderId) -> bool {
    matches!(write.kind, WriteKind::CreateOrder { order_id: created, .. } if created == order_id)
}

fn key_of(write: &PlannedWrite) -> Option<&IdempotencyKey> {
    write.key.as_ref().map(|record| &record.claim.key)
}

fn expected_answer(write: &PlannedWrite, outcome: &WriteOutcome) -> Answer {
    match outcome {
        WriteOutcome::Committed => Answer::Committed,
        WriteOutcome::Failed(failure) => Answer::Failed(*failure),
        WriteOutcome::Refused(WriteRefusal::StaleFence) => Answer::Refused(Refusal::StaleState),
        WriteOutcome::Refused(WriteRefusal::NotOwner) => Answer::Refused(Refusal::NotOwner),
        WriteOutcome::Refused(WriteRefusal::OrderNotFound) => {
            Answer::Refused(Refusal::OrderNotFound)
        }
        WriteOutcome::Refused(WriteRefusal::OrderAlreadyPaid) => {
            Answer::Refused(Refusal::OrderAlreadyPaid)
        }
        WriteOutcome::Refused(WriteRefusal::OrderCancelled) => {
            Answer::Refused(Refusal::OrderCancelled)
        }
        WriteOutcome::Refused(WriteRefusal::PaymentNotFound) => {
            Answer::Refused(Refusal::PaymentNotFound)
        }
        WriteOutcome::Refused(WriteRefusal::KeyUsed {
            fingerprint,
            answer,
        }) => {
            let record = write
                .key
                .as_ref()
                .expect("only a keyed write finds its key used");
            if record.claim.fingerprint == *fingerprint {
                Answer::Replay(answer.clone())
            } else {
                Answer::Refused(Refusal::IdempotencyKeyMismatch)
            }
        }
    }
}

fn step(unreported_commits: bool) -> impl Strategy<Value = Step> {
    let key = || prop::option::of(0..KEYS);
    let fate = if unreported_commits {
        prop_oneof![
            6 => Just(Fate::Commits),
            1 => Just(Fate::Fails),
            1 => Just(Fate::CommitsUnreported),
        ]
        .boxed()
    } else {
        prop_oneof![6 => Just(Fate::Commits), 1 => Just(Fate::Fails)].boxed()
    };
    prop_oneof![
        3 => (1i64..=120, key()).prop_map(|(amount, key)| Step::Charge { amount, key }),
        3 => (0usize..6, key()).prop_map(|(order, key)| Step::Pay { order, key }),
        2 => (1i64..=80, key()).prop_map(|(price, key)| Step::CreateOrder { price, key }),
        3 => (1usize..=4, fate).prop_map(|(writes, fate)| Step::Commit { writes, fate }),
        3 => (1usize..=4).prop_map(|results| Step::Settle { results }),
        1 => (1i64..=40).prop_map(|secs| Step::Wait { secs }),
        1 => (1i64..=60).prop_map(|amount| Step::OtherEngineCharges { amount }),
        1 => (0usize..4).prop_map(|pick| Step::OtherEnginePays { pick }),
        2 => (0usize..3).prop_map(|back| Step::Retry { back }),
    ]
}

fn run(steps: &[Step]) -> Db {
    let mut sim = Sim::new();
    for step in steps {
        sim.run(step);
    }
    sim.drain();
    sim.db
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With every outcome known, the state's own rules keep an order from being paid twice
    /// and a key from moving money twice: the writer's second line never has to refuse.
    #[test]
    fn random_pipelines_with_known_outcomes_keep_the_books_without_the_writers_second_line(
        steps in prop::collection::vec(step(false), 1..120)
    ) {
        let db = run(&steps);
        prop_assert_eq!(db.second_line_refusals, 0);
    }

    /// A batch that committed but was reported failed: the state reloads, and the writer's
    /// fences, order status and key records keep the books.
    #[test]
    fn random_pipelines_with_unreported_commits_keep_the_books(
        steps in prop::collection::vec(step(true), 1..120)
    ) {
        run(&steps);
    }
}
