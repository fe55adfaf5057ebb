//! Events on Kafka: every committed payment (and, when enabled, charge) reaches its topic with
//! the right envelope, key and headers, once per event id, in per-buyer order, across broker
//! outages and engine crashes; refused payments publish nothing; poison events are parked as
//! dead and can be re-driven; the `events` commands of the binary.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    PaymentSql, TestApp, TestDatabase, assert_all_invariants, int, ledger, new_key, payments_of,
    rfc3339, spawn_app_on_with, spawn_app_with,
};
use crate::kafka::{
    EVENT_DEADLINE, EngineProcess, OutboxSql, Received, TansuBroker, TopicReader, assert_envelope,
    eventually, free_port, insert_outbox_row, outbox_row, outbox_rows, outbox_statuses,
    run_events_command, shared_brokers, use_kafka, wait_until_all_published,
};

const PAYMENT_COMPLETED: &str = "payment.completed";
const POINTS_CHARGED: &str = "points.charged";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `broker` of `GET /health/ready`, asserting the probe answers 200 ready.
async fn broker_state(app: &TestApp) -> String {
    let response = app.get("/health/ready").await;
    let body = response.ok();
    assert_eq!(
        (body["status"].as_str(), body["database"].as_str()),
        (Some("ready"), Some("up")),
        "readiness: {body}"
    );
    body["broker"]
        .as_str()
        .unwrap_or_else(|| panic!("readiness must report the broker: {body}"))
        .to_string()
}

