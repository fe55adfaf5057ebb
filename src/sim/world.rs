//! The simulated world: buyers' actors, the coordinator's queue and batches, the model
//! database, clients, a clock and the faults, all driven by one seed.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::actor::{Effects, Message, Request, RequestId, Response, SimActor, Step};
use super::checks::{self, Books};
use super::model::ModelDb;
use super::workload::{KeyUse, Workload};
use super::{Counts, Failure};
use crate::domain::buyer::BuyerRules;
use crate::domain::{BuyerId, Points};
use commit::Submitted;

mod commit;

/// The shape of one seed's world, itself chosen by the seed.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub buyers: usize,
    pub batch_max_ops: usize,
    pub queue_capacity: usize,
}

pub struct World {
    pub(super) rng: ChaCha8Rng,
    pub(super) shape: Shape,
    pub(super) rules: BuyerRules,
    now: DateTime<Utc>,
    pub(super) db: ModelDb,
    pub(super) actors: Vec<SimActor>,
    /// Bumped whenever something other than the buyer's own current generation may have
    /// changed its row: a refusal or failure, a restart, a second writer, an old write.
    epochs: Vec<u64>,
    queue: VecDeque<Submitted>,
    pub(super) books: Books,
    pub(super) workload: Workload,
    pub counts: Counts,
    /// Prints every delivered write and answer (`SIM_TRACE=1`), to follow a failing seed.
    trace: bool,
}

pub const MAX_BALANCE: i64 = 100_000;

