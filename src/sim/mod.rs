//! The deterministic simulation of the payment protocol (TigerBeetle's VOPR style) and the
//! models it runs against. One seed drives every choice; each model is kept honest by a
//! differential test against the real implementation (`tests/api/writer_model.rs` for
//! [`model::ModelDb`]).
//!
//! [`run`] drives many buyers' random requests (charges, orders, payments, cancellations and
//! refunds) through the real [`BuyerState`] (in [`actor::SimActor`], a mirror of the actor
//! shell), a coordinator queue committing the engine's own write ops and events in batches
//! into [`model::ModelDb`], and injected faults: writes refused by the writer, failed batches,
//! COMMITs whose answer is lost, actor restarts mid-pipeline, a second writer changing a
//! buyer's row, Idempotency-Key retries and reuses, and clock jumps past the keys' lifetime.
//! After every step the touched buyers' books are checked ([`checks`]); at the end the world
//! is drained, every buyer must still accept a charge, and every request must have had exactly
//! one answer.
//!
//! [`BuyerState`]: crate::domain::buyer::BuyerState

use std::fmt;

mod actor;
mod checks;
mod counts;
pub mod model;
mod workload;
mod world;

use crate::domain::Points;
use crate::domain::buyer::{Command, Receipt, Refusal};
use actor::{Request, Response};
pub use counts::Counts;
use world::World;

/// A seed that broke an invariant, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    pub step: usize,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed at step {}: {}\n  replay: cargo run --release --example simulate -- --seed {}",
            self.seed, self.step, self.message, self.seed
        )
    }
}

/// Runs seed `seed` for `steps` random steps, checking the invariants after each, then drains
/// the world and checks that every buyer recovers and every request was answered once.
pub fn run(seed: u64, steps: usize) -> Result<Counts, Failure> {
    let mut world = World::new(seed);
    for step in 0..steps {
        let touched = world.step().map_err(|m| world.failure(seed, step, m))?;
        world
            .check(&touched)
            .map_err(|m| world.failure(seed, step, m))?;
    }
    finish(&mut world).map_err(|m| world.failure(seed, steps, m))?;
    Ok(world.counts)
}

/// Quiesces the world, probes every buyer, and checks everything once more.
fn finish(world: &mut World) -> Result<(), String> {
    world.drain()?;
    let buyers: Vec<usize> = (0..world.shape.buyers).collect();
    for &buyer in &buyers {
        probe(world, buyer)?;
    }
    world.check(&buyers)?;
    checks::check_all(&world.db)?;
    if let Some(id) = world.books.unanswered().first() {
        return Err(format!("request {id} was never answered"));
    }
    for actor in &world.actors {
        if actor.state.in_flight() != 0 || !actor.awaiting.is_empty() {
            return Err(format!(
                "buyer {} still has work in flight",
                actor.state.buyer()
            ));
        }
    }
    Ok(())
}

/// After the faults, a buyer must accept a charge again within two attempts (the first may
/// meet a stale state and reload it).
fn probe(world: &mut World, buyer: usize) -> Result<(), String> {
    for _ in 0..2 {
        let id = world.workload.next_id();
        let command = Command::Charge {
            amount: Points::new(1),
        };
        world.send_request(
            buyer,
            Request {
                id,
                command,
                key: None,
            },
        );
        world.drain()?;
        match world.books.answer(id) {
            Some(Response::Receipt(Receipt::Charged(_))) => return Ok(()),
            Some(Response::Refused(Refusal::Rule(_))) => return Ok(()),
            Some(Response::Refused(Refusal::StaleState) | Response::Failed) => continue,
            other => return Err(format!("buyer {buyer}'s probe was answered {other:?}")),
        }
    }
    Err(format!(
        "buyer {} never recovered: every probe met a stale state",
        world::buyer_id(buyer)
    ))
}

#[cfg(test)]
mod tests;
