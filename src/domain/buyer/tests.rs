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

mod money {
    use super::*;

    #[test]
    fn a_charge_adds_its_amount_at_the_next_version_and_answers_the_balance_after() {
        let mut state = loaded(100, 3);
        let write = accept(&mut state, &charge(50), None);
        assert_eq!(
            change(&write).movement,
            Movement {
                kind: EntryKind::Charge,
                amount: points(50),
                balance_after: points(150),
                version: 4,
            }
        );
        assert_eq!(
            write.receipt,
            Receipt::Charged(ChargeReceipt {
                buyer_id: buyer(),
                amount: points(50),
                balance: points(150),
                version: 4,
            })
        );
        assert_eq!(state.balance(), Some(balance(150, 4)));
        assert_eq!(state.in_flight(), 1);

        let settled = settle(&mut state, &write, &WriteOutcome::Committed);
        assert_eq!(
            settled,
            Settlement {
                answer: Answer::Committed,
                payment: None
            }
        );
        assert_eq!(state.balance(), Some(balance(150, 4)));
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn a_payment_deducts_the_order_price_and_its_receipt_names_the_payment() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(40)));
        let write = accept(&mut state, &pay(1, 9), None);
        assert_eq!(
            write.kind,
            WriteKind::Pay {
                change: FencedMovement {
                    expected: Some(Fence {
                        version: 3,
                        token: ROW_TOKEN
                    }),
                    token: TOKEN,
                    movement: Movement {
                        kind: EntryKind::Payment,
                        amount: points(-40),
                        balance_after: points(60),
                        version: 4,
                    },
                },
                order_id: order(1),
                payment_id: payment(9),
            }
        );
        assert_eq!(
            write.receipt,
            Receipt::Paid(PaymentReceipt {
                payment_id: payment(9),
                order_id: order(1),
                buyer_id: buyer(),
                amount: points(40),
                balance: points(60),
                version: 4,
                paid_at: t0(),
            })
        );
        let settled = settle(&mut state, &write, &WriteOutcome::Committed);
        assert_eq!(settled.answer, Answer::Committed);
        assert_eq!(settled.payment, Some((order(1), true)));
        assert_eq!(state.balance(), Some(balance(60, 4)));
    }

    #[test]
    fn paying_the_whole_balance_leaves_exactly_zero() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(100)));
        let write = accept(&mut state, &pay(1, 1), None);
        assert_eq!(change(&write).movement.balance_after, Points::ZERO);
        assert_eq!(state.balance(), Some(balance(0, 4)));
    }

    #[test]
    fn paying_more_than_the_balance_is_refused_and_moves_nothing() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(101)));
        assert_eq!(
            decide(&state, &pay(1, 1), None),
            Err(Refusal::Rule(DomainError::InsufficientBalance {
                balance: points(100),
                required: points(101),
            }))
        );
        assert_eq!(state.balance(), Some(balance(100, 3)));
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn a_buyer_without_a_balance_row_has_zero_at_version_zero_and_cannot_pay() {
        let mut state = BuyerState::new(buyer(), rules());
        state.install(None, TOKEN);
        assert_eq!(state.balance(), Some(BalanceState::EMPTY));
        state.learn_order(order(1), KnownOrder::Payable(points(1)));
        assert_eq!(
            decide(&state, &pay(1, 1), None),
            Err(Refusal::Rule(DomainError::InsufficientBalance {
                balance: Points::ZERO,
                required: points(1),
            }))
        );
    }

    #[test]
    fn charging_up_to_the_maximum_balance_is_accepted_and_one_point_more_is_refused() {
        let state = loaded(990, 1);
        assert_eq!(
            decide(&state, &charge(11), None),
            Err(Refusal::Rule(DomainError::BalanceLimitExceeded {
                max: MAX_BALANCE
            }))
        );
        let write = plan_at(&state, &charge(10), None, t0());
        assert_eq!(change(&write).movement.balance_after, MAX_BALANCE);
    }

    #[test]
    fn a_charge_that_would_overflow_the_balance_is_refused_as_over_the_limit() {
        let max = points(i64::MAX);
        let rules = BuyerRules {
            max_balance: max,
            ..rules()
        };
        let mut state = BuyerState::new(buyer(), rules);
        state.install(Some(row(i64::MAX - 1, 1)), TOKEN);
        assert_eq!(
            decide(&state, &charge(2), None),
            Err(Refusal::Rule(DomainError::BalanceLimitExceeded { max }))
        );
    }

    #[test]
    fn refusals_count_the_writes_still_in_flight() {
        let mut state = loaded(100, 1);
        state.learn_order(order(1), KnownOrder::Payable(points(80)));
        state.learn_order(order(2), KnownOrder::Payable(points(30)));
        accept(&mut state, &pay(1, 1), None);
        assert_eq!(
            decide(&state, &pay(2, 2), None),
            Err(Refusal::Rule(DomainError::InsufficientBalance {
                balance: points(20),
                required: points(30),
            }))
        );
        accept(&mut state, &charge(900), None);
        assert_eq!(
            decide(&state, &charge(81), None),
            Err(Refusal::Rule(DomainError::BalanceLimitExceeded {
                max: MAX_BALANCE
            }))
        );
        assert_eq!(state.balance(), Some(balance(920, 3)));
    }
}

