//! Real messages against the published contract: after a mixed load (charges with charge events
//! on, orders created and paid, partial and full refunds, cancellations, and bursts of
//! concurrent requests per buyer), every message on both topics validates against its committed
//! schema (closed: nothing undocumented), sits on its type's topic, carries the key and headers
//! the contract names, and one buyer's events arrive in strictly increasing `version`, covering
//! every movement of their ledger.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::future::join_all;
use payment_engine::events::kafka::KafkaSettings;
use payment_engine::events::{
    ORDER_CANCELLED, PAYMENT_COMPLETED, PAYMENT_REFUNDED, POINTS_CHARGED, SCHEMA_VERSION,
};
use serde_json::{Value, json};

use super::{closed, committed, validator, violations};
use crate::helpers::{TestApp, int, spawn_app_with};
use crate::kafka::{EVENT_DEADLINE, Received, TopicReader, shared_brokers, use_kafka};

const BUYERS: [i64; 3] = [81, 82, 83];

/// Distinct events expected, by type.
type Counts = BTreeMap<&'static str, usize>;

async fn pay_ok(app: &TestApp, buyer: i64, order: i64) -> i64 {
    int(&app.pay(buyer, order).await.ok(), "paymentId")
}

/// `POST /payments/{payment}/refunds`, asserting 201.
async fn refund(
    app: &TestApp,
    buyer: i64,
    payment: i64,
    amount: Option<i64>,
    reason: Option<&str>,
) {
    let mut body = json!({ "buyerId": buyer });
    if let Some(amount) = amount {
        body["amount"] = json!(amount);
    }
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    let path = format!("/payments/{payment}/refunds");
    let response = app.post_json(&path, &body, None).await;
    assert_eq!(
        response.status(),
        201,
        "POST {path} {body}: {}",
        response.text
    );
}

/// `POST /orders/{order}/cancel`, asserting 200.
async fn cancel(app: &TestApp, buyer: i64, order: i64) {
    let path = format!("/orders/{order}/cancel");
    let response = app
        .post_json(&path, &json!({ "buyerId": buyer }), None)
        .await;
    assert_eq!(response.status(), 200, "POST {path}: {}", response.text);
}

/// One buyer's share of the load; returns the events it must publish.
async fn one_buyers_load(app: &TestApp, buyer: i64) -> Counts {
    let mut counts = Counts::new();
    let mut add = |event_type, n| *counts.entry(event_type).or_default() += n;
    app.charge_ok(buyer, 10_000).await;
    let mut orders = Vec::new();
    for i in 0..4 {
        orders.push(app.new_order(buyer, 100 + 10 * i + buyer).await);
    }
    let first = pay_ok(app, buyer, orders[0]).await;
    app.charge_ok(buyer, 250).await;
    let second = pay_ok(app, buyer, orders[1]).await;
    refund(app, buyer, first, Some(30), Some("damaged in transit")).await;
    refund(app, buyer, first, None, None).await; // the rest
    pay_ok(app, buyer, orders[2]).await;
    refund(app, buyer, second, None, Some("never delivered")).await;
    cancel(app, buyer, orders[3]).await;
    add(POINTS_CHARGED, 2);
    add(PAYMENT_COMPLETED, 3);
    add(PAYMENT_REFUNDED, 3);
    add(ORDER_CANCELLED, 1);

    // A burst: the actor decides these while earlier ones commit (pipelined, group-committed).
    let late = app.new_order(buyer, 500).await;
    let charges = join_all((1..=3).map(|i| app.charge_ok(buyer, 10 * i)));
    let (_, payment) = futures::join!(charges, pay_ok(app, buyer, late));
    app.charge_ok(buyer, 5).await;
    refund(app, buyer, payment, Some(1), None).await;
    add(POINTS_CHARGED, 4);
    add(PAYMENT_COMPLETED, 1);
    add(PAYMENT_REFUNDED, 1);
    counts
}

#[actix_web::test]
async fn every_message_of_a_mixed_load_validates_against_its_committed_schema_in_per_buyer_order() {
    let brokers = shared_brokers();
    let app = spawn_app_with(|settings| {
        use_kafka(settings, &brokers);
        settings.kafka.emit_charge_events = true;
    })
    .await;
    let mut expected = Counts::new();
    for counts in join_all(BUYERS.map(|buyer| one_buyers_load(&app, buyer))).await {
        for (event_type, n) in counts {
            *expected.entry(event_type).or_default() += n;
        }
    }
    let kafka = &app.settings.kafka;
    let mut topics = Vec::new();
    for topic in [&kafka.kafka_payment_topic, &kafka.kafka_charge_topic] {
        let want: usize = expected
            .iter()
            .filter(|(event_type, _)| kafka.topic_for(event_type) == topic.as_str())
            .map(|(_, n)| n)
            .sum();
        let mut reader = TopicReader::open(&brokers, topic).await;
        let got = reader.read_until_distinct(want, EVENT_DEADLINE).await;
        assert_eq!(
            got, want,
            "distinct events on {topic}: {:?}",
            reader.received
        );
        topics.push(reader);
    }
    let messages: Vec<&Received> = topics.iter().flat_map(|t| &t.received).collect();
    assert_each_matches_the_contract(&messages, kafka);
    assert_eq!(distinct_by_type(&messages), expected, "events by type");
    let mut final_versions = BTreeMap::new();
    for buyer in BUYERS {
        final_versions.insert(buyer, app.balance_of(buyer).await);
    }
    assert_per_buyer_order(&topics, &final_versions);
}

