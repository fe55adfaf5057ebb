//! Hand-backs: the engine the router sends a shard to gets it back from its holder, gradually
//! and only after the minimum hold time; every request meanwhile is answered.

use std::time::{Duration, Instant};

use super::{counter, owner_of};
use crate::helpers::{assert_buyer_invariants, ledger, scalar, spawn_app_on_with, spawn_app_with};

fn fast_leases(settings: &mut payment_engine::config::Settings) {
    settings.cluster.lease_renew = Duration::from_millis(100);
    settings.cluster.lease_ttl = Duration::from_millis(2_000);
    settings.cluster.min_hold = Duration::from_millis(300);
}

#[actix_web::test]
async fn a_shard_the_router_sends_elsewhere_is_handed_back_and_then_served_there_directly() {
    let a = spawn_app_with(fast_leases).await;
    let b = spawn_app_on_with(&a.db, fast_leases).await;
    a.charge_ok(5, 1).await; // `a` holds buyer 5's shard
    let mut conn = a.db_conn();
    let a_token = owner_of(&mut conn, 5).expect("held");

    // From now on "the router" sends buyer 5 to `b`.
    let started = Instant::now();
    let mut charges = 1;
    while owner_of(&mut conn, 5) == Some(a_token) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "`a` never handed the shard back"
        );
        let response = b.charge(5, 1).await;
        assert_eq!(response.status(), 200, "{}", response.text);
        charges += 1;
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // Served by `b` itself from here on: nothing more is forwarded.
    let forwarded_before = counter(
        &b,
        "payment_engine_cluster_forwarded_requests_total{outcome=\"answered\"}",
    )
    .await;
    for _ in 0..20 {
        let response = b.charge(5, 1).await;
        assert_eq!(response.status(), 200, "{}", response.text);
        charges += 1;
    }
    let forwarded_after = counter(
        &b,
        "payment_engine_cluster_forwarded_requests_total{outcome=\"answered\"}",
    )
    .await;
    assert_eq!(
        forwarded_after, forwarded_before,
        "served locally after the hand-back"
    );
    assert!(owner_of(&mut conn, 5).is_some_and(|token| token != a_token));
    assert_eq!(
        counter(&a, "payment_engine_cluster_lease_handbacks_total").await,
        1.0
    );
    assert_eq!(ledger(&mut conn, 5).len(), charges);
    assert_buyer_invariants(&mut conn, 5);
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT COUNT(*) AS n FROM shard_leases WHERE owner_token IS NOT NULL"
        ),
        1,
        "only the one shard was ever claimed"
    );
}