mod fencing {
    use super::*;

    #[test]
    fn a_state_never_loaded_needs_the_balance_and_decides_nothing() {
        let mut state = BuyerState::new(buyer(), rules());
        assert_eq!(state.balance(), None);
        assert_eq!(
            state.needs(&charge(1)),
            Needs {
                balance: true,
                order: None
            }
        );
        assert_eq!(decide(&state, &charge(1), None), Err(Refusal::StaleState));
        state.install(None, TOKEN);
        assert!(state.needs(&charge(1)).nothing());
    }

    #[test]
    fn the_first_write_of_a_buyer_without_a_row_creates_it_at_version_1() {
        let mut state = BuyerState::new(buyer(), rules());
        state.install(None, TOKEN);
        let first = accept(&mut state, &charge(10), None);
        assert_eq!(
            change(&first),
            FencedMovement {
                expected: None,
                token: TOKEN,
                movement: Movement {
                    kind: EntryKind::Charge,
                    amount: points(10),
                    balance_after: points(10),
                    version: 1,
                },
            }
        );
        let second = accept(&mut state, &charge(5), None);
        assert_eq!(
            change(&second).expected,
            Some(Fence {
                version: 1,
                token: TOKEN
            })
        );
    }

    #[test]
    fn the_first_write_after_a_load_is_fenced_on_the_loaded_row_and_carries_the_new_token() {
        let state = loaded(100, 3);
        let write = plan_at(&state, &charge(1), None, t0());
        assert_eq!(
            change(&write).expected,
            Some(Fence {
                version: 3,
                token: ROW_TOKEN
            })
        );
        assert_eq!(change(&write).token, TOKEN);
    }

    #[test]
    fn each_accepted_write_is_fenced_on_the_one_before_and_the_version_advances_by_one() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(30)));
        let writes = [
            accept(&mut state, &charge(10), None),
            accept(&mut state, &pay(1, 1), None),
            accept(&mut state, &create(2, 5), None),
            accept(&mut state, &charge(7), None),
        ];
        let changes: Vec<FencedMovement> =
            writes.iter().filter_map(|w| w.change().copied()).collect();
        let versions: Vec<i64> = changes.iter().map(|c| c.movement.version).collect();
        assert_eq!(versions, [4, 5, 6]);
        assert_eq!(
            changes[0].expected,
            Some(Fence {
                version: 3,
                token: ROW_TOKEN
            })
        );
        for pair in changes.windows(2) {
            assert_eq!(pair[1].expected, Some(pair[0].fence_after()));
        }
        assert_eq!(state.balance(), Some(balance(87, 6)));
        assert_eq!(state.in_flight(), 4);
    }

    #[test]
    fn an_order_creation_moves_no_money_and_leaves_the_fence_where_it_was() {
        let mut state = loaded(100, 3);
        let creation = accept(&mut state, &create(1, 30), None);
        assert_eq!(creation.change(), None);
        assert!(!creation.pending().moves_money());
        assert_eq!(
            creation.receipt,
            Receipt::OrderCreated(OrderView {
                order_id: order(1),
                buyer_id: buyer(),
                total_price: points(30),
                status: OrderStatus::Pending,
                created_at: t0(),
                paid_at: None,
            })
        );
        assert_eq!(state.balance(), Some(balance(100, 3)));
        let next = plan_at(&state, &charge(1), None, t0());
        assert_eq!(
            change(&next).expected,
            Some(Fence {
                version: 3,
                token: ROW_TOKEN
            })
        );
    }

    /// Every way a money write can come back uncommitted.
    fn uncommitted_outcomes() -> Vec<WriteOutcome> {
        vec![
            UNAVAILABLE,
            WriteOutcome::Failed(BatchFailure::Internal),
            STALE_FENCE,
            WriteOutcome::Refused(WriteRefusal::OrderNotFound),
            WriteOutcome::Refused(WriteRefusal::OrderAlreadyPaid),
            WriteOutcome::Refused(WriteRefusal::KeyUsed {
                fingerprint: pay(1, 1).fingerprint(buyer()),
                answer: StoredResponse {
                    status: 200,
                    body: "{}".to_owned(),
                },
            }),
        ]
    }

    #[test]
    fn a_money_write_that_did_not_commit_drops_the_balance_so_nothing_is_decided_on_top_of_it() {
        for outcome in uncommitted_outcomes() {
            let mut state = loaded(100, 3);
            state.learn_order(order(1), KnownOrder::Payable(points(10)));
            let write = accept(&mut state, &pay(1, 1), Some("k"));
            settle(&mut state, &write, &outcome);
            assert_eq!(state.balance(), None, "after {outcome:?}");
            assert_eq!(
                decide(&state, &charge(1), None),
                Err(Refusal::StaleState),
                "after {outcome:?}"
            );
            assert!(state.needs(&charge(1)).balance, "after {outcome:?}");
        }
    }

    #[test]
    fn a_failed_write_fails_every_later_write_fenced_on_it_and_the_reload_fences_anew() {
        let mut state = loaded(100, 3);
        let first = accept(&mut state, &charge(10), None);
        let second = accept(&mut state, &charge(20), None);
        let third = accept(&mut state, &charge(30), None);
        assert_eq!(change(&second).expected, Some(change(&first).fence_after()));
        assert_eq!(change(&third).expected, Some(change(&second).fence_after()));

        let failed = settle(&mut state, &first, &UNAVAILABLE);
        assert_eq!(failed.answer, Answer::Failed(BatchFailure::Unavailable));
        assert_eq!(state.balance(), None);
        // The writer refuses the writes fenced on a row that was never written.
        for later in [&second, &third] {
            let refused = settle(&mut state, later, &STALE_FENCE);
            assert_eq!(refused.answer, Answer::Refused(Refusal::StaleState));
            assert_eq!(state.balance(), None);
        }
        assert_eq!(state.in_flight(), 0);

        state.install(Some(row(100, 3)), RELOAD_TOKEN);
        let fresh = accept(&mut state, &charge(5), None);
        assert_eq!(
            change(&fresh),
            FencedMovement {
                expected: Some(Fence {
                    version: 3,
                    token: ROW_TOKEN
                }),
                token: RELOAD_TOKEN,
                movement: Movement {
                    kind: EntryKind::Charge,
                    amount: points(5),
                    balance_after: points(105),
                    version: 4,
                },
            }
        );
        let next = accept(&mut state, &charge(1), None);
        assert_eq!(
            change(&next).expected,
            Some(Fence {
                version: 4,
                token: RELOAD_TOKEN
            })
        );
    }
}