/// Waits until `/health/ready` reports the broker as `state`.
async fn wait_for_broker_state(app: &TestApp, state: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let current = broker_state(app).await;
        if current == state {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "readiness still reports broker {current:?} after {timeout:?}, expected {state:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Charges each buyer `points`, creates `per_buyer` orders of varied prices for each, and
/// returns the (buyer, order) pairs interleaved across buyers.
async fn orders_for(app: &TestApp, buyers: &[i64], per_buyer: i64, points: i64) -> Vec<(i64, i64)> {
    for &buyer in buyers {
        app.charge_ok(buyer, points).await;
    }
    let mut orders = Vec::new();
    for i in 0..per_buyer {
        for &buyer in buyers {
            orders.push((buyer, app.new_order(buyer, 100 + 7 * i + buyer).await));
        }
    }
    orders
}

/// Pays every order at once, asserts each answered 200, and returns how long it all took.
async fn pay_all(app: &TestApp, orders: &[(i64, i64)]) -> Duration {
    let start = Instant::now();
    let responses = join_all(orders.iter().map(|&(buyer, order)| app.pay(buyer, order))).await;
    let took = start.elapsed();
    for response in &responses {
        response.ok();
    }
    took
}

/// Every payment row of `buyers`, by payment id.
fn payments_by_id(db: &TestDatabase, buyers: &[i64]) -> HashMap<i64, PaymentSql> {
    let mut conn = db.connect();
    buyers
        .iter()
        .flat_map(|&buyer| payments_of(&mut conn, buyer))
        .map(|payment| (payment.id, payment))
        .collect()
}

/// Within each buyer's partition, and keeping only each event id's first appearance, `rank`
/// (a ledger version) strictly increases; and each buyer's events share one partition.
#[track_caller]
fn assert_per_buyer_order(messages: &[Received], rank: impl Fn(&Received) -> i64) {
    let mut sorted: Vec<&Received> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let mut partition_of: HashMap<i64, i32> = HashMap::new();
    let mut last_rank: HashMap<i64, (i64, String)> = HashMap::new();
    let mut seen = HashSet::new();
    for message in sorted {
        let buyer = int(&message.value["data"], "buyerId");
        let partition = *partition_of.entry(buyer).or_insert(message.partition);
        assert_eq!(
            message.partition, partition,
            "buyer {buyer}'s events must share one partition: {message:?}"
        );
        if !seen.insert(message.event_id().to_string()) {
            continue; // a redelivery; consumers keep the first-seen order
        }
        let rank = rank(message);
        if let Some((previous, previous_id)) =
            last_rank.insert(buyer, (rank, message.event_id().to_string()))
        {
            assert!(
                rank > previous,
                "buyer {buyer}: event {} (ledger version {rank}) arrived after event \
                 {previous_id} (ledger version {previous}) in partition {partition}",
                message.event_id()
            );
        }
    }
}

/// The topic carries exactly one event id per payment in `payments`, and nothing else:
/// - the distinct event ids read are exactly the outbox's `payment.completed` event ids;
/// - every message (duplicates included) is its outbox row's payload, with the right envelope,
///   headers, key and topic, and its data matches its payment row;
/// - each payment has exactly one event id;
/// - per-buyer order (ledger versions) holds within each buyer's partition.
#[track_caller]
fn assert_payment_events(
    messages: &[Received],
    topic: &str,
    payments: &HashMap<i64, PaymentSql>,
    outbox: &[OutboxSql],
) {
    let outbox: HashMap<&str, &OutboxSql> = outbox
        .iter()
        .filter(|row| row.event_type == PAYMENT_COMPLETED)
        .map(|row| (row.event_id.as_str(), row))
        .collect();
    let read: HashSet<&str> = messages.iter().map(Received::event_id).collect();
    let committed: HashSet<&str> = outbox.keys().copied().collect();
    let mut missing: Vec<&&str> = committed.difference(&read).collect();
    let mut unexpected: Vec<&&str> = read.difference(&committed).collect();
    missing.sort();
    unexpected.sort();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "the topic must carry exactly the committed payment events: {} missing {missing:?}, \
         {} unexpected {unexpected:?} ({} messages read)",
        missing.len(),
        unexpected.len(),
        messages.len()
    );
    assert_eq!(
        outbox.len(),
        payments.len(),
        "one outbox event per payment row"
    );

    let mut ids_of_payment: HashMap<i64, HashSet<&str>> = HashMap::new();
    for message in messages {
        assert_eq!(message.topic, topic, "{message:?}");
        let data = &message.value["data"];
        let payment_id = int(data, "paymentId");
        let payment = payments.get(&payment_id).unwrap_or_else(|| {
            panic!("event for payment {payment_id}, which is not a committed payment: {message:?}")
        });
        assert_envelope(message, PAYMENT_COMPLETED, payment.buyer_id);
        assert_eq!(
            (
                int(data, "paymentId"),
                int(data, "orderId"),
                int(data, "buyerId"),
                int(data, "amount"),
                int(data, "balanceAfter"),
                int(data, "version"),
            ),
            (
                payment.id,
                payment.order_id,
                payment.buyer_id,
                payment.amount,
                payment.balance_after,
                payment.ledger_version
            ),
            "event data vs payment row {payment:?}"
        );
        rfc3339(data, "paidAt");
        let row = outbox[message.event_id()];
        assert_eq!(
            message.value,
            row.json(),
            "the message must be the committed outbox payload of {}",
            row.event_id
        );
        ids_of_payment
            .entry(payment_id)
            .or_default()
            .insert(message.event_id());
    }
    for (payment_id, payment) in payments {
        let ids = ids_of_payment.get(payment_id);
        assert_eq!(
            ids.map(HashSet::len),
            Some(1),
            "payment {payment:?} must have exactly one event id, got {ids:?}"
        );
    }
    assert_per_buyer_order(messages, |m| {
        payments[&int(&m.value["data"], "paymentId")].ledger_version
    });
}

fn duplicates(messages: &[Received]) -> usize {
    let distinct: HashSet<&str> = messages.iter().map(Received::event_id).collect();
    messages.len() - distinct.len()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn every_payment_publishes_exactly_one_event_matching_it_in_per_buyer_order() {
    let brokers = shared_brokers();
    let app = spawn_app_with(|s| use_kafka(s, &brokers)).await;
    let topic = app.settings.kafka.kafka_payment_topic.clone();
    let buyers = [11, 12, 13];
    let orders = orders_for(&app, &buyers, 20, 1_000_000).await;

    // A few one at a time, then the rest all at once (several per buyer in flight).
    let (one_by_one, at_once) = orders.split_at(6);
    for &(buyer, order) in one_by_one {
        app.pay(buyer, order).await.ok();
    }
    for response in join_all(at_once.iter().map(|&(buyer, order)| app.pay(buyer, order))).await {
        response.ok();
    }
    let n = orders.len();

    let mut reader = TopicReader::open(&brokers, &topic).await;
    let distinct = reader.read_until_distinct(n, EVENT_DEADLINE).await;
    assert_eq!(distinct, n, "distinct event ids on the topic");
    wait_until_all_published(&app.db, n, EVENT_DEADLINE).await;

    let payments = payments_by_id(&app.db, &buyers);
    assert_eq!(payments.len(), n);
    let outbox = outbox_rows(&mut app.db_conn());
    assert_payment_events(&reader.received, &topic, &payments, &outbox);
    eprintln!(
        "{} messages, {} redelivered duplicates",
        reader.received.len(),
        duplicates(&reader.received)
    );
    assert_eq!(broker_state(&app).await, "up");
    assert_all_invariants(&mut app.db_conn());
}

#[actix_web::test]
async fn payments_go_on_while_the_broker_is_down_and_their_events_arrive_once_it_is_back() {
    let mut broker = TansuBroker::start();
    let brokers = broker.address();
    let app = spawn_app_with(|s| {
        use_kafka(s, &brokers);
        s.kafka.outbox_relay_batch = 5; // the backlog drains over several rounds
    })
    .await;
    let topic = app.settings.kafka.kafka_payment_topic.clone();
    let buyers = [21, 22, 23];
    let orders = orders_for(&app, &buyers, 14, 1_000_000).await;
    let (first, rest) = orders.split_at(1);
    let (right_after_the_kill, rest) = rest.split_at(18);
    let (while_down, on_restart) = rest.split_at(12);

    // A first payment is delivered: the broker is up.
    pay_all(&app, first).await;
    let mut reader = TopicReader::open(&brokers, &topic).await;
    assert_eq!(reader.read_until_distinct(1, EVENT_DEADLINE).await, 1);
    wait_until_all_published(&app.db, 1, EVENT_DEADLINE).await;
    wait_for_broker_state(&app, "up", EVENT_DEADLINE).await;
    let first_event = reader.received[0].event_id().to_string();
    drop(reader);

    // Payments made while the broker is away answer at once; their events wait.
    broker.kill();
    let took = pay_all(&app, right_after_the_kill).await;
    assert!(
        took < Duration::from_secs(5),
        "payments took {took:?} with the broker down: they must not wait for it"
    );
    wait_for_broker_state(&app, "down", Duration::from_secs(20)).await;
    actix_web::rt::time::sleep(Duration::from_secs(2)).await; // the engine keeps trying
    let took = pay_all(&app, while_down).await;
    assert!(
        took < Duration::from_secs(5),
        "payments took {took:?} with the broker known down: they must not wait for it"
    );
    let waiting = right_after_the_kill.len() + while_down.len();
    let statuses = outbox_statuses(&mut app.db_conn());
    assert_eq!(
        (statuses.get("PENDING"), statuses.get("PUBLISHED")),
        (Some(&waiting), Some(&1)),
        "with the broker down the events wait in the outbox: {statuses:?}"
    );
    assert_eq!(broker_state(&app).await, "down");

    // The broker comes back empty; once the engine re-created the topic, more payments
    // arrive while the backlog drains: they must not overtake it.
    broker.restart();
    let back = Instant::now();
    // (The relay's backoff is capped at 30 s.)
    let mut reader = TopicReader::open_within(&brokers, &topic, Duration::from_secs(45)).await;
    pay_all(&app, on_restart).await;
    let n = waiting + on_restart.len();
    let distinct = reader.read_until_distinct(n, Duration::from_secs(45)).await;
    assert_eq!(
        distinct,
        n,
        "distinct events on the restarted broker {:?} after it came back",
        back.elapsed()
    );
    wait_until_all_published(&app.db, n + 1, Duration::from_secs(30)).await;
    eprintln!(
        "the outbox drained {:?} after the broker came back; {} duplicates",
        back.elapsed(),
        duplicates(&reader.received)
    );

    // Every event since the outage, once each, in per-buyer order; not the first one again
    // (it was delivered to the broker that was lost).
    let outbox: Vec<OutboxSql> = outbox_rows(&mut app.db_conn())
        .into_iter()
        .filter(|row| row.event_id != first_event)
        .collect();
    let mut payments = payments_by_id(&app.db, &buyers);
    payments.retain(|_, payment| payment.order_id != first[0].1);
    assert_payment_events(&reader.received, &topic, &payments, &outbox);
    wait_for_broker_state(&app, "up", EVENT_DEADLINE).await;
}

#[actix_web::test]
async fn events_reach_a_broker_that_restarted_empty_while_the_engine_was_idle() {
    let mut broker = TansuBroker::start();
    let brokers = broker.address();
    let app = spawn_app_with(|s| use_kafka(s, &brokers)).await;
    let topic = app.settings.kafka.kafka_payment_topic.clone();
    let buyers = [91, 92];
    let orders = orders_for(&app, &buyers, 4, 100_000).await;
    let (before, after) = orders.split_at(2);
    pay_all(&app, before).await;
    let mut reader = TopicReader::open(&brokers, &topic).await;
    assert_eq!(reader.read_until_distinct(2, EVENT_DEADLINE).await, 2);
    wait_until_all_published(&app.db, 2, EVENT_DEADLINE).await;
    let delivered: HashSet<String> = reader.distinct_ids();
    drop(reader);

    // The broker loses everything (topics, the producer's id) while nothing is published.
    broker.kill();
    broker.restart();
    pay_all(&app, after).await;
    let mut reader = TopicReader::open(&brokers, &topic).await;
    let n = after.len();
    assert_eq!(reader.read_until_distinct(n, EVENT_DEADLINE).await, n);
    wait_until_all_published(&app.db, orders.len(), EVENT_DEADLINE).await;
    let outbox: Vec<OutboxSql> = outbox_rows(&mut app.db_conn())
        .into_iter()
        .filter(|row| !delivered.contains(&row.event_id))
        .collect();
    let mut payments = payments_by_id(&app.db, &buyers);
    payments.retain(|_, payment| after.iter().any(|&(_, order)| order == payment.order_id));
    assert_payment_events(&reader.received, &topic, &payments, &outbox);
    wait_for_broker_state(&app, "up", EVENT_DEADLINE).await;
}

#[actix_web::test]
async fn events_committed_before_the_engine_was_killed_are_published_by_the_next_engine() {
    let db = TestDatabase::new();
    let topic = format!("payment.completed.{}", uuid::Uuid::new_v4().simple());
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut engine = EngineProcess::serve(
        &db,
        &[
            ("KAFKA_BROKERS", nowhere),
            ("KAFKA_PAYMENT_TOPIC", topic.clone()),
            // The next engine is this one restarted: it takes its leases over at once.
            ("ENGINE_ID", "events-engine".to_string()),
            ("KAFKA_MESSAGE_TIMEOUT_MS", "2000".to_string()),
            ("OUTBOX_RELAY_INTERVAL_MS", "100".to_string()),
            ("OUTBOX_RELAY_GRACE_MS", "300".to_string()),
        ],
    )
    .await;
    let buyers = [31, 32, 33];
    let mut paid = 0;
    let mut later = Vec::new();
    for &buyer in &buyers {
        engine.charge(buyer, 100_000).await.ok();
        let mut orders = Vec::new();
        for i in 0..10 {
            orders.push(engine.new_order(buyer, 100 + i).await);
        }
        later.extend(orders.split_off(8).into_iter().map(|order| (buyer, order)));
        for response in join_all(orders.iter().map(|&order| engine.pay(buyer, order))).await {
            response.ok();
            paid += 1;
        }
    }
    engine.kill();
    let rows = outbox_rows(&mut db.connect());
    assert_eq!(
        rows.len(),
        paid,
        "every acknowledged payment left its event"
    );
    assert!(
        rows.iter().all(|r| r.status == "PENDING"),
        "nothing could be published: {:?}",
        outbox_statuses(&mut db.connect())
    );

    // The next engine drains the backlog a few events per round; payments made meanwhile
    // come after it, in per-buyer order.
    let brokers = shared_brokers();
    let app = spawn_app_on_with(&db, |s| {
        use_kafka(s, &brokers);
        s.kafka.kafka_payment_topic = topic.clone();
        s.kafka.outbox_relay_batch = 4;
        s.cluster.engine_id = Some("events-engine".to_string());
    })
    .await;
    pay_all(&app, &later).await;
    let n = paid + later.len();
    let mut reader = TopicReader::open(&brokers, &topic).await;
    let distinct = reader.read_until_distinct(n, EVENT_DEADLINE).await;
    assert_eq!(distinct, n, "distinct event ids on the topic");
    wait_until_all_published(&db, n, EVENT_DEADLINE).await;
    let payments = payments_by_id(&db, &buyers);
    assert_payment_events(
        &reader.received,
        &topic,
        &payments,
        &outbox_rows(&mut app.db_conn()),
    );
    assert_all_invariants(&mut app.db_conn());
}

#[actix_web::test]
async fn refused_and_replayed_payments_publish_nothing() {
    let brokers = shared_brokers();
    let app = spawn_app_with(|s| use_kafka(s, &brokers)).await;
    let topic = app.settings.kafka.kafka_payment_topic.clone();
    app.charge_ok(41, 1_000).await;
    app.charge_ok(42, 1_000).await;

    let first = app.new_order(41, 600).await;
    let key = new_key();
    let paid = app.pay_with_key(41, first, &key).await.ok();
    let replay = app.pay_with_key(41, first, &key).await;
    assert!(replay.is_replay(), "a replay: {replay:?}");
    assert_eq!(replay.ok(), paid);
    app.pay(41, first)
        .await
        .expect_problem(409, "order_already_paid");
    let too_dear = app.new_order(41, 600).await;
    app.pay(41, too_dear)
        .await
        .expect_problem(422, "insufficient_balance");
    let of_42 = app.new_order(42, 100).await;
    app.pay(41, of_42)
        .await
        .expect_problem(404, "order_not_found");
    app.pay(41, 987_654_321)
        .await
        .expect_problem(404, "order_not_found");
    app.pay(42, of_42).await.ok();

    // At once, so that refusals and successes share commit batches: three payments of one
    // order (one succeeds), and refusals of the kinds above.
    let raced = app.new_order(42, 50).await;
    let requests = vec![
        app.pay(42, raced),
        app.pay(41, too_dear),
        app.pay(42, raced),
        app.pay(41, of_42),
        app.pay(42, raced),
        app.pay(42, of_42),
    ];
    let statuses: Vec<u16> = join_all(requests)
        .await
        .iter()
        .map(|r| r.status())
        .collect();
    let raced_statuses = {
        let mut raced = vec![statuses[0], statuses[2], statuses[4]];
        raced.sort();
        raced
    };
    assert_eq!(
        (raced_statuses, statuses[1], statuses[3], statuses[5]),
        (vec![200, 409, 409], 422, 404, 409),
        "concurrent payments: {statuses:?}"
    );

    let payments = payments_by_id(&app.db, &[41, 42]);
    assert_eq!(payments.len(), 3);
    let outbox = outbox_rows(&mut app.db_conn());
    assert_eq!(
        outbox.len(),
        3,
        "one outbox row per successful payment, none for the refused ones: {outbox:?}"
    );
    let mut reader = TopicReader::open(&brokers, &topic).await;
    assert_eq!(reader.read_until_distinct(3, EVENT_DEADLINE).await, 3);
    // Longer than the relay's interval and grace: nothing else turns up late.
    reader.read_for(Duration::from_secs(1)).await;
    assert_payment_events(&reader.received, &topic, &payments, &outbox);
    wait_until_all_published(&app.db, 3, EVENT_DEADLINE).await;
}

#[actix_web::test]
async fn an_event_the_broker_refuses_is_parked_as_dead_and_can_be_redriven_after_a_fix() {
    // An engine without a broker leaves payments and, among them, an event larger than
    // librdkafka's default message.max.bytes (1,000,000) in the outbox.
    let offline = spawn_app_with(|s| use_kafka(s, "")).await;
    let db = offline.db.clone();
    let orders = orders_for(&offline, &[51], 8, 100_000).await;
    let (before, rest) = orders.split_at(3);
    let (after, live) = rest.split_at(3);
    pay_all(&offline, before).await;
    let poison = uuid::Uuid::new_v4().to_string();
    let oversized = json!({
        "eventId": poison, "type": PAYMENT_COMPLETED, "schemaVersion": 1,
        "occurredAt": chrono::Utc::now().to_rfc3339(),
        "data": { "buyerId": 51, "padding": "x".repeat(2_000_000) },
    });
    insert_outbox_row(
        &mut db.connect(),
        &poison,
        PAYMENT_COMPLETED,
        51,
        &oversized.to_string(),
    );
    pay_all(&offline, after).await;
    drop(offline);

    // An engine with a broker drains the outbox: the events around the poison are published,
    // the poison is refused OUTBOX_MAX_ATTEMPTS times and parked, live publishing resumes.
    let brokers = shared_brokers();
    let app = spawn_app_on_with(&db, |s| {
        use_kafka(s, &brokers);
        s.kafka.outbox_max_attempts = 2;
    })
    .await;
    let topic = app.settings.kafka.kafka_payment_topic.clone();
    let mut conn = app.db_conn();
    let dead = eventually("the oversized event to be parked", EVENT_DEADLINE, || {
        outbox_row(&mut conn, &poison).filter(|row| row.status != "PENDING")
    })
    .await;
    assert_eq!(
        (dead.status.as_str(), dead.attempts, dead.has_published_at),
        ("DEAD", 2, 0),
        "parked after OUTBOX_MAX_ATTEMPTS refusals: {dead:?}"
    );
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| !e.trim().is_empty()),
        "a dead event keeps its last error: {dead:?}"
    );
    for &(buyer, order) in live {
        app.pay(buyer, order).await.ok();
    }
    let mut reader = TopicReader::open(&brokers, &topic).await;
    assert_eq!(reader.read_until_distinct(8, EVENT_DEADLINE).await, 8);
    wait_until_all_published_but(&app.db, &poison, 8).await;
    let payments = payments_by_id(&app.db, &[51]);
    let others: Vec<OutboxSql> = outbox_rows(&mut conn)
        .into_iter()
        .filter(|row| row.event_id != poison)
        .collect();
    assert_payment_events(&reader.received, &topic, &payments, &others);

    // The operator lists it, fixes it, and re-drives it.
    let listed = run_events_command(&app.db, &["dead"], &[]).await;
    assert!(listed.status.success(), "events dead failed: {listed:?}");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one dead event listed: {stdout}");
    assert!(
        lines[0].starts_with(&poison) && lines[0].contains("attempts=2"),
        "events dead must list {poison}: {stdout}"
    );
    let still = outbox_row(&mut conn, &poison).unwrap();
    assert_eq!(
        (still.status.as_str(), still.attempts),
        ("DEAD", 2),
        "a dead event is not retried on its own"
    );

    let fixed = json!({
        "eventId": poison, "type": PAYMENT_COMPLETED, "schemaVersion": 1,
        "occurredAt": chrono::Utc::now().to_rfc3339(),
        "data": { "buyerId": 51, "note": "fixed by the operator" },
    });
    diesel::RunQueryDsl::execute(
        diesel::sql_query("UPDATE outbox_events SET payload = ? WHERE event_id = ?")
            .bind::<diesel::sql_types::Text, _>(fixed.to_string())
            .bind::<diesel::sql_types::Text, _>(&poison),
        &mut conn,
    )
    .expect("fixing the payload");
    let redriven = run_events_command(&app.db, &["redrive", &poison], &[]).await;
    assert!(
        redriven.status.success(),
        "events redrive failed: {redriven:?}"
    );
    let said = String::from_utf8_lossy(&redriven.stdout);
    assert!(said.starts_with("1 dead event"), "redrive output: {said}");

    assert_eq!(reader.read_until_distinct(9, EVENT_DEADLINE).await, 9);
    let delivered: Vec<&Received> = reader
        .received
        .iter()
        .filter(|m| m.event_id() == poison)
        .collect();
    assert!(!delivered.is_empty(), "the re-driven event must arrive");
    for message in delivered {
        assert_envelope(message, PAYMENT_COMPLETED, 51);
        assert_eq!(message.value, fixed, "the re-driven event carries the fix");
    }
    wait_until_all_published(&app.db, 9, EVENT_DEADLINE).await;
}

