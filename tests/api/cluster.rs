//! Several engines on one database (issue 13): one owner per buyer by shard leases, fenced in
//! the commit; misrouted requests forwarded one hop; leases given up at a graceful stop and
//! handed back to the engine the router prefers.

mod fence;
mod handback;

use std::collections::HashSet;
use std::time::Duration;

use diesel::prelude::*;
use futures::future::join_all;
use serde_json::Value;

use crate::helpers::{
    TestApp, TestDatabase, assert_buyer_invariants, int, ledger, scalar, spawn_app, spawn_app_on,
    spawn_app_on_with, startup_error,
};

/// The shard of `buyer` with the default shard count.
pub fn shard_of(buyer: i64) -> i64 {
    buyer % 1024
}

/// The owner token of `buyer`'s shard, if held.
pub fn owner_of(conn: &mut MysqlConnection, buyer: i64) -> Option<i64> {
    let shard = shard_of(buyer);
    let held = scalar(
        conn,
        &format!(
            "SELECT COUNT(*) AS n FROM shard_leases WHERE shard = {shard} AND owner_token IS NOT NULL"
        ),
    );
    (held == 1).then(|| {
        scalar(
            conn,
            &format!("SELECT owner_token AS n FROM shard_leases WHERE shard = {shard}"),
        )
    })
}

/// A counter's value in the engine's exposition (0 if absent).
pub async fn counter(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").await.text;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn two_engines_alternating_on_one_buyer_answer_every_request_with_contiguous_versions() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    let n: i64 = 60;
    // One at a time, alternating: today's starvation pattern.
    for amount in 1..=n {
        let engine = if amount % 2 == 0 { &a } else { &b };
        let response = engine.charge(1, amount).await;
        assert_eq!(response.status(), 200, "charge {amount}: {}", response.text);
    }
    // And all at once, both engines.
    let responses = join_all((n + 1..=3 * n).map(|amount| {
        let engine = if amount % 2 == 0 { &a } else { &b };
        async move { (amount, engine.charge(1, amount).await) }
    }))
    .await;
    let mut versions = HashSet::new();
    for (amount, response) in &responses {
        assert_eq!(response.status(), 200, "charge {amount}: {}", response.text);
        let body: Value = response.json();
        assert!(versions.insert(int(&body, "version")));
    }
    let mut conn = a.db_conn();
    let rows = ledger(&mut conn, 1);
    assert_eq!(rows.len() as i64, 3 * n, "every charge once");
    assert_eq!(
        rows.iter().map(|r| r.amount).sum::<i64>(),
        (1..=3 * n).sum::<i64>()
    );
    assert_buyer_invariants(&mut conn, 1);
    let conflicts = counter(
        &a,
        "payment_engine_rejections_total{reason=\"write_conflict\"}",
    )
    .await
        + counter(
            &b,
            "payment_engine_rejections_total{reason=\"write_conflict\"}",
        )
        .await;
    assert_eq!(conflicts, 0.0, "no write_conflict on either engine");
    let forwarded = |app| async move {
        counter(
            app,
            "payment_engine_cluster_forwarded_requests_total{outcome=\"answered\"}",
        )
        .await
    };
    assert_eq!(
        forwarded(&a).await + forwarded(&b).await,
        (3 * n / 2) as f64,
        "the non-owner forwarded each of its requests"
    );
}

#[actix_web::test]
async fn a_request_forwarded_to_an_engine_that_does_not_own_the_shard_is_answered_not_owner() {
    let a = spawn_app().await;
    let b = spawn_app_on(&a.db).await;
    a.charge_ok(7, 10).await;
    let response = b
        .client
        .post(b.url("/points/7?point=5"))
        .header("x-payment-engine-hop", "engine-elsewhere")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["x-payment-engine-not-owner"],
        "true",
        "marked for the forwarding engine"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_owner");
    assert_eq!(ledger(&mut a.db_conn(), 7).len(), 1, "nothing moved");
}

#[actix_web::test]
async fn a_gracefully_stopped_engine_gives_its_shards_up_and_the_next_one_serves_at_once() {
    let db = TestDatabase::new();
    {
        let a = spawn_app_on(&db).await;
        a.charge_ok(1, 10).await;
        a.charge_ok(2, 10).await;
        assert!(owner_of(&mut db.connect(), 1).is_some());
    } // stopped gracefully here
    let mut conn = db.connect();
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT COUNT(*) AS n FROM shard_leases WHERE owner_token IS NOT NULL"
        ),
        0,
        "every lease released"
    );
    // Another engine (another address, another id) serves the same buyers at once.
    let b = spawn_app_on(&db).await;
    let started = std::time::Instant::now();
    let body = b.charge_ok(1, 5).await;
    assert_eq!(int(&body, "version"), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT epoch AS n FROM shard_leases WHERE shard = 1"
        ),
        2,
        "claimed twice: by each engine once"
    );
}

#[actix_web::test]
async fn the_shard_count_of_a_database_never_changes() {
    let db = TestDatabase::new();
    let _first = spawn_app_on(&db).await;
    let settings = {
        let mut settings = crate::helpers::test_settings(&db);
        settings.cluster.shards = 512;
        settings
    };
    let message = startup_error(settings, "an engine with another shard count");
    assert!(
        message.contains("1024 shards") && message.contains("SHARDS=1024"),
        "{message}"
    );
    let _ = spawn_app_on_with(&db, |_| {}).await; // the right count still starts
}
