//! Drill 3: the broker is killed under payment load for 30 s (10 s in the short form) and comes
//! back empty (in-memory storage). Payments keep answering 200 meanwhile, their events wait in
//! the outbox, and the backlog drains completely once the broker is back: no event lost.
//!
//! The broker's memory storage loses what it held when it is killed, so the events are counted
//! on both incarnations: a reader follows the first broker until the kill, a second one reads
//! the restarted broker. An event the engine marked published before the restart was acked by
//! the first broker (nothing can ack while it is down): it must have reached the first reader
//! when it was marked over a second before the kill (later ones may have been on their way to
//! the reader); every event marked after the restart must be on the restarted broker.

use std::collections::HashSet;

use std::time::{Duration, Instant};

use super::crash::{drill_topic, engine_env};
use super::load::{Load, LoadSpec, Request, quantile};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{
    LIFECYCLE_PERCENT, PAYMENT_TOPIC_EVENTS, Row, buyers, check_books, fund, millis,
    outbox_backlog, outbox_drained, scaled, secs, without_event,
};
use crate::helpers::TestDatabase;
use crate::kafka::{EngineProcess, TansuBroker, TopicReader};

#[derive(QueryableByName)]
struct Published {
    #[diesel(sql_type = Text)]
    event_id: String,
    /// Published before the broker was restarted (so acked by the one that was killed).
    #[diesel(sql_type = BigInt)]
    before_restart: i64,
    /// Published over a second before the kill.
    #[diesel(sql_type = BigInt)]
    well_before_kill: i64,
}

fn published(db: &TestDatabase, kill: NaiveDateTime, restart: NaiveDateTime) -> Vec<Published> {
    let format = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    diesel::sql_query(format!(
        "SELECT event_id, CAST(published_at < ? AS SIGNED) AS before_restart, \
         CAST(published_at < DATE_SUB(?, INTERVAL 1 SECOND) AS SIGNED) AS well_before_kill \
         FROM outbox_events WHERE {PAYMENT_TOPIC_EVENTS}"
    ))
    .bind::<Text, _>(format(restart))
    .bind::<Text, _>(format(kill))
    .load(&mut db.connect())
    .expect("reading the outbox")
}

#[actix_web::test]
async fn drill_3_broker_outage_keeps_payments_answering_and_loses_no_event() {
    let db = TestDatabase::new();
    let mut broker = TansuBroker::start();
    let brokers = broker.address();
    let topic = drill_topic();
    let mut env = engine_env(&brokers, &topic);
    env.push(("KAFKA_MESSAGE_TIMEOUT_MS", "2000".to_string()));
    let engine = EngineProcess::serve(&db, &env).await;
    let spec = LoadSpec {
        clients: 100,
        buyers: buyers(3_001, 50),
        pay_percent: 100,
        lifecycle_percent: LIFECYCLE_PERCENT,
        timeout: Duration::from_secs(30),
        follow_readiness: false,
    };
    fund(&engine, &spec.buyers, 10_000_000).await;
    let outage = scaled(Duration::from_secs(10), Duration::from_secs(30));
    let mut conn = db.connect();

    // The first broker's reader follows the topic while the load runs, until the kill.
    let mut first_reader = TopicReader::open(&brokers, &topic).await;
    let load = Load::start(&engine.address, &spec);
    first_reader
        .read_for(scaled(Duration::from_secs(2), Duration::from_secs(10)))
        .await;
    // The first reader goes before its broker: a consumer left assigned across the restart
    // once crashed the test process inside librdkafka (SIGSEGV) when the broker came back empty.
    let on_first: HashSet<String> = first_reader.distinct_ids();
    drop(first_reader);
    let kill_at = load.elapsed();
    let kill_wall = chrono::Utc::now().naive_utc();
    broker.kill();
    let killed = Instant::now();
    let mut backlog = Vec::new();
    while killed.elapsed() < outage {
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        backlog.push(outbox_backlog(&mut conn));
    }
    let restart_at = load.elapsed();
    let restart_wall = chrono::Utc::now().naive_utc();
    broker.restart();
    let back = Instant::now();
    actix_web::rt::time::sleep(scaled(Duration::from_secs(3), Duration::from_secs(10))).await;
    let outcome = load.stop().await;
    let drained = outbox_drained(&db, Duration::from_secs(90))
        .await
        .map(|_| back.elapsed());

    let statuses = outcome.statuses();
    let not_ok = outcome
        .samples
        .iter()
        .filter(|s| !(s.status == 200 || s.status == 201 || s.refusal_expected))
        .count();
    assert_eq!(
        not_ok, 0,
        "every order, payment, refund and cancel must succeed (or be refused as its state \
         says), broker or not: {statuses:?} {:?}",
        outcome.error_examples
    );
    let during: Vec<_> = outcome.between(kill_at, restart_at).collect();
    let paid_during = during
        .iter()
        .filter(|s| s.request == Request::Pay && s.status == 200)
        .count();
    assert!(
        paid_during > 100,
        "only {paid_during} payments during the outage: {statuses:?}"
    );
    assert!(
        backlog.windows(2).filter(|w| w[1] > w[0]).count() >= backlog.len() / 2
            && backlog.last() > backlog.first(),
        "the outbox backlog must grow while the broker is down: {backlog:?}"
    );
    let drained = drained.expect("the outbox did not drain within 90 s of the broker's return");

    outcome.assert_lifecycle_ran();
    let books = check_books(&db, &outcome);
    let events = published(&db, kill_wall, restart_wall);
    let after: Vec<&Published> = events.iter().filter(|e| e.before_restart == 0).collect();
    let mut second_reader = TopicReader::open(&brokers, &topic).await;
    second_reader
        .read_until_distinct(after.len(), Duration::from_secs(60))
        .await;
    let on_second = second_reader.distinct_ids();
    let lost_on_first = events
        .iter()
        .filter(|e| e.well_before_kill == 1 && !on_first.contains(&e.event_id))
        .count();
    let lost_on_second = after
        .iter()
        .filter(|e| !on_second.contains(&e.event_id))
        .count();
    let without_event = without_event(&mut conn);
    eprintln!(
        "events: {} committed, {} on the first broker ({lost_on_first} missing), {} published \
         after the restart ({lost_on_second} missing), {without_event} payments, refunds or \
         cancels without event",
        events.len(),
        on_first.len(),
        after.len()
    );
    let lost = lost_on_first + lost_on_second + without_event;
    drop(engine);
    Row {
        drill: "3 broker outage",
        load: spec.describe(),
        faults: format!("broker killed for {}, back empty", secs(outage)),
        books,
        events_lost: Some(lost),
        recovery: format!("outbox drained {} after the broker returned", secs(drained)),
        notes: format!(
            "{} payments acknowledged while the broker was down (p99 {}); backlog peaked at {}; \
             {} events reached the first broker, {} the restarted one; {}",
            paid_during,
            millis(quantile(during.iter().copied(), 0.99)),
            backlog.iter().max().copied().unwrap_or(0),
            on_first.len(),
            after.len(),
            outcome.lifecycle_summary()
        ),
    }
    .report_and_assert();
}