/// Waits until every outbox row except `but` is PUBLISHED, and there are `others` of them.
async fn wait_until_all_published_but(db: &TestDatabase, but: &str, others: usize) {
    let mut conn = db.connect();
    eventually("the other events to be published", EVENT_DEADLINE, || {
        let rows: Vec<OutboxSql> = outbox_rows(&mut conn)
            .into_iter()
            .filter(|row| row.event_id != but)
            .collect();
        (rows.len() == others && rows.iter().all(|r| r.status == "PUBLISHED")).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn with_charge_events_enabled_each_charge_publishes_points_charged_on_the_charge_topic() {
    let brokers = shared_brokers();
    let app = spawn_app_with(|s| {
        use_kafka(s, &brokers);
        s.kafka.emit_charge_events = true;
    })
    .await;
    let charge_topic = app.settings.kafka.kafka_charge_topic.clone();
    let payment_topic = app.settings.kafka.kafka_payment_topic.clone();
    app.charge_ok(61, 100).await;
    app.charge_ok(62, 40).await;
    app.charge_ok(61, 250).await;
    let order = app.new_order(61, 50).await;
    app.pay(61, order).await.ok();
    app.charge_ok(61, 7).await;

    let mut charges = TopicReader::open(&brokers, &charge_topic).await;
    assert_eq!(charges.read_until_distinct(4, EVENT_DEADLINE).await, 4);
    let mut conn = app.db_conn();
    let outbox = outbox_rows(&mut conn);
    let charge_rows: HashMap<&str, &OutboxSql> = outbox
        .iter()
        .filter(|row| row.event_type == POINTS_CHARGED)
        .map(|row| (row.event_id.as_str(), row))
        .collect();
    assert_eq!(
        charge_rows.len(),
        4,
        "one outbox row per charge: {outbox:?}"
    );
    let ledgers: HashMap<i64, _> = [61, 62]
        .into_iter()
        .map(|buyer| (buyer, ledger(&mut conn, buyer)))
        .collect();
    for message in &charges.received {
        assert_eq!(message.topic, charge_topic);
        let data = &message.value["data"];
        let buyer = int(data, "buyerId");
        assert_envelope(message, POINTS_CHARGED, buyer);
        let row = charge_rows
            .get(message.event_id())
            .unwrap_or_else(|| panic!("not a committed charge event: {message:?}"));
        assert_eq!(message.value, row.json());
        let version = int(data, "version");
        let entry = ledgers[&buyer]
            .iter()
            .find(|e| e.version == version)
            .unwrap_or_else(|| panic!("no ledger entry for {message:?}"));
        assert_eq!(
            (
                entry.kind.as_str(),
                int(data, "amount"),
                int(data, "balanceAfter")
            ),
            ("CHARGE", entry.amount, entry.balance_after),
            "charge event {message:?} vs ledger entry {entry:?}"
        );
        rfc3339(data, "chargedAt");
    }
    assert_per_buyer_order(&charges.received, |m| int(&m.value["data"], "version"));

    // The payment goes to the payment topic, and only it.
    let mut payments = TopicReader::open(&brokers, &payment_topic).await;
    assert_eq!(payments.read_until_distinct(1, EVENT_DEADLINE).await, 1);
    assert_payment_events(
        &payments.received,
        &payment_topic,
        &payments_by_id(&app.db, &[61, 62]),
        &outbox,
    );
    wait_until_all_published(&app.db, 5, EVENT_DEADLINE).await;
}

#[actix_web::test]
async fn by_default_charges_write_no_outbox_row_and_publish_nothing() {
    let brokers = shared_brokers();
    let app = spawn_app_with(|s| use_kafka(s, &brokers)).await;
    assert!(
        !app.settings.kafka.emit_charge_events,
        "charge events are off by default"
    );
    let topic = app.settings.kafka.kafka_payment_topic.clone();
    for points in [100, 200, 300] {
        app.charge_ok(63, points).await;
    }
    assert!(
        outbox_rows(&mut app.db_conn()).is_empty(),
        "charges must write no outbox row"
    );
    let order = app.new_order(63, 150).await;
    app.pay(63, order).await.ok();

    let mut reader = TopicReader::open(&brokers, &topic).await;
    assert_eq!(reader.read_until_distinct(1, EVENT_DEADLINE).await, 1);
    let outbox = outbox_rows(&mut app.db_conn());
    assert_eq!(outbox.len(), 1, "only the payment's row: {outbox:?}");
    assert_payment_events(
        &reader.received,
        &topic,
        &payments_by_id(&app.db, &[63]),
        &outbox,
    );
}

#[actix_web::test]
async fn without_a_broker_configured_payments_succeed_and_their_events_stay_pending() {
    let app = spawn_app_with(|s| {
        use_kafka(s, "");
    })
    .await;
    assert_eq!(broker_state(&app).await, "disabled");
    let orders = orders_for(&app, &[71, 72], 2, 10_000).await;
    for &(buyer, order) in &orders {
        app.pay(buyer, order).await.ok();
    }

    // Many relay intervals and grace periods later, the events are still waiting.
    actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;
    let rows = outbox_rows(&mut app.db_conn());
    assert_eq!(rows.len(), orders.len(), "one outbox row per payment");
    for row in &rows {
        assert_eq!(
            (row.status.as_str(), row.attempts, row.has_published_at),
            ("PENDING", 0, 0),
            "{row:?}"
        );
        assert_eq!(row.json()["type"], json!(PAYMENT_COMPLETED));
    }
    assert_eq!(broker_state(&app).await, "disabled");
}

/// With the broker unreachable at start-up, topic creation is bounded like a delivery and
/// readiness soon reports the broker down (it once waited for librdkafka's 60 s default).
#[actix_web::test]
async fn readiness_reports_the_broker_down_soon_when_it_is_unreachable_at_start_up() {
    let nowhere = format!("127.0.0.1:{}", free_port());
    let app = spawn_app_with(|s| use_kafka(s, &nowhere)).await;
    let orders = orders_for(&app, &[96], 1, 1_000).await;
    pay_all(&app, &orders).await;

    // Delivery fails after KAFKA_MESSAGE_TIMEOUT_MS (2 s); allow ten times that.
    wait_for_broker_state(&app, "down", Duration::from_secs(20)).await;
    let statuses = outbox_statuses(&mut app.db_conn());
    assert_eq!(statuses.get("PENDING"), Some(&1), "{statuses:?}");
}

#[actix_web::test]
async fn events_tail_prints_each_message_of_the_topic_as_a_json_line() {
    let brokers = shared_brokers();
    let app = spawn_app_with(|s| use_kafka(s, &brokers)).await;
    let topic = app.settings.kafka.kafka_payment_topic.clone();
    let orders = orders_for(&app, &[81, 82], 2, 10_000).await;
    for &(buyer, order) in &orders {
        app.pay(buyer, order).await.ok();
    }
    let mut reader = TopicReader::open(&brokers, &topic).await;
    assert_eq!(reader.read_until_distinct(4, EVENT_DEADLINE).await, 4);
    let expected: HashSet<(i32, i64, String)> = reader
        .received
        .iter()
        .map(|m| (m.partition, m.offset, m.event_id().to_string()))
        .collect();
    let n = reader.received.len().to_string();

    let tail = run_events_command(
        &app.db,
        &[
            "tail",
            "--from-beginning",
            "--max-messages",
            &n,
            "--idle-timeout-s",
            "30",
        ],
        &[
            ("KAFKA_BROKERS", brokers.clone()),
            ("KAFKA_PAYMENT_TOPIC", topic.clone()),
        ],
    )
    .await;
    assert!(tail.status.success(), "events tail failed: {tail:?}");
    let stdout = String::from_utf8_lossy(&tail.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("events tail printed a non-JSON line ({e}): {line}"))
        })
        .collect();
    assert_eq!(
        lines.len(),
        reader.received.len(),
        "lines printed: {stdout}"
    );
    let mut printed = HashSet::new();
    for line in &lines {
        let event = &line["event"];
        let event_id = event["eventId"]
            .as_str()
            .unwrap_or_else(|| panic!("no event.eventId: {line}"));
        let buyer = int(&event["data"], "buyerId");
        assert_eq!(
            (
                line["topic"].as_str(),
                line["key"].as_str(),
                line["headers"]["event-id"].as_str(),
                line["headers"]["event-type"].as_str(),
                event["type"].as_str(),
            ),
            (
                Some(topic.as_str()),
                Some(buyer.to_string().as_str()),
                Some(event_id),
                Some(PAYMENT_COMPLETED),
                Some(PAYMENT_COMPLETED),
            ),
            "{line}"
        );
        printed.insert((
            int(line, "partition") as i32,
            int(line, "offset"),
            event_id.to_string(),
        ));
    }
    assert_eq!(
        printed, expected,
        "events tail must print the topic's messages"
    );
}
