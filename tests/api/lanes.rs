//! Commit lanes (`COMMIT_LANES`): several group commits in flight at once, each for a fixed share
//! of the buyers. Every lane commits, the books stay exact, and one buyer's writes still commit
//! in order (gapless versions, each answer's version its ledger row's).

use futures::future::join_all;

use crate::helpers::{
    TestDatabase, assert_all_invariants, assert_buyer_invariants, int, ledger, spawn_app_with,
    startup_error, test_settings,
};

const LANES: usize = 4;

fn lane_sample(metrics: &str, series: &str, lane: usize) -> f64 {
    let name = format!("payment_engine_coordinator_lane_{series}_total{{lane=\"{lane}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&name)?.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn with_four_lanes_every_lane_commits_and_each_buyer_keeps_its_order() {
    let app = spawn_app_with(|settings| settings.coordinator.commit_lanes = LANES).await;
    // Buyers 1..=32: eight of each lane (shard modulo 4).
    let buyers: Vec<i64> = (1..=32).collect();
    let charges = buyers
        .iter()
        .flat_map(|&buyer| (1..=10).map(move |amount| (buyer, amount)));
    let responses = join_all(charges.map(|(buyer, amount)| app.charge(buyer, amount))).await;

    let mut conn = app.db_conn();
    for (buyer, response) in buyers
        .iter()
        .flat_map(|&buyer| std::iter::repeat_n(buyer, 10))
        .zip(&responses)
    {
        let body = response.ok();
        let version = int(&body, "version");
        let rows = ledger(&mut conn, buyer);
        let row = &rows[(version - 1) as usize];
        assert_eq!(
            (row.amount, row.balance_after),
            (int(&body, "amount"), int(&body, "balance")),
            "buyer {buyer}: the ledger row of {body}"
        );
    }
    for &buyer in &buyers {
        assert_eq!(app.balance_of(buyer).await, (55, 10), "buyer {buyer}");
        assert_buyer_invariants(&mut conn, buyer);
    }
    // Payments through the lanes too: an order per buyer, paid.
    let orders = join_all(buyers.iter().map(|&buyer| app.new_order(buyer, 5))).await;
    let paid = join_all(buyers.iter().zip(&orders).map(|(&b, &o)| app.pay(b, o))).await;
    for response in &paid {
        response.ok();
    }
    assert_all_invariants(&mut conn);

    let metrics = app.get("/metrics").await.text;
    let mut writes = 0.0;
    for lane in 0..LANES {
        let batches = lane_sample(&metrics, "batches", lane);
        assert!(batches > 0.0, "lane {lane} committed nothing:\n{metrics}");
        writes += lane_sample(&metrics, "writes", lane);
    }
    // 320 charges, 32 order creations, 32 payments.
    assert_eq!(writes, 384.0, "every write in exactly one lane");
    assert_eq!(
        lane_sample(&metrics, "batches", LANES),
        0.0,
        "no lane beyond COMMIT_LANES"
    );
}

#[actix_web::test]
async fn more_lanes_than_the_pool_can_serve_is_refused_at_start() {
    let db = TestDatabase::new();
    let mut settings = test_settings(&db);
    settings.database.pool_size = 4;
    settings.coordinator.commit_lanes = 4;
    let message = startup_error(settings, "4 lanes on a pool of 4");
    assert!(
        message.contains("COMMIT_LANES (4) must be below DB_POOL_SIZE (4)"),
        "{message}"
    );
}