/// Each message: valid against its type's committed schema, closed (no undocumented field), on
/// its type's topic, with the key and headers the contract names; a redelivery repeats its
/// first delivery exactly.
#[track_caller]
fn assert_each_matches_the_contract(messages: &[&Received], kafka: &KafkaSettings) {
    let committed = committed();
    let validators: HashMap<&str, jsonschema::Validator> = committed
        .iter()
        .filter_map(|(t, versions)| {
            Some((
                t.as_str(),
                validator(&closed(versions.get(&SCHEMA_VERSION)?)),
            ))
        })
        .collect();
    let mut first_copy: HashMap<&str, &Value> = HashMap::new();
    for message in messages {
        let value = &message.value;
        let event_type = value["type"].as_str().unwrap_or_default();
        let validator = validators
            .get(event_type)
            .unwrap_or_else(|| panic!("no committed v{SCHEMA_VERSION} schema for {message:?}"));
        let wrong = violations(validator, value);
        assert!(
            wrong.is_empty(),
            "{event_type} breaks its schema:\n{wrong}\nmessage: {message:?}"
        );
        assert_eq!(
            message.topic,
            kafka.topic_for(event_type),
            "topic of {message:?}"
        );
        let data = &value["data"];
        assert_eq!(
            (
                message.header("event-id"),
                message.header("event-type"),
                message.header("schema-version"),
                message.key.clone()
            ),
            (
                value["eventId"].as_str(),
                Some(event_type),
                Some(value["schemaVersion"].to_string().as_str()),
                Some(int(data, "buyerId").to_string())
            ),
            "headers and key of {message:?}"
        );
        if event_type == PAYMENT_REFUNDED {
            let (amount, total) = (int(data, "amount"), int(data, "refundedTotal"));
            assert!(
                amount <= total && total <= int(data, "paymentAmount"),
                "{message:?}"
            );
        }
        let first = first_copy.entry(message.event_id()).or_insert(value);
        assert_eq!(*first, value, "a redelivery differs from the first copy");
    }
}

fn distinct_by_type(messages: &[&Received]) -> Counts {
    let mut seen = HashSet::new();
    let mut counts = Counts::new();
    for message in messages.iter().filter(|m| seen.insert(m.event_id())) {
        let event_type = [
            PAYMENT_COMPLETED,
            PAYMENT_REFUNDED,
            ORDER_CANCELLED,
            POINTS_CHARGED,
        ]
        .into_iter()
        .find(|t| message.value["type"] == *t)
        .unwrap_or_else(|| panic!("an event of no known type: {message:?}"));
        *counts.entry(event_type).or_default() += 1;
    }
    counts
}

/// Per topic, each buyer's events share a partition and, first copies only (consumers dedupe
/// on `eventId`), arrive in strictly increasing `version`; topics are not ordered with each
/// other, but together they carry every version of the buyer's ledger, the last one with the
/// final balance.
#[track_caller]
fn assert_per_buyer_order(topics: &[TopicReader], finals: &BTreeMap<i64, (i64, i64)>) {
    let mut versions: BTreeMap<i64, BTreeMap<i64, i64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for reader in topics {
        let mut messages: Vec<&Received> = reader.received.iter().collect();
        messages.sort_by_key(|m| (m.partition, m.offset));
        let mut last: HashMap<i64, (i32, i64)> = HashMap::new();
        for message in messages {
            let data = &message.value["data"];
            let buyer = int(data, "buyerId");
            let partition = last.get(&buyer).map_or(message.partition, |(p, _)| *p);
            assert_eq!(
                message.partition, partition,
                "buyer {buyer} on two partitions"
            );
            if !seen.insert(message.event_id()) || data.get("version").is_none() {
                continue; // a redelivery, or an event that moves no points
            }
            let version = int(data, "version");
            if let Some((_, previous)) = last.insert(buyer, (partition, version)) {
                assert!(
                    version > previous,
                    "buyer {buyer} on {}: version {version} arrived after {previous}: {message:?}",
                    reader.topic
                );
            }
            versions
                .entry(buyer)
                .or_default()
                .insert(version, int(data, "balanceAfter"));
        }
    }
    for (buyer, (balance, version)) in finals {
        let seen = versions.get(buyer).cloned().unwrap_or_default();
        let expected: Vec<i64> = (1..=*version).collect();
        assert_eq!(
            seen.keys().copied().collect::<Vec<_>>(),
            expected,
            "buyer {buyer}'s versions"
        );
        assert_eq!(
            seen.get(version),
            Some(balance),
            "buyer {buyer}'s last balanceAfter"
        );
    }
}
