//! `GET /metrics`: the values move with what the engine does — a burst on one buyer shows up as
//! queue wait and the deepest mailbox, 503s as rejections by reason, events as delivered with a
//! delivery latency — and labels stay bounded (route templates, never ids).

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use futures::future::join_all;

use serde_json::json;

use crate::helpers::{TestApp, int, spawn_app, spawn_app_with};
use crate::kafka::{EVENT_DEADLINE, shared_brokers, use_kafka, wait_until_all_published};

/// The scraped exposition.
pub(crate) struct Scrape(String);

impl Scrape {
    pub(crate) async fn of(app: &TestApp) -> Scrape {
        let response = app.get("/metrics").await;
        assert_eq!(response.status(), 200);
        assert!(
            response
                .content_type()
                .starts_with("application/openmetrics-text"),
            "content type {}",
            response.content_type()
        );
        Scrape(response.text.clone())
    }

    /// The value of the sample `series` (name with its labels exactly as exposed).
    pub(crate) fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?.split(' ').next()?.parse().ok()
        })
    }

    pub(crate) fn get(&self, series: &str) -> f64 {
        self.value(series)
            .unwrap_or_else(|| panic!("no sample {series} in\n{}", self.0))
    }
}

/// Blocks every read of the buyers' balances (the first request of a buyer loads its state), so
/// requests pile up in one buyer's mailbox until the lock is released.
struct BalancesLocked(diesel::MysqlConnection);

impl BalancesLocked {
    fn take(app: &TestApp) -> BalancesLocked {
        let mut conn = app.db_conn();
        diesel::sql_query("LOCK TABLES balances WRITE")
            .execute(&mut conn)
            .unwrap();
        BalancesLocked(conn)
    }

    fn release(mut self) {
        diesel::sql_query("UNLOCK TABLES")
            .execute(&mut self.0)
            .unwrap();
    }
}