impl World {
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape = Shape {
            buyers: rng.random_range(1..=5),
            batch_max_ops: rng.random_range(1..=8),
            queue_capacity: rng.random_range(4..=32),
        };
        let rules = BuyerRules {
            max_balance: Points::new(MAX_BALANCE),
            idempotency_ttl: Duration::seconds(30),
        };
        let actors = (0..shape.buyers)
            .map(|index| SimActor::new(buyer_id(index), rules, 0))
            .collect();
        World {
            rng,
            shape,
            rules,
            now: Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .expect("a valid date"),
            db: ModelDb::new(),
            actors,
            epochs: vec![0; shape.buyers],
            queue: VecDeque::new(),
            books: Books::default(),
            workload: Workload::new(shape.buyers),
            counts: Counts::default(),
            trace: std::env::var_os("SIM_TRACE").is_some(),
        }
    }

    /// One random step; returns the buyers it touched (their books are checked after it).
    pub fn step(&mut self) -> Result<Vec<usize>, String> {
        let buyer = self.rng.random_range(0..self.shape.buyers);
        match self.rng.random_range(0..1000) {
            0..300 => self.send(buyer),
            300..650 => return self.run_actor(buyer).map(|()| vec![buyer]),
            650..850 => return self.commit(true),
            850..865 => self.bump(buyer)?,
            865..880 => self.restart(buyer)?,
            880..990 => self.now += Duration::milliseconds(self.rng.random_range(1..=200)),
            _ => {
                self.counts.clock_jumps += 1;
                self.now += self.rules.idempotency_ttl + Duration::seconds(1);
            }
        }
        Ok(vec![buyer])
    }

    /// A client sends buyer `buyer` a request.
    fn send(&mut self, buyer: usize) {
        let (request, used) = self.workload.request(&mut self.rng, buyer);
        match used {
            KeyUse::Retry => self.counts.key_retries += 1,
            KeyUse::Reused => self.counts.key_reuses += 1,
            KeyUse::Fresh | KeyUse::None => {}
        }
        self.counts.requests += 1;
        if self.trace {
            eprintln!("  buyer {} gets {request:?}", buyer_id(buyer));
        }
        self.books.sent(buyer_id(buyer), &request);
        self.actors[buyer]
            .inbox
            .push_back(Message::Command(request));
    }

    /// Sends a request outside the random workload (the final probes).
    pub(super) fn send_request(&mut self, buyer: usize, request: Request) {
        self.books.sent(buyer_id(buyer), &request);
        self.actors[buyer]
            .inbox
            .push_back(Message::Command(request));
    }

    /// The buyer's actor handles its next message (if any).
    pub(super) fn run_actor(&mut self, buyer: usize) -> Result<(), String> {
        if !self.actors[buyer].has_work() {
            return Ok(());
        }
        let at = Step {
            now: self.now,
            epoch: self.epochs[buyer],
            token: self.rng.random(),
            room: self.queue.len() < self.shape.queue_capacity,
        };
        let effects = self.actors[buyer].step(&self.db, at);
        self.apply(buyer, effects)
    }

    fn apply(&mut self, buyer: usize, effects: Effects) -> Result<(), String> {
        for (request, response) in effects.replies {
            if self.trace {
                eprintln!(
                    "  buyer {} answers request {request}: {response:?}",
                    buyer_id(buyer)
                );
            }
            if response == Response::Overloaded {
                self.counts.overloaded += 1;
            }
            self.answer(buyer, request, response)?;
        }
        for (request, write) in effects.writes {
            self.submit(buyer, request, write);
        }
        Ok(())
    }

    /// Buyer `buyer`'s request is answered: the books record it, the counts classify it, and
    /// the client learns what it was told (a payment's id and amount, to refund it later).
    fn answer(
        &mut self,
        buyer: usize,
        request: RequestId,
        response: Response,
    ) -> Result<(), String> {
        if let Some(command) = self.books.command(request) {
            self.counts.answered(command, &response);
        }
        self.workload.learn(buyer, &response);
        self.books.answered(request, response)
    }

    /// Another engine changes the buyer's row: a fenced charge (or debit) with its own token.
    fn bump(&mut self, buyer: usize) -> Result<(), String> {
        let id = buyer_id(buyer).get();
        let balance = self.db.balance(id).map_or(0, |row| row.balance);
        let amount = match balance + 500 <= MAX_BALANCE {
            true => self.rng.random_range(1..=500),
            false => -self.rng.random_range(1..=500),
        };
        let token = self.rng.random();
        self.db
            .bump(id, amount, token, self.now.naive_utc())
            .map_err(|e| e.to_string())?;
        self.epochs[buyer] += 1;
        self.counts.second_writer += 1;
        if self.trace {
            eprintln!(
                "  a second writer changes buyer {} by {amount}",
                buyer_id(buyer)
            );
        }
        Ok(())
    }

    /// The buyer's actor dies mid-pipeline; the next incarnation starts empty.
    fn restart(&mut self, buyer: usize) -> Result<(), String> {
        let incarnation = self.actors[buyer].incarnation + 1;
        let fresh = SimActor::new(buyer_id(buyer), self.rules, incarnation);
        let dead = std::mem::replace(&mut self.actors[buyer], fresh);
        let (lost, queued) = dead.die();
        for request in lost {
            self.answer(buyer, request, Response::Lost)?;
        }
        self.actors[buyer]
            .inbox
            .extend(queued.into_iter().map(Message::Command));
        self.epochs[buyer] += 1;
        self.counts.restarts += 1;
        if self.trace {
            eprintln!("  buyer {}'s actor restarts", buyer_id(buyer));
        }
        Ok(())
    }

    /// Runs every actor and commits every batch, without faults, until nothing is left to do.
    pub(super) fn drain(&mut self) -> Result<(), String> {
        for _ in 0..100_000 {
            let busy: Vec<usize> = (0..self.shape.buyers)
                .filter(|&buyer| self.actors[buyer].has_work())
                .collect();
            if busy.is_empty() && self.queue.is_empty() {
                return Ok(());
            }
            for buyer in busy {
                self.run_actor(buyer)?;
            }
            while !self.queue.is_empty() {
                self.commit(false)?;
            }
        }
        Err("the system never went quiet".to_owned())
    }

    pub(super) fn check(&self, buyers: &[usize]) -> Result<(), String> {
        for &buyer in buyers {
            checks::check_buyer(&self.db, &self.books, buyer_id(buyer), MAX_BALANCE)?;
        }
        Ok(())
    }

    pub(super) fn failure(&self, seed: u64, step: usize, message: String) -> Failure {
        Failure {
            seed,
            step,
            message,
        }
    }
}

pub fn buyer_id(index: usize) -> BuyerId {
    BuyerId::try_from(i64::try_from(index).expect("few buyers") + 1).expect("positive")
}