mod generations {
    use super::*;

    #[test]
    fn each_load_begins_a_new_generation_and_writes_carry_theirs() {
        let mut state = BuyerState::new(buyer(), rules());
        assert_eq!(state.generation(), Generation(0));
        state.install(None, TOKEN);
        let write = plan_at(&state, &charge(1), None, t0());
        assert_eq!(write.generation, Generation(1));
        assert_eq!(write.pending().generation, Generation(1));
        state.install(None, RELOAD_TOKEN);
        assert_eq!(state.generation(), Generation(2));
    }

    #[test]
    fn a_failure_of_the_previous_generation_does_not_drop_the_reloaded_balance() {
        let mut state = loaded(100, 3);
        let first = accept(&mut state, &charge(10), None);
        let second = accept(&mut state, &charge(20), None);
        let third = accept(&mut state, &charge(30), None);
        settle(&mut state, &first, &UNAVAILABLE);
        state.install(Some(row(100, 3)), RELOAD_TOKEN);
        accept(&mut state, &charge(5), None);

        for (old, outcome) in [(&second, STALE_FENCE), (&third, UNAVAILABLE)] {
            settle(&mut state, old, &outcome);
            assert_eq!(state.balance(), Some(balance(105, 4)), "after {outcome:?}");
            assert_eq!(state.generation(), Generation(2));
        }
        let next = plan_at(&state, &charge(1), None, t0());
        assert_eq!(
            change(&next).expected,
            Some(Fence {
                version: 4,
                token: RELOAD_TOKEN
            })
        );
        assert_eq!(state.in_flight(), 1);
    }

    #[test]
    fn a_commit_of_the_previous_generation_does_not_change_the_reloaded_balance() {
        let mut state = loaded(100, 3);
        let first = accept(&mut state, &charge(10), None);
        let second = accept(&mut state, &charge(20), None);
        // COMMIT failed with an unknown outcome; in truth the first write committed, the reload
        // read its row, and then the second write (fenced on it) committed too.
        settle(
            &mut state,
            &first,
            &WriteOutcome::Failed(BatchFailure::Internal),
        );
        let after_first = StoredBalance {
            balance: points(110),
            version: 4,
            fence_token: TOKEN,
        };
        state.install(Some(after_first), RELOAD_TOKEN);
        let settled = settle(&mut state, &second, &WriteOutcome::Committed);
        assert_eq!(settled.answer, Answer::Committed);
        assert_eq!(state.balance(), Some(balance(110, 4)));
        // Fenced on what was read: the writer refuses it and the next reload sees the second.
        let next = plan_at(&state, &charge(1), None, t0());
        assert_eq!(
            change(&next).expected,
            Some(Fence {
                version: 4,
                token: TOKEN
            })
        );
    }
}

