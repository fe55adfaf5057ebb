//! Model-based test: random sequences of charges, orders and payments (generated with proptest)
//! run against the engine one request at a time; every answer must match a trivial model.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;

use crate::helpers::{assert_buyer_invariants, int, spawn_app};

#[derive(Debug, Clone)]
enum Op {
    Charge(i64),
    NewOrder(i64),
    Pay(prop::sample::Index),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..=5_000).prop_map(Op::Charge),
        2 => (1i64..=8_000).prop_map(Op::NewOrder),
        3 => any::<prop::sample::Index>().prop_map(Op::Pay),
    ]
}

#[derive(Debug)]
struct Order {
    id: i64,
    price: i64,
    paid: bool,
}

#[actix_web::test]
async fn random_sequences_of_operations_match_a_simple_model() {
    let app = spawn_app().await;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(op(), 1..40);

    for case in 0..12_i64 {
        let ops = strategy
            .new_tree(&mut runner)
            .expect("generating a case")
            .current();
        let buyer = 1_000 + case;
        let (mut balance, mut version) = (0_i64, 0_i64);
        let mut orders: Vec<Order> = Vec::new();
        let mut entries: Vec<(String, i64, i64, Option<i64>)> = Vec::new();

        for (step, op) in ops.iter().enumerate() {
            let context = format!("case {case} step {step} {op:?} of {ops:?}");
            match op {
                Op::Charge(amount) => {
                    let body = app.charge(buyer, *amount).await.ok();
                    balance += amount;
                    version += 1;
                    assert_eq!(
                        body,
                        json!({ "buyerId": buyer, "amount": amount, "balance": balance, "version": version }),
                        "{context}"
                    );
                    entries.push(("CHARGE".into(), *amount, balance, None));
                }
                Op::NewOrder(price) => {
                    let id = app.new_order(buyer, *price).await;
                    orders.push(Order {
                        id,
                        price: *price,
                        paid: false,
                    });
                }
                Op::Pay(index) => {
                    if orders.is_empty() {
                        continue;
                    }
                    let position = index.index(orders.len());
                    let order = &mut orders[position];
                    let response = app.pay(buyer, order.id).await;
                    match response.status() {
                        200 => {
                            assert!(
                                !order.paid && balance >= order.price,
                                "{context}: paid {order:?} at balance {balance}"
                            );
                            let body = response.json();
                            balance -= order.price;
                            version += 1;
                            assert_eq!(
                                (
                                    int(&body, "orderId"),
                                    int(&body, "amount"),
                                    int(&body, "balance"),
                                    int(&body, "version")
                                ),
                                (order.id, order.price, balance, version),
                                "{context}"
                            );
                            order.paid = true;
                            entries.push(("PAYMENT".into(), -order.price, balance, Some(order.id)));
                        }
                        409 => {
                            assert!(
                                order.paid,
                                "{context}: 409 for unpaid {order:?}: {}",
                                response.text
                            );
                            response.expect_problem(409, "order_already_paid");
                        }
                        422 => {
                            assert!(
                                balance < order.price,
                                "{context}: 422 at balance {balance} for {order:?}"
                            );
                            response.expect_problem(422, "insufficient_balance");
                        }
                        other => panic!("{context}: unexpected {other}: {}", response.text),
                    }
                }
            }
        }

        assert_eq!(
            app.balance_of(buyer).await,
            (balance, version),
            "case {case}: {ops:?}"
        );
        let history: Vec<(String, i64, i64, Option<i64>)> = app
            .full_history(buyer, 7)
            .await
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    int(e, "amount"),
                    int(e, "balanceAfter"),
                    e["orderId"].as_i64(),
                )
            })
            .collect();
        entries.reverse();
        assert_eq!(
            history, entries,
            "case {case}: history vs model for {ops:?}"
        );
        assert_buyer_invariants(&mut app.db_conn(), buyer);
    }
}
