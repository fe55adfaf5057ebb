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
        create(10, 10).fingerprint(theirs),
        Command::Cancel {
            order_id: order(10),
        }
        .fingerprint(mine),
        refund(1, Some(5), None).fingerprint(mine),
        refund(1, Some(6), None).fingerprint(mine),
        refund(1, None, None).fingerprint(mine),
        refund(1, Some(5), Some("damaged")).fingerprint(mine),
        refund(2, Some(5), None).fingerprint(mine),
    ];
    let distinct: HashSet<&Fingerprint> = prints.iter().collect();
    assert_eq!(distinct.len(), prints.len(), "{prints:?}");
    // A retried payment gets a new payment id from the engine: still the same request.
    assert_eq!(pay(10, 1).fingerprint(mine), pay(10, 2).fingerprint(mine));
    // So does a retried creation a new order id.
    assert_eq!(
        create(10, 10).fingerprint(mine),
        create(11, 10).fingerprint(mine)
    );
}

/// A refund of `payment` (refund id 1).
fn refund(payment: i64, amount: Option<i64>, reason: Option<&str>) -> Command {
    Command::Refund {
        payment_id: PaymentId::try_from(payment).unwrap(),
        refund_id: crate::domain::RefundId::try_from(1).unwrap(),
        amount: amount.map(Points::new),
        reason: reason.map(str::to_owned),
    }
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
        (
            Command::CreateOrder { total_price: x, .. },
            Command::CreateOrder { total_price: y, .. },
        ) => x == y,
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
        cancelled_at: None,
    };
    let stored = Receipt::Charged(charged.clone()).stored().unwrap();
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body, serde_json::to_string(&charged).unwrap());
    assert_eq!(
        serde_json::from_str::<ChargeReceipt>(&stored.body).unwrap(),
        charged
    );
    let stored = Receipt::Paid(paid.clone()).stored().unwrap();
    assert_eq!(stored.status, 200);
    assert_eq!(
        serde_json::from_str::<PaymentReceipt>(&stored.body).unwrap(),
        paid
    );
    assert!(stored.body.contains(r#""paymentId":3"#), "{}", stored.body);
    let stored = Receipt::OrderCreated(created.clone()).stored().unwrap();
    assert_eq!(
        stored.status, 201,
        "a creation is answered 201, replayed too"
    );
    assert_eq!(
        serde_json::from_str::<OrderView>(&stored.body).unwrap(),
        created
    );

    let replayed = StoredResponse {
        status: 201,
        body: "{}".to_owned(),
    };
    assert_eq!(Receipt::Replayed(replayed.clone()).stored(), Some(replayed));
    let cancelled = Receipt::Cancelled(OrderId::try_from(4).unwrap());
    assert_eq!(cancelled.stored(), None, "a cancellation records no key");
}