mod idempotency {
    use super::*;

    #[test]
    fn a_key_in_flight_refuses_the_same_request_as_in_flight_and_another_as_a_mismatch() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(10)));
        accept(&mut state, &charge(10), Some("k"));
        assert_eq!(
            decide(&state, &charge(10), Some("k")),
            Err(Refusal::IdempotencyKeyInFlight)
        );
        assert_eq!(
            decide(&state, &charge(11), Some("k")),
            Err(Refusal::IdempotencyKeyMismatch)
        );
        assert_eq!(
            decide(&state, &pay(1, 1), Some("k")),
            Err(Refusal::IdempotencyKeyMismatch)
        );
        assert!(matches!(
            decide(&state, &charge(10), Some("other")),
            Ok(Decision::Write(_))
        ));
    }

    #[test]
    fn a_committed_key_replays_its_exact_stored_answer_until_it_expires() {
        let mut state = loaded(100, 3);
        let write = accept(&mut state, &charge(10), Some("k"));
        let record = write.key.clone().expect("a keyed charge records its key");
        assert_eq!(record.expires_at, t0() + ttl());
        assert_eq!(record.answer, write.receipt.stored());
        settle(&mut state, &write, &WriteOutcome::Committed);
        // The balance moves on; the replay still answers the original body.
        let later = accept(&mut state, &charge(50), None);
        settle(&mut state, &later, &WriteOutcome::Committed);

        let just_before = record.expires_at - Duration::microseconds(1);
        assert_eq!(
            decide_at(&state, &charge(10), Some("k"), just_before),
            Ok(Decision::Replay(write.receipt.stored()))
        );
        let anew = plan_at(&state, &charge(10), Some("k"), record.expires_at);
        assert_eq!(change(&anew).movement.balance_after, points(170));
    }

    #[test]
    fn a_committed_key_sent_with_a_different_request_is_a_mismatch() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(10)));
        let write = accept(&mut state, &charge(10), Some("k"));
        settle(&mut state, &write, &WriteOutcome::Committed);
        assert_eq!(
            decide(&state, &charge(11), Some("k")),
            Err(Refusal::IdempotencyKeyMismatch)
        );
        assert_eq!(
            decide(&state, &pay(1, 1), Some("k")),
            Err(Refusal::IdempotencyKeyMismatch)
        );
    }

    #[test]
    fn an_expired_key_may_come_with_a_different_request() {
        let mut state = loaded(100, 3);
        let write = accept(&mut state, &charge(10), Some("k"));
        settle(&mut state, &write, &WriteOutcome::Committed);
        let expired = t0() + ttl();
        let anew = plan_at(&state, &charge(11), Some("k"), expired);
        let record = anew.key.expect("recorded anew");
        assert_eq!(record.claim.fingerprint, charge(11).fingerprint(buyer()));
        assert_eq!(record.expires_at, expired + ttl());
    }

    #[test]
    fn a_key_whose_write_did_not_commit_is_free_again() {
        let mut state = loaded(100, 3);
        let write = accept(&mut state, &charge(10), Some("k"));
        settle(&mut state, &write, &UNAVAILABLE);
        state.install(Some(row(100, 3)), RELOAD_TOKEN);
        let retry = plan_at(&state, &charge(10), Some("k"), t0());
        assert_eq!(change(&retry).movement.balance_after, points(110));
    }

    #[test]
    fn the_writer_finding_the_key_used_by_the_same_request_settles_as_its_stored_answer() {
        let mut state = loaded(100, 3);
        let write = accept(&mut state, &charge(10), Some("k"));
        let stored = StoredResponse {
            status: 200,
            body: r#"{"committed":"by another engine"}"#.to_owned(),
        };
        let used = WriteOutcome::Refused(WriteRefusal::KeyUsed {
            fingerprint: charge(10).fingerprint(buyer()),
            answer: stored.clone(),
        });
        assert_eq!(
            settle(&mut state, &write, &used).answer,
            Answer::Replay(stored)
        );
    }

    #[test]
    fn the_writer_finding_the_key_used_by_another_request_settles_as_a_mismatch() {
        let mut state = loaded(100, 3);
        let write = accept(&mut state, &charge(10), Some("k"));
        let used = WriteOutcome::Refused(WriteRefusal::KeyUsed {
            fingerprint: charge(11).fingerprint(buyer()),
            answer: StoredResponse {
                status: 200,
                body: "{}".to_owned(),
            },
        });
        assert_eq!(
            settle(&mut state, &write, &used).answer,
            Answer::Refused(Refusal::IdempotencyKeyMismatch)
        );
    }

    #[test]
    fn a_payment_key_replays_even_after_the_order_was_paid() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(30)));
        let write = accept(&mut state, &pay(1, 1), Some("k"));
        settle(&mut state, &write, &WriteOutcome::Committed);
        // A retry gets a new payment id from the engine: the fingerprint leaves it out.
        assert_eq!(
            decide(&state, &pay(1, 2), Some("k")),
            Ok(Decision::Replay(write.receipt.stored()))
        );
        assert_eq!(
            decide(&state, &pay(1, 3), None),
            Err(Refusal::OrderAlreadyPaid)
        );
    }

    #[test]
    fn an_order_creation_checks_its_key_but_does_not_record_it() {
        let mut state = loaded(100, 3);
        accept(&mut state, &charge(10), Some("k"));
        assert_eq!(
            decide(&state, &create(1, 5), Some("k")),
            Err(Refusal::IdempotencyKeyMismatch)
        );
        let creation = accept(&mut state, &create(2, 5), Some("o"));
        assert_eq!(creation.key, None);
        assert!(matches!(
            decide(&state, &create(3, 5), Some("o")),
            Ok(Decision::Write(_))
        ));
    }
}

