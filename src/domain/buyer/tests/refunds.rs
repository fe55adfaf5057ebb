use super::*;

fn refund(payment_id: i64, amount: Option<i64>) -> Command {
    Command::Refund {
        payment_id: payment(payment_id),
        refund_id: crate::domain::RefundId::try_from(1).unwrap(),
        amount: amount.map(Points::new),
        reason: None,
    }
}

/// Buyer at 100 (v3) who pays order 1 (30 points) with payment 1, as `outcome` settles it.
fn paid(outcome: &WriteOutcome) -> BuyerState {
    let mut state = loaded(100, 3);
    state.learn_order(order(1), KnownOrder::Payable(points(30)));
    let payment = accept(&mut state, &pay(1, 1), None);
    settle(&mut state, &payment, outcome);
    state
}

#[test]
fn a_payment_just_committed_is_refunded_without_reading_it_back() {
    let mut state = paid(&WriteOutcome::Committed);
    assert!(state.needs(&refund(1, Some(10))).nothing());
    let partial = accept(&mut state, &refund(1, Some(10)), None);
    assert_eq!(state.balance(), Some(balance(80, 5)));
    // What is left counts the refund in flight.
    assert_eq!(
        decide(&state, &refund(1, Some(21)), None),
        Err(Refusal::RefundExceedsPayment {
            refundable: points(20)
        })
    );
    settle(&mut state, &partial, &WriteOutcome::Committed);
    let rest = accept(&mut state, &refund(1, None), None);
    assert_eq!(state.balance(), Some(balance(100, 6)));
    settle(&mut state, &rest, &WriteOutcome::Committed);
    assert_eq!(
        decide(&state, &refund(1, Some(1)), None),
        Err(Refusal::RefundExceedsPayment {
            refundable: Points::ZERO
        })
    );
}

#[test]
fn a_payment_that_did_not_commit_is_not_known_as_refundable() {
    let state = paid(&UNAVAILABLE);
    assert_eq!(
        state.needs(&refund(1, None)),
        Needs {
            balance: true,
            order: None,
            payment: Some(payment(1)),
        }
    );
    assert_eq!(
        decide(&state, &refund(1, None), None),
        Err(Refusal::StaleState)
    );
}

#[test]
fn a_payment_made_before_the_state_was_loaded_is_read_first() {
    let mut state = loaded(70, 4);
    assert_eq!(
        state.needs(&refund(1, None)),
        Needs {
            balance: true,
            order: None,
            payment: Some(payment(1)),
        }
    );
    state.learn_payment(
        payment(1),
        KnownPayment::Refundable {
            order_id: order(1),
            amount: points(30),
            refunded: points(25),
        },
    );
    assert_eq!(
        decide(&state, &refund(1, Some(6)), None),
        Err(Refusal::RefundExceedsPayment {
            refundable: points(5)
        })
    );
    accept(&mut state, &refund(1, None), None);
    assert_eq!(state.balance(), Some(balance(75, 5)));
}