async fn wait_for(app: &TestApp, series: &str, at_least: f64) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = Scrape::of(app).await;
        if scrape.value(series).is_some_and(|value| value >= at_least) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {at_least}: {:?}",
            scrape.value(series)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A batch rolled back whole by a conflict (here a lock wait timeout: another transaction holds
/// the buyer's balance row past `DB_LOCK_WAIT_TIMEOUT_S`; on Galera, a certification failure at
/// COMMIT) is run once more, and commits once the lock is gone: the charge answers 200, not 503,
/// and the conflict is counted.
#[tokio::test]
async fn a_batch_rolled_back_by_a_conflict_is_run_once_more_and_counted() {
    let app = spawn_app_with(|s| s.database.lock_wait_timeout = Duration::from_secs(1)).await;
    app.charge_ok(1, 10).await;
    let mut holder = app.db_conn();
    holder
        .batch_execute("BEGIN; SELECT * FROM balances WHERE buyer_id = 1 FOR UPDATE")
        .unwrap();
    let release = async {
        // Past the first attempt's lock wait, within the second's.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        holder.batch_execute("COMMIT").unwrap();
    };
    let (response, ()) = tokio::join!(app.charge(1, 5), release);
    let body = response.ok();
    assert_eq!((int(&body, "balance"), int(&body, "version")), (15, 2));

    let after = Scrape::of(&app).await;
    assert_eq!(after.get("payment_engine_coordinator_conflicts_total"), 1.0);
    assert_eq!(
        after.get("payment_engine_coordinator_commits_total{outcome=\"failed\"}"),
        0.0
    );
}

#[tokio::test]
async fn a_burst_on_one_buyer_shows_queue_wait_and_the_deepest_mailbox() {
    let app = spawn_app().await;
    let idle = Scrape::of(&app).await;
    assert_eq!(idle.get("payment_engine_buyer_mailbox_depth_max"), 0.0);
    assert_eq!(idle.get("payment_engine_buyer_actors"), 0.0);

    let lock = BalancesLocked::take(&app);
    let burst = 20;
    let requests = join_all((0..burst).map(|_| app.charge(42, 10)));
    // The first request holds the mailbox while it loads the buyer; the other 19 queue.
    let observe = async {
        let busy = wait_for(&app, "payment_engine_buyer_mailbox_depth_max", 19.0).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        lock.release();
        busy
    };
    let (responses, busy) = tokio::join!(requests, observe);
    assert_eq!(
        busy.get("payment_engine_actor_mailbox_depth{actor=\"buyer\"}"),
        19.0
    );
    assert_eq!(busy.get("payment_engine_buyer_actors"), 1.0);
    for response in responses {
        response.ok();
    }

    let after = Scrape::of(&app).await;
    assert_eq!(
        after.get(
            "payment_engine_http_requests_total{route=\"/points/{buyer_id}\",method=\"POST\",status=\"200\"}"
        ),
        f64::from(burst)
    );
    assert_eq!(after.get("payment_engine_buyer_mailbox_depth_max"), 0.0);
    assert_eq!(
        after.get("payment_engine_actor_mailbox_depth{actor=\"buyer\"}"),
        0.0
    );
    assert_eq!(
        after.get("payment_engine_actor_queue_wait_seconds_count{actor=\"buyer\"}"),
        f64::from(burst)
    );
    // 19 requests waited at least the 100 ms the lock was held after they queued.
    let waited = after.get("payment_engine_actor_queue_wait_seconds_sum{actor=\"buyer\"}");
    assert!(waited >= 19.0 * 0.1, "queue wait sum {waited}");
    assert_eq!(
        after.get("payment_engine_actor_messages_total{actor=\"buyer\",outcome=\"ok\"}"),
        f64::from(burst)
    );
    assert_eq!(
        after.get("payment_engine_actor_messages_total{actor=\"coordinator\",outcome=\"ok\"}"),
        f64::from(burst)
    );
    assert_eq!(
        after.get("payment_engine_coordinator_batch_writes_sum"),
        f64::from(burst)
    );
    assert!(after.get("payment_engine_coordinator_commits_total{outcome=\"committed\"}") >= 1.0);
    assert_eq!(
        after.get("payment_engine_coordinator_commits_total{outcome=\"failed\"}"),
        0.0
    );
    assert_eq!(after.get("payment_engine_buyer_actors_started_total"), 1.0);
    assert!(after.get("process_resident_memory_bytes") > 1_000_000.0);
}

#[tokio::test]
async fn a_full_mailbox_is_counted_as_a_rejection_by_reason() {
    let app = spawn_app_with(|s| s.buyers.mailbox_capacity = 4).await;
    let lock = BalancesLocked::take(&app);
    let first = join_all((0..4).map(|_| app.charge(7, 10)));
    let more = async {
        // The actor holds one command (loading its state) and three wait: a mailbox of 4 takes
        // one more, the other five bounce at once.
        wait_for(
            &app,
            "payment_engine_actor_mailbox_depth{actor=\"buyer\"}",
            3.0,
        )
        .await;
        join_all((0..6).map(|_| app.charge(7, 10))).await
    };
    let release = async {
        wait_for(
            &app,
            "payment_engine_rejections_total{reason=\"buyer_mailbox_full\"}",
            5.0,
        )
        .await;
        lock.release();
    };
    let (first, more, ()) = tokio::join!(first, more, release);
    for response in first {
        response.ok();
    }
    let refused = more.iter().filter(|r| r.status() == 503).count();
    assert_eq!(refused, 5, "one more fits in a mailbox of 4, five bounce");
    let scrape = Scrape::of(&app).await;
    assert_eq!(
        scrape.get("payment_engine_rejections_total{reason=\"buyer_mailbox_full\"}"),
        refused as f64
    );
    assert_eq!(
        scrape.get(
            "payment_engine_http_requests_total{route=\"/points/{buyer_id}\",method=\"POST\",status=\"503\"}"
        ),
        refused as f64
    );
    assert_eq!(
        scrape.get("payment_engine_rejections_total{reason=\"database_unavailable\"}"),
        0.0
    );
}

#[tokio::test]
async fn labels_are_route_templates_never_ids_or_raw_paths() {
    let app = spawn_app().await;
    app.charge(123_456, 5).await.ok();
    assert_eq!(app.get("/points/history/987654").await.status(), 200);
    assert_eq!(app.get("/no/such/route/55").await.status(), 404);
    app.charge_raw("abc", "point=1", None).await;
    let scrape = Scrape::of(&app).await;
    assert_eq!(
        scrape.get(
            "payment_engine_http_requests_total{route=\"/points/history/{buyer_id}\",method=\"GET\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        scrape.get(
            "payment_engine_http_requests_total{route=\"/points/{buyer_id}\",method=\"POST\",status=\"400\"}"
        ),
        1.0
    );
    assert_eq!(
        scrape.get(
            "payment_engine_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );
    for id in ["123456", "987654", "/no/such", "abc"] {
        assert!(!scrape.0.contains(id), "{id} leaked into a label");
    }
    let count = scrape.get(
        "payment_engine_http_request_duration_seconds_count{route=\"/points/{buyer_id}\",method=\"POST\"}",
    );
    assert_eq!(count, 2.0);
}

#[tokio::test]
async fn payments_refunds_and_cancels_count_under_their_templates_from_zero() {
    let app = spawn_app().await;
    let series = [
        "payment_engine_http_requests_total{route=\"/orders/payment/kafka\",method=\"POST\",status=\"200\"}",
        "payment_engine_http_requests_total{route=\"/payments/{payment_id}/refunds\",method=\"POST\",status=\"201\"}",
        "payment_engine_http_requests_total{route=\"/orders/{order_id}/cancel\",method=\"POST\",status=\"200\"}",
    ];
    let before = Scrape::of(&app).await;
    for s in series {
        assert_eq!(before.get(s), 0.0, "{s} before any request");
    }
    app.charge_ok(71, 10_000).await;
    let paid = app.new_order(71, 1_000).await;
    let payment = int(&app.pay(71, paid).await.ok(), "paymentId");
    app.refund(payment, json!({"buyerId": 71, "amount": 100}), None)
        .await
        .expect(201);
    let pending = app.new_order(71, 500).await;
    app.cancel(71, pending).await.ok();
    let after = Scrape::of(&app).await;
    for s in series {
        assert_eq!(after.get(s), 1.0, "{s} after one request");
    }
}

#[tokio::test]
async fn delivered_events_are_counted_with_their_latency_and_the_backlog_empties() {
    let brokers = shared_brokers();
    let app = spawn_app_with(|s| use_kafka(s, &brokers)).await;
    let mut orders = Vec::new();
    for buyer in [61, 62] {
        app.charge_ok(buyer, 100_000).await;
        for _ in 0..5 {
            orders.push((buyer, app.new_order(buyer, 1_000).await));
        }
    }
    for response in join_all(orders.iter().map(|&(buyer, order)| app.pay(buyer, order))).await {
        response.ok();
    }
    wait_until_all_published(&app.db, orders.len(), EVENT_DEADLINE).await;
    let scrape = wait_for(
        &app,
        "payment_engine_publisher_events_total{stage=\"delivered\"}",
        10.0,
    )
    .await;
    assert_eq!(
        scrape.get("payment_engine_publisher_events_total{stage=\"delivered\"}"),
        10.0
    );
    assert_eq!(
        scrape.get("payment_engine_publisher_events_total{stage=\"produced\"}"),
        10.0
    );
    assert_eq!(
        scrape.get("payment_engine_publisher_events_total{stage=\"dead\"}"),
        0.0
    );
    assert_eq!(
        scrape.get("payment_engine_publisher_delivery_latency_seconds_count"),
        10.0
    );
    assert!(scrape.get("payment_engine_publisher_delivery_latency_seconds_sum") > 0.0);
    assert_eq!(scrape.get("payment_engine_outbox_backlog_events"), 0.0);
    // Hand-offs are delivered live, or (before the first relay pass finds the outbox empty)
    // left to the relay: either way the publisher handled them.
    let handed_off = ["ok", "failed"]
        .map(|outcome| {
            scrape.get(&format!(
                "payment_engine_actor_messages_total{{actor=\"publisher\",outcome=\"{outcome}\"}}"
            ))
        })
        .iter()
        .sum::<f64>();
    assert!(handed_off >= 1.0, "hand-offs handled: {handed_off}");
}

#[tokio::test]
async fn the_backlog_counts_events_waiting_for_a_broker() {
    let app = spawn_app_with(|s| use_kafka(s, "")).await;
    app.charge_ok(71, 10_000).await;
    for _ in 0..3 {
        let order = app.new_order(71, 100).await;
        app.pay(71, order).await.ok();
    }
    let scrape = Scrape::of(&app).await;
    assert_eq!(scrape.get("payment_engine_outbox_backlog_events"), 3.0);
    assert_eq!(
        scrape.get("payment_engine_publisher_events_total{stage=\"produced\"}"),
        0.0
    );
}
