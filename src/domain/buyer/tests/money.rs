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
            order: None
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
    assert_eq!(settled.order, Some((order(1), Some(OrderFate::Paid))));
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