mod paying_orders {
    use super::*;

    #[test]
    fn a_second_payment_of_an_order_whose_payment_is_in_flight_waits_for_its_outcome() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(30)));
        let first = accept(&mut state, &pay(1, 1), None);
        // Not read again: the database still says PENDING until the first payment commits.
        assert!(state.needs(&pay(1, 2)).nothing());
        assert_eq!(
            decide(&state, &pay(1, 2), None),
            Ok(Decision::AwaitPayment(order(1)))
        );
        let settled = settle(&mut state, &first, &WriteOutcome::Committed);
        assert_eq!(settled.payment, Some((order(1), true)));
        assert_eq!(
            decide(&state, &pay(1, 3), None),
            Err(Refusal::OrderAlreadyPaid)
        );
        assert_eq!(state.balance(), Some(balance(70, 4)));
    }

    #[test]
    fn a_payment_that_did_not_commit_tells_its_waiters_and_the_order_is_read_again() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(30)));
        let first = accept(&mut state, &pay(1, 1), None);
        let settled = settle(&mut state, &first, &UNAVAILABLE);
        assert_eq!(settled.payment, Some((order(1), false)));
        state.install(Some(row(100, 3)), RELOAD_TOKEN);
        assert_eq!(
            state.needs(&pay(1, 2)),
            Needs {
                balance: true,
                order: Some(order(1))
            }
        );
        assert_eq!(decide(&state, &pay(1, 2), None), Err(Refusal::StaleState));
    }

    #[test]
    fn a_paid_order_is_refused_as_already_paid() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Paid);
        assert!(state.needs(&pay(1, 1)).nothing());
        assert_eq!(
            decide(&state, &pay(1, 1), None),
            Err(Refusal::OrderAlreadyPaid)
        );
    }

    #[test]
    fn an_order_of_another_buyer_or_no_order_at_all_is_refused_as_not_found() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::NotOurs);
        assert!(state.needs(&pay(1, 1)).nothing());
        assert_eq!(
            decide(&state, &pay(1, 1), None),
            Err(Refusal::OrderNotFound)
        );
    }

    #[test]
    fn an_unknown_order_is_read_first_with_the_balance_when_nothing_is_in_flight() {
        let mut state = loaded(100, 3);
        assert_eq!(
            state.needs(&pay(1, 1)),
            Needs {
                balance: true,
                order: Some(order(1))
            }
        );
        assert_eq!(decide(&state, &pay(1, 1), None), Err(Refusal::StaleState));
        accept(&mut state, &charge(10), None);
        assert_eq!(
            state.needs(&pay(1, 1)),
            Needs {
                balance: false,
                order: Some(order(1))
            }
        );
        assert!(state.needs(&charge(1)).nothing());
        assert!(state.needs(&create(2, 1)).nothing());
    }

    #[test]
    fn an_order_being_created_is_payable_at_its_price() {
        let mut state = loaded(100, 3);
        accept(&mut state, &create(1, 30), None);
        assert!(state.needs(&pay(1, 1)).nothing());
        let payment = accept(&mut state, &pay(1, 1), None);
        assert_eq!(change(&payment).movement.amount, points(-30));
    }

    #[test]
    fn a_failed_order_creation_forgets_the_order_and_keeps_the_balance() {
        let mut state = loaded(100, 3);
        let creation = accept(&mut state, &create(1, 30), None);
        let settled = settle(&mut state, &creation, &UNAVAILABLE);
        assert_eq!(
            settled,
            Settlement {
                answer: Answer::Failed(BatchFailure::Unavailable),
                payment: None
            }
        );
        assert_eq!(state.balance(), Some(balance(100, 3)));
        assert_eq!(state.needs(&pay(1, 1)).order, Some(order(1)));
    }

    #[test]
    fn a_committed_order_creation_is_remembered_as_payable() {
        let mut state = loaded(100, 3);
        let creation = accept(&mut state, &create(1, 30), None);
        settle(&mut state, &creation, &WriteOutcome::Committed);
        assert!(state.needs(&pay(1, 1)).nothing());
        let payment = accept(&mut state, &pay(1, 1), None);
        assert_eq!(change(&payment).movement.amount, points(-30));
    }

    #[test]
    fn a_failed_write_forgets_the_orders_read_from_the_database() {
        let mut state = loaded(100, 3);
        state.learn_order(order(1), KnownOrder::Payable(points(30)));
        state.learn_order(order(2), KnownOrder::Paid);
        let write = accept(&mut state, &charge(10), None);
        settle(&mut state, &write, &UNAVAILABLE);
        state.install(Some(row(100, 3)), RELOAD_TOKEN);
        assert_eq!(state.needs(&pay(1, 1)).order, Some(order(1)));
        assert_eq!(state.needs(&pay(2, 1)).order, Some(order(2)));
    }
}

