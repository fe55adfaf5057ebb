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
    assert_eq!(record.answer, write.receipt.stored().unwrap());
    settle(&mut state, &write, &WriteOutcome::Committed);
    // The balance moves on; the replay still answers the original body.
    let later = accept(&mut state, &charge(50), None);
    settle(&mut state, &later, &WriteOutcome::Committed);

    let just_before = record.expires_at - Duration::microseconds(1);
    assert_eq!(
        decide_at(&state, &charge(10), Some("k"), just_before),
        Ok(Decision::Replay(write.receipt.stored().unwrap()))
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
        Ok(Decision::Replay(write.receipt.stored().unwrap()))
    );
    assert_eq!(
        decide(&state, &pay(1, 3), None),
        Err(Refusal::OrderAlreadyPaid)
    );
}

#[test]
fn an_order_creation_records_its_key_and_a_retry_is_the_same_request() {
    let mut state = loaded(100, 3);
    accept(&mut state, &charge(10), Some("k"));
    assert_eq!(
        decide(&state, &create(1, 5), Some("k")),
        Err(Refusal::IdempotencyKeyMismatch)
    );
    let creation = accept(&mut state, &create(2, 5), Some("o"));
    let record = creation.key.as_ref().expect("a creation records its key");
    assert_eq!(record.answer.status, 201);
    // A retry gets a new order id from the engine: still the same request, in flight.
    assert_eq!(
        decide(&state, &create(3, 5), Some("o")),
        Err(Refusal::IdempotencyKeyInFlight)
    );
    assert_eq!(
        decide(&state, &create(3, 6), Some("o")),
        Err(Refusal::IdempotencyKeyMismatch)
    );
}
