//! Unit and property tests of the buyer's rules.
//!
//! They drive [`BuyerState`] the way the actor shell does: `needs` -> `install`/`learn_order`
//! -> `decide` -> `accept` -> `settle`, with the writer's answers written by hand (unit tests)
//! or by a model of the database (`simulation`).

use chrono::{Duration, TimeZone};

use super::*;
use crate::domain::{DomainError, EntryKind, Movement};

const MAX_BALANCE: Points = Points::new(1_000);
/// The token of the incarnation that wrote the row the tests load.
const ROW_TOKEN: i64 = 5;
/// The token of the incarnation under test.
const TOKEN: i64 = 11;
/// The token drawn by a reload.
const RELOAD_TOKEN: i64 = 22;
const UNAVAILABLE: WriteOutcome = WriteOutcome::Failed(BatchFailure::Unavailable);
const STALE_FENCE: WriteOutcome = WriteOutcome::Refused(WriteRefusal::StaleFence);

fn buyer() -> BuyerId {
    BuyerId::try_from(7).unwrap()
}

fn other_buyer() -> BuyerId {
    BuyerId::try_from(8).unwrap()
}

fn order(id: i64) -> OrderId {
    OrderId::try_from(id).unwrap()
}

fn payment(id: i64) -> PaymentId {
    PaymentId::try_from(id).unwrap()
}

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_bytes()).unwrap()
}

fn points(n: i64) -> Points {
    Points::new(n)
}

fn ttl() -> Duration {
    Duration::hours(1)
}

fn rules() -> BuyerRules {
    BuyerRules {
        max_balance: MAX_BALANCE,
        idempotency_ttl: ttl(),
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()
}

fn charge(amount: i64) -> Command {
    Command::Charge {
        amount: points(amount),
    }
}

fn pay(order_id: i64, payment_id: i64) -> Command {
    Command::Pay {
        order_id: order(order_id),
        payment_id: payment(payment_id),
    }
}

fn create(order_id: i64, total_price: i64) -> Command {
    Command::CreateOrder {
        order_id: order(order_id),
        total_price: points(total_price),
    }
}

fn balance(balance: i64, version: i64) -> BalanceState {
    BalanceState {
        balance: points(balance),
        version,
    }
}

fn row(balance: i64, version: i64) -> StoredBalance {
    StoredBalance {
        balance: points(balance),
        version,
        fence_token: ROW_TOKEN,
    }
}

/// A buyer whose balance row `row(balance, version)` was just loaded.
fn loaded(balance: i64, version: i64) -> BuyerState {
    let mut state = BuyerState::new(buyer(), rules());
    state.install(Some(row(balance, version)), TOKEN);
    state
}

fn decide(
    state: &BuyerState,
    command: &Command,
    key_name: Option<&str>,
) -> Result<Decision, Refusal> {
    decide_at(state, command, key_name, t0())
}

fn decide_at(
    state: &BuyerState,
    command: &Command,
    key_name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Decision, Refusal> {
    state.decide(command, key_name.map(key).as_ref(), now)
}

/// Decides `command`, which must be a write.
fn plan_at(
    state: &BuyerState,
    command: &Command,
    key_name: Option<&str>,
    now: DateTime<Utc>,
) -> PlannedWrite {
    match decide_at(state, command, key_name, now) {
        Ok(Decision::Write(write)) => write,
        other => panic!("{command:?} should be written, got {other:?}"),
    }
}

/// Decides `command` at t0 and gives its write a place in the commit queue.
fn accept(state: &mut BuyerState, command: &Command, key_name: Option<&str>) -> PlannedWrite {
    accept_at(state, command, key_name, t0())
}

fn accept_at(
    state: &mut BuyerState,
    command: &Command,
    key_name: Option<&str>,
    now: DateTime<Utc>,
) -> PlannedWrite {
    let write = plan_at(state, command, key_name, now);
    state.accept(&write);
    write
}

fn settle(state: &mut BuyerState, write: &PlannedWrite, outcome: &WriteOutcome) -> Settlement {
    state.settle(&write.pending(), outcome)
}

fn change(write: &PlannedWrite) -> FencedMovement {
    *write.change().expect("this write moves money")
}

mod money;

mod fencing;

mod generations;

mod idempotency;

mod paying_orders;

mod refunds;

mod requests;

mod sim_db;
mod simulation;