mod requests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fingerprints_tell_apart_the_kind_buyer_amount_order_and_price() {
        let (mine, theirs) = (buyer(), other_buyer());
        let prints = [
            charge(10).fingerprint(mine),
            charge(11).fingerprint(mine),
            charge(10).fingerprint(theirs),
            pay(10, 1).fingerprint(mine),
            pay(11, 1).fingerprint(mine),
            pay(10, 1).fingerprint(theirs),
            create(10, 10).fingerprint(mine),
            create(10, 11).fingerprint(mine),
            create(11, 10).fingerprint(mine),
            create(10, 10).fingerprint(theirs),
        ];
        let distinct: HashSet<&Fingerprint> = prints.iter().collect();
        assert_eq!(distinct.len(), prints.len(), "{prints:?}");
        // A retried payment gets a new payment id from the engine: still the same request.
        assert_eq!(pay(10, 1).fingerprint(mine), pay(10, 2).fingerprint(mine));
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (1i64..=30).prop_map(charge),
            (1i64..=30, 1i64..=3).prop_map(|(order_id, payment_id)| pay(order_id, payment_id)),
            (1i64..=30, 1i64..=30).prop_map(|(order_id, price)| create(order_id, price)),
        ]
    }

    /// The same request, as far as an Idempotency-Key is concerned.
    fn same_request(a: &Command, b: &Command) -> bool {
        match (a, b) {
            (Command::Pay { order_id: x, .. }, Command::Pay { order_id: y, .. }) => x == y,
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn fingerprints_are_equal_exactly_when_the_requests_are(
            a in any_command(),
            b in any_command(),
            buyer_a in 1i64..=3,
            buyer_b in 1i64..=3,
        ) {
            let (buyer_a, buyer_b) = (BuyerId::try_from(buyer_a).unwrap(), BuyerId::try_from(buyer_b).unwrap());
            prop_assert_eq!(
                a.fingerprint(buyer_a) == b.fingerprint(buyer_b),
                buyer_a == buyer_b && same_request(&a, &b)
            );
        }
    }

    #[test]
    fn a_receipts_stored_answer_is_the_json_body_it_is_sent_as() {
        let charged = ChargeReceipt {
            buyer_id: buyer(),
            amount: points(5),
            balance: points(15),
            version: 2,
        };
        let paid = PaymentReceipt {
            payment_id: payment(3),
            order_id: order(4),
            buyer_id: buyer(),
            amount: points(10),
            balance: points(5),
            version: 3,
            paid_at: t0(),
        };
        let created = OrderView {
            order_id: order(4),
            buyer_id: buyer(),
            total_price: points(10),
            status: OrderStatus::Pending,
            created_at: t0(),
            paid_at: None,
        };
        let stored = Receipt::Charged(charged.clone()).stored();
        assert_eq!(stored.status, 200);
        assert_eq!(stored.body, serde_json::to_string(&charged).unwrap());
        assert_eq!(
            serde_json::from_str::<ChargeReceipt>(&stored.body).unwrap(),
            charged
        );
        let stored = Receipt::Paid(paid.clone()).stored();
        assert_eq!(stored.status, 200);
        assert_eq!(
            serde_json::from_str::<PaymentReceipt>(&stored.body).unwrap(),
            paid
        );
        assert!(stored.body.contains(r#""paymentId":3"#), "{}", stored.body);
        let stored = Receipt::OrderCreated(created.clone()).stored();
        assert_eq!(
            serde_json::from_str::<OrderView>(&stored.body).unwrap(),
            created
        );

        let replayed = StoredResponse {
            status: 201,
            body: "{}".to_owned(),
        };
        assert_eq!(Receipt::Replayed(replayed.clone()).stored(), replayed);
    }
}

/// Random pipelines against a model of the database: one seed drives the commands, how the
/// writer's batches end and when their results reach the state; invariants are checked after
/// every step.
mod simulation {
    use std::collections::{HashMap, HashSet, VecDeque};

    use proptest::prelude::*;

    use super::*;

    const SIM_MAX_BALANCE: i64 = 300;
    const SIM_TTL_S: i64 = 60;
    /// The token another engine writes the buyer's row with.
    const OTHER_ENGINE_TOKEN: i64 = 1;
    /// Another buyer's order, and an id no order has.
    const FOREIGN_ORDER: i64 = 900;
    const MISSING_ORDER: i64 = 999;
    const KEYS: u8 = 3;

    #[derive(Debug, Clone)]
    enum Step {
        Charge {
            amount: i64,
            key: Option<u8>,
        },
        /// Pays one of the orders created so far (newest first), or a foreign or missing one.
        Pay {
            order: usize,
            key: Option<u8>,
        },
        CreateOrder {
            price: i64,
            key: Option<u8>,
        },
        /// The writer takes the next `writes` accepted writes as one batch.
        Commit {
            writes: usize,
            fate: Fate,
        },
        /// The next `results` written results reach the state, in order.
        Settle {
            results: usize,
        },
        Wait {
            secs: i64,
        },
        OtherEnginePays {
            pick: usize,
        },
        OtherEngineCharges {
            amount: i64,
        },
        /// A client sends one of its earlier keyed requests again (newest first).
        Retry {
            back: usize,
        },
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fate {
        Commits,
        /// Nothing of the batch committed.
        Fails,
        /// COMMIT failed, so the writer reports a failure, but the batch did commit.
        CommitsUnreported,
    }

    struct DbOrder {
        buyer: BuyerId,
        paid: bool,
        total_price: Points,
    }

    struct DbKey {
        fingerprint: Fingerprint,
        answer: StoredResponse,
        expires_at: DateTime<Utc>,
    }

    /// A committed write of the state under test.
    struct Committed {
        generation: Generation,
        amount: i64,
        paid: Option<OrderId>,
        key: Option<(String, DateTime<Utc>)>,
        at: DateTime<Utc>,
    }

    /// The buyer's rows, and a writer that checks what the real one checks, in its order:
    /// the key, the order, then the fence.
    #[derive(Default)]
    struct Db {
        row: Option<StoredBalance>,
        orders: HashMap<OrderId, DbOrder>,
        keys: HashMap<String, DbKey>,
        log: Vec<Committed>,
        /// Refusals of writes on a fresh fence that only the writer's second line (order
        /// status, key record) gives, but for orders the other engine paid: what the state
        /// knows of an order may predate its fence, and then the writer's check is the one
        /// that holds.
        second_line_refusals: usize,
        paid_elsewhere: HashSet<OrderId>,
        /// Every committed movement, this state's and the other engine's.
        moved: i64,
    }

    impl Db {
        fn known_order(&self, order_id: OrderId) -> KnownOrder {
            match self.orders.get(&order_id) {
                Some(order) if order.buyer == buyer() && !order.paid => {
                    KnownOrder::Payable(order.total_price)
                }
                Some(order) if order.buyer == buyer() => KnownOrder::Paid,
                _ => KnownOrder::NotOurs,
            }
        }

        fn live_key(&self, key: &str, now: DateTime<Utc>) -> Option<&DbKey> {
            self.keys.get(key).filter(|record| record.expires_at > now)
        }

        fn apply(&mut self, write: &PlannedWrite, now: DateTime<Utc>) -> WriteOutcome {
            if let WriteKind::CreateOrder {
                order_id,
                total_price,
            } = write.kind
            {
                let order = DbOrder {
                    buyer: write.buyer,
                    paid: false,
                    total_price,
                };
                assert!(
                    self.orders.insert(order_id, order).is_none(),
                    "ids are fresh"
                );
                return WriteOutcome::Committed;
            }
            let change = change(write);
            let current = self.row.map(|row| Fence {
                version: row.version,
                token: row.fence_token,
            });
            // A write on a stale fence is refused anyway; only a fresh one leans on the checks
            // below.
            let fresh = change.expected == current;
            let used = write.key.as_ref().and_then(|record| {
                let used = self.live_key(record.claim.key.as_str(), now)?;
                Some(WriteRefusal::KeyUsed {
                    fingerprint: used.fingerprint.clone(),
                    answer: used.answer.clone(),
                })
            });
            if let Some(used) = used {
                self.second_line_refusals += usize::from(fresh);
                return WriteOutcome::Refused(used);
            }
            let paid = match write.kind {
                WriteKind::Pay { order_id, .. } => match self.known_order(order_id) {
                    KnownOrder::Payable(_) => Some(order_id),
                    KnownOrder::Paid => {
                        let elsewhere = self.paid_elsewhere.contains(&order_id);
                        self.second_line_refusals += usize::from(fresh && !elsewhere);
                        return WriteOutcome::Refused(WriteRefusal::OrderAlreadyPaid);
                    }
                    KnownOrder::NotOurs => {
                        return WriteOutcome::Refused(WriteRefusal::OrderNotFound);
                    }
                },
                _ => None,
            };
            if !fresh {
                return WriteOutcome::Refused(WriteRefusal::StaleFence);
            }
            let movement = change.movement;
            let before = self.row.map_or(BalanceState::EMPTY, |row| BalanceState {
                balance: row.balance,
                version: row.version,
            });
            assert_eq!(
                movement.balance_after.get(),
                before.balance.get() + movement.amount.get(),
                "a write that finds its fence moves the balance it was decided on"
            );
            assert_eq!(movement.version, before.version + 1);
            assert!(
                (0..=SIM_MAX_BALANCE).contains(&movement.balance_after.get()),
                "the stored balance stays in 0..=max: {movement:?}"
            );
            self.row = Some(StoredBalance {
                balance: movement.balance_after,
                version: movement.version,
                fence_token: change.token,
            });
            self.moved += movement.amount.get();
            if let Some(order_id) = paid {
                self.orders.get_mut(&order_id).expect("checked").paid = true;
            }
            if let Some(record) = &write.key {
                let key = record.claim.key.as_str().to_owned();
                let stored = DbKey {
                    fingerprint: record.claim.fingerprint.clone(),
                    answer: record.answer.clone(),
                    expires_at: record.expires_at,
                };
                self.keys.insert(key, stored);
            }
            self.log.push(Committed {
                generation: write.generation,
                amount: movement.amount.get(),
                paid,
                key: write
                    .key
                    .as_ref()
                    .map(|record| (record.claim.key.as_str().to_owned(), record.expires_at)),
                at: now,
            });
            WriteOutcome::Committed
        }

        /// Another engine (its own token) pays one of the buyer's pending orders, if the
        /// balance covers it.
        fn other_engine_pays(&mut self, pick: usize) -> bool {
            let mut pending: Vec<(OrderId, Points)> = (self.orders.iter())
                .filter(|(_, order)| order.buyer == buyer() && !order.paid)
                .map(|(id, order)| (*id, order.total_price))
                .collect();
            pending.sort();
            let Some(&(order_id, price)) = pending.get(pick % pending.len().max(1)) else {
                return false;
            };
            let Some(row) = self.row.filter(|row| row.balance >= price) else {
                return false;
            };
            self.row = Some(StoredBalance {
                balance: points(row.balance.get() - price.get()),
                version: row.version + 1,
                fence_token: OTHER_ENGINE_TOKEN,
            });
            self.orders.get_mut(&order_id).expect("listed").paid = true;
            self.paid_elsewhere.insert(order_id);
            self.moved -= price.get();
            true
        }

        /// Another engine (its own token) charges the buyer, if the limit allows.
        fn other_engine_charges(&mut self, amount: i64) -> bool {
            let before = self
                .row
                .map_or((0, 0), |row| (row.balance.get(), row.version));
            if before.0 + amount > SIM_MAX_BALANCE {
                return false;
            }
            self.row = Some(StoredBalance {
                balance: points(before.0 + amount),
                version: before.1 + 1,
                fence_token: OTHER_ENGINE_TOKEN,
            });
            self.moved += amount;
            true
        }
    }

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
                charge @ Command::Charge { .. } => charge,
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
                self.install();
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
                Ok(Decision::AwaitPayment(order_id)) => {
                    let paying = self.unsettled().any(|w| pays(w, order_id));
                    assert!(paying, "awaits a payment of {order_id} that is in flight");
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

        fn check_refusal(
            &self,
            command: &Command,
            key: Option<&IdempotencyKey>,
            refusal: &Refusal,
        ) {
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
                Refusal::StaleState => {
                    panic!("{command:?} refused as stale although what it needs was read")
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
            let batch: Vec<PlannedWrite> =
                self.queued.drain(..writes.min(self.queued.len())).collect();
            for write in batch {
                let applied = match fate {
                    Fate::Fails => None,
                    Fate::Commits | Fate::CommitsUnreported => {
                        Some(self.db.apply(&write, self.now))
                    }
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
                let payment = match write.kind {
                    WriteKind::Pay { order_id, .. } => Some((order_id, committed)),
                    _ => None,
                };
                assert_eq!(settlement.payment, payment);
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
            WriteOutcome::Refused(WriteRefusal::OrderNotFound) => {
                Answer::Refused(Refusal::OrderNotFound)
            }
            WriteOutcome::Refused(WriteRefusal::OrderAlreadyPaid) => {
                Answer::Refused(Refusal::OrderAlreadyPaid)
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
}
