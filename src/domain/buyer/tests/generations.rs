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
