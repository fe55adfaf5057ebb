//! Issue 15's drill 4, a misconfiguration: two engines of one deployment each writing through a
//! different node of the cluster (their `DATABASE_URL` names a node instead of HAProxy), so the
//! cluster certifies two writers at once (multi-primary). Under the load the first engine is
//! paused past its lease, again and again, so its shards move to the engine on the other node
//! and back: the case where a lease read on one node fences nothing written on another (no
//! write-set conflict). What keeps the money right then is that every money decision writes the
//! row it depends on (a buyer's balance at its version, an order in its state, an idempotency
//! key), so of two conflicting commits the cluster refuses one (1213), the coordinator runs that
//! batch again once and its fence refuses what the winner invalidated. The books, the event order
//! and the delivery are checked; the share of batches that met a conflict is reported.

use std::time::Duration;

use super::super::cluster::{
    Engines, TTL, cluster_env, describe, errors, fund_through, scrape, versions_backwards,
};
use super::super::crash::drill_topic;
use super::super::load::{Load, LoadSpec, quantile};
use super::super::router::Router;
use super::super::{LIFECYCLE_PERCENT, Row, buyers, check_books, events_lost, scaled, secs};
use super::{CHECKOUT_TIMEOUT, Galera, REQUEST_TIMEOUT};
use crate::helpers::TestDatabase;
use crate::kafka::{EngineProcess, shared_brokers};

/// The commits of one engine: batches run, and those that met a conflict and were run again.
async fn commits(engine: &EngineProcess) -> (f64, f64) {
    let committed = scrape(
        engine,
        "payment_engine_coordinator_commits_total{outcome=\"committed\"}",
    )
    .await;
    let failed = scrape(
        engine,
        "payment_engine_coordinator_commits_total{outcome=\"failed\"}",
    )
    .await;
    let conflicts = scrape(engine, "payment_engine_coordinator_conflicts_total").await;
    (committed + failed, conflicts)
}

#[actix_web::test]
async fn galera_4_two_engines_writing_through_two_nodes_keep_the_money_right() {
    let galera = Galera::up();
    let db = TestDatabase::on(&galera.url());
    let (brokers, topic) = (shared_brokers(), drill_topic());
    let mut env = cluster_env(&brokers, &topic);
    env.extend([
        (
            "REQUEST_TIMEOUT_MS",
            REQUEST_TIMEOUT.as_millis().to_string(),
        ),
        (
            "DB_CHECKOUT_TIMEOUT_MS",
            CHECKOUT_TIMEOUT.as_millis().to_string(),
        ),
    ]);
    let through = |node| vec![("DATABASE_URL", galera.node_url(node, db.name()))];
    let engines = Engines::start_each(&db, env, vec![through(1), through(2)]).await;
    let router = Router::start(&engines.ports);
    router.wait_for(&[1, 2], Duration::from_secs(10)).await;
    let spec = LoadSpec {
        clients: 30,
        buyers: buyers(7_001, 120),
        pay_percent: 40,
        lifecycle_percent: LIFECYCLE_PERCENT,
        timeout: Duration::from_secs(15),
        follow_readiness: false,
    };
    fund_through(&router, &spec.buyers).await;

    let load = Load::start(&router.address, &spec);
    let pauses = scaled(2, 6);
    for _ in 0..pauses {
        actix_web::rt::time::sleep(Duration::from_millis(2_000)).await;
        engines.signal(0, "STOP");
        actix_web::rt::time::sleep(TTL * 2).await;
        engines.signal(0, "CONT");
    }
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let outcome = load.stop().await;

    let (batches_1, conflicts_1) = commits(engines.engine(0)).await;
    let (batches_2, conflicts_2) = commits(engines.engine(1)).await;
    let (batches, conflicts) = (batches_1 + batches_2, conflicts_1 + conflicts_2);
    let lost_leases = scrape(engines.engine(0), "payment_engine_cluster_lease_lost_total").await;
    outcome.assert_lifecycle_ran();
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    let (backwards, duplicates) = versions_backwards(&db, &brokers, &topic).await;
    let failed = errors(&outcome);
    assert_eq!(backwards, 0, "a buyer's event versions went backwards");
    assert!(lost_leases > 0.0, "the paused engine lost no lease");
    Row {
        drill: "G4 two engines writing through two Galera nodes",
        load: format!("{} through HAProxy, 2 engines", spec.describe()),
        faults: format!(
            "engine-1 on node 1, engine-2 on node 2 (multi-primary); engine-1 SIGSTOPped \
             {pauses} times for {} (lease TTL {})",
            secs(TTL * 2),
            secs(TTL)
        ),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "{conflicts} of {batches} batches ({:.2} %) met a certification conflict and ran \
             again; {lost_leases} leases lost by the paused engine",
            100.0 * conflicts / batches.max(1.0)
        ),
        notes: format!(
            "{} answers; errors {}; p99 {}; events: {duplicates} redelivered, {backwards} out \
             of order; {}",
            outcome.samples.len(),
            describe(&failed),
            secs(quantile(outcome.samples.iter(), 0.99)),
            outcome.lifecycle_summary()
        ),
    }
    .report_and_assert();
}
