//! Drill 2: the database goes away for 10 s under load (a TCP proxy between the engine and
//! MariaDB closes every connection and refuses new ones), then comes back. Meanwhile requests
//! fail fast with 503 and Retry-After, `/health/ready` says not ready; afterwards the engine
//! recovers by itself, every buyer (those whose writes failed included) writes again from its
//! true state, and nothing acknowledged is lost.

use std::time::{Duration, Instant};

use super::crash::{drill_topic, engine_env};
use super::load::{Ack, Load, LoadSpec, quantile};
use super::proxy::TcpProxy;
use super::{LIFECYCLE_PERCENT, Row, buyers, check_books, events_lost, fund, millis, scaled, secs};
use crate::helpers::{TestDatabase, server_url};
use crate::kafka::{EngineProcess, shared_brokers};

/// The engine's bound on a request waiting for its commit, in this drill.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request waits for a database connection, in this drill.
const CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);
const OUTAGE: Duration = Duration::from_secs(10);

/// `host:port` of the MariaDB server the tests use.
pub fn database_address() -> String {
    let url = server_url();
    let rest = url.split("://").nth(1).unwrap_or(&url);
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    host_port.split('/').next().unwrap_or(host_port).to_string()
}

#[actix_web::test]
async fn drill_2_database_outage_fails_fast_then_recovers_losing_nothing() {
    let db = TestDatabase::new();
    let proxy = TcpProxy::start(&database_address());
    let brokers = shared_brokers();
    let topic = drill_topic();
    let mut env = engine_env(&brokers, &topic);
    let through_proxy = db
        .url()
        .replace(&database_address(), &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(
        through_proxy,
        db.url(),
        "the database URL must go through the proxy"
    );
    env.extend([
        ("DATABASE_URL", through_proxy),
        (
            "REQUEST_TIMEOUT_MS",
            REQUEST_TIMEOUT.as_millis().to_string(),
        ),
        (
            "DB_CHECKOUT_TIMEOUT_MS",
            CHECKOUT_TIMEOUT.as_millis().to_string(),
        ),
    ]);
    let engine = EngineProcess::serve(&db, &env).await;
    let spec = LoadSpec {
        clients: 100,
        buyers: buyers(2_001, 50),
        pay_percent: 50,
        lifecycle_percent: LIFECYCLE_PERCENT,
        timeout: Duration::from_secs(30),
        follow_readiness: false,
    };
    fund(&engine, &spec.buyers, 10_000_000).await;
    let ready_client = reqwest::Client::new();
    let ready = |client: reqwest::Client, url: String| async move {
        client
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let ready_url = engine.url("/health/ready");

    let load = Load::start(&engine.address, &spec);
    actix_web::rt::time::sleep(scaled(Duration::from_secs(2), Duration::from_secs(10))).await;
    let cut_at = load.elapsed();
    proxy.cut();
    let cut = Instant::now();
    let mut not_ready_after = None;
    while cut.elapsed() < OUTAGE {
        if not_ready_after.is_none() && ready(ready_client.clone(), ready_url.clone()).await == 503
        {
            not_ready_after = Some(cut.elapsed());
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let restore_at = load.elapsed();
    proxy.restore();
    let back = Instant::now();
    let mut ready_after = None;
    while back.elapsed() < Duration::from_secs(30) {
        if ready(ready_client.clone(), ready_url.clone()).await == 200 {
            ready_after = Some(back.elapsed());
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    actix_web::rt::time::sleep(scaled(Duration::from_secs(4), Duration::from_secs(15))).await;
    let mut outcome = load.stop().await;

    // Every buyer writes again, from its true state (checked against the ledger below).
    for &buyer in &spec.buyers {
        let body = engine.charge(buyer, 7).await.ok();
        outcome.acks.push(Ack::Charge {
            buyer,
            amount: 7,
            balance: body["balance"].as_i64().unwrap(),
            version: body["version"].as_i64().unwrap(),
        });
    }

    // While it was down: 503 with Retry-After as problem+json, within the configured bound.
    let during: Vec<_> = outcome
        .between(cut_at + Duration::from_millis(500), restore_at)
        .collect();
    assert!(
        during.len() > 100,
        "only {} requests were sent during the outage",
        during.len()
    );
    let bound = REQUEST_TIMEOUT + Duration::from_secs(1);
    let mut wrong: Vec<String> = during
        .iter()
        .filter(|s| {
            !(s.status == 200
                || s.status == 201
                || s.refusal_expected
                || s.status == 503 && s.retry_after && s.problem_json)
                || s.latency > bound
        })
        .map(|s| format!("{s:?}"))
        .collect();
    wrong.truncate(5);
    assert!(
        wrong.is_empty(),
        "during the outage every failure must be a quick 503 with Retry-After: {wrong:?}"
    );
    let shed: Vec<_> = during.iter().filter(|s| s.status == 503).copied().collect();
    let shed_p50 = quantile(shed.iter().copied(), 0.5);
    assert!(
        shed_p50 < Duration::from_millis(100),
        "with the database known down, requests must fail fast: median 503 took {shed_p50:?}"
    );
    let mut refused: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for sample in during.iter().filter(|s| s.status == 503) {
        *refused
            .entry(sample.code.as_deref().unwrap_or("?"))
            .or_default() += 1;
    }
    let not_ready_after = not_ready_after.expect("/health/ready never said not ready");
    assert!(
        not_ready_after < Duration::from_secs(5),
        "/health/ready took {not_ready_after:?} to say not ready"
    );
    let ready_after = ready_after.expect("/health/ready did not recover within 30 s");
    // The first write acknowledged after the database came back.
    let first_write = outcome
        .samples
        .iter()
        .filter(|s| s.sent_at >= restore_at && s.status == 200)
        .map(|s| s.sent_at + s.latency - restore_at)
        .min()
        .expect("no write succeeded after the database came back");
    assert!(
        first_write < Duration::from_secs(10) && ready_after < Duration::from_secs(10),
        "recovery took {first_write:?} (writes), {ready_after:?} (ready)"
    );
    let after: Vec<_> = outcome
        .between(
            restore_at + first_write + Duration::from_secs(1),
            outcome.duration,
        )
        .collect();
    let failing_after = after
        .iter()
        .filter(|s| s.status >= 500 || s.status == 0)
        .count();
    assert_eq!(
        failing_after,
        0,
        "answers a second after recovery: {:?}",
        outcome.statuses()
    );

    outcome.assert_lifecycle_ran();
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    drop(engine);
    Row {
        drill: "2 database outage",
        load: spec.describe(),
        faults: format!("database cut off for {}", secs(OUTAGE)),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "first write {} after the database returned; ready after {}",
            millis(first_write),
            millis(ready_after)
        ),
        notes: format!(
            "during the outage 503s {refused:?}, p50 {}, p99 {} (bound {}); not ready after {}; \
             {}",
            millis(shed_p50),
            millis(quantile(during.iter().copied(), 0.99)),
            millis(bound),
            millis(not_ready_after),
            outcome.lifecycle_summary()
        ),
    }
    .report_and_assert();
}
