use super::*;

#[test]
fn a_state_never_loaded_needs_the_balance_and_decides_nothing() {
    let mut state = BuyerState::new(buyer(), rules());
    assert_eq!(state.balance(), None);
    assert_eq!(
        state.needs(&charge(1)),
        Needs {
            balance: true,
            order: None,
            payment: None,
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
    let changes: Vec<FencedMovement> = writes.iter().filter_map(|w| w.change().copied()).collect();
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
            cancelled_at: None,
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
