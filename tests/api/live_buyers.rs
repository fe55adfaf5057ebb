//! `MAX_LIVE_BUYERS`: how many buyer actors stay in memory. Past the limit the least recently
//! used idle actor is passivated for each new one; a buyer with a write in flight never is, and a
//! buyer passivated this way resumes from the database.

use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::helpers::{BalanceLock, TestApp, int, new_key, scalar, spawn_app_with};
use crate::metrics::Scrape;

const LIVE: &str = "payment_engine_buyer_actors";
const EVICTED: &str = "payment_engine_buyer_actors_evicted_total";
const STARTED: &str = "payment_engine_buyer_actors_started_total";

/// Actors over the limit that may remain while the last evictions are delivered.
const SLACK: f64 = 2.0;

async fn spawn_limited(max_live_buyers: usize) -> TestApp {
    spawn_app_with(|s| {
        s.buyers.max_live_buyers = max_live_buyers;
        // A write held on a locked row must outlast the test's hold, not fail at 5 s.
        s.database.lock_wait_timeout = Duration::from_secs(30);
    })
    .await
}

/// Scrapes until `accept` holds for the scrape (at most 10 s).
async fn scrape_until(app: &TestApp, what: &str, accept: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = Scrape::of(app).await;
        if accept(&scrape) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "never: {what} (live {}, evicted {})",
            scrape.get(LIVE),
            scrape.get(EVICTED)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn charging_many_distinct_buyers_keeps_the_live_actors_within_the_limit() {
    let app = spawn_limited(10).await;
    let scrape = Scrape::of(&app).await;
    assert_eq!(scrape.get("payment_engine_buyer_actors_limit"), 10.0);
    assert_eq!(scrape.get(EVICTED), 0.0);

    for buyers in (1..=100).collect::<Vec<i64>>().chunks(4) {
        for response in join_all(buyers.iter().map(|&buyer| app.charge(buyer, buyer))).await {
            response.ok();
        }
        let live = Scrape::of(&app).await.get(LIVE);
        assert!(live <= 10.0 + 4.0 + SLACK, "{live} live actors, limit 10");
    }

    let settled = scrape_until(&app, "live actors back within the limit", |s| {
        s.get(LIVE) <= 10.0
    })
    .await;
    assert!(settled.get(EVICTED) >= 90.0, "{}", settled.get(EVICTED));
    assert_eq!(settled.get(STARTED), 100.0);
    let mut conn = app.db_conn();
    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) AS n FROM balances"), 100);
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT COUNT(*) AS n FROM balances WHERE balance = buyer_id AND version = 1"
        ),
        100
    );
}

#[tokio::test]
async fn a_buyer_with_a_write_in_flight_is_not_evicted() {
    let app = spawn_limited(1).await;
    app.charge_ok(1, 100).await;
    let lock = BalanceLock::acquire(&app.db, 1);
    let held = app.charge(1, 10);
    let crowd = async {
        lock.wait_for_a_waiter().await;
        // Buyer 1's write waits on the lock (and so does every write behind its batch): no
        // actor is idle, so the new buyers are served over the limit, and none is evicted.
        let newcomers = join_all((2..=3).map(|buyer| app.charge(buyer, 5)));
        let observe = async {
            let over = scrape_until(&app, "three live actors", |s| s.get(LIVE) >= 3.0).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let still = Scrape::of(&app).await;
            lock.release();
            (over, still)
        };
        tokio::join!(newcomers, observe)
    };
    let (held, (newcomers, (over, still))) = tokio::join!(held, crowd);
    assert_eq!(over.get(EVICTED), 0.0);
    assert_eq!(still.get(EVICTED), 0.0);
    assert_eq!(still.get(LIVE), 3.0);
    let held = held.ok();
    assert_eq!((int(&held, "balance"), int(&held, "version")), (110, 2));
    for response in newcomers {
        response.ok();
    }

    // Once the writes have settled the actors are idle again: each newcomer evicts up to two,
    // so two bring the live set back to the limit.
    app.charge_ok(4, 5).await;
    app.charge_ok(5, 5).await;
    let settled = scrape_until(&app, "one live actor", |s| s.get(LIVE) <= 1.0).await;
    assert!(settled.get(EVICTED) >= 4.0, "{}", settled.get(EVICTED));
    assert_eq!(app.balance_of(1).await, (110, 2));
}

#[tokio::test]
async fn an_evicted_buyer_resumes_its_balance_version_and_keys_from_the_database() {
    let app = spawn_limited(2).await;
    let key = new_key();
    let keyed = app.charge_with_key(1, 100, &key).await.ok();
    assert_eq!(int(&keyed, "version"), 1);
    let order = app.new_order(1, 30).await;

    // Buyer 1 is the least recently used: the newcomers evict it first.
    for buyer in 2..=4 {
        app.charge_ok(buyer, 1).await;
    }
    scrape_until(&app, "buyer 1 evicted", |s| s.get(EVICTED) >= 2.0).await;
    let started = Scrape::of(&app).await.get(STARTED);

    let paid = app.pay(1, order).await.ok();
    assert_eq!((int(&paid, "balance"), int(&paid, "version")), (70, 2));
    assert_eq!(
        Scrape::of(&app).await.get(STARTED),
        started + 1.0,
        "buyer 1 was still live: it was not the one evicted"
    );
    let replay = app.charge_with_key(1, 100, &key).await;
    assert!(replay.is_replay());
    assert_eq!(replay.ok(), keyed);
    let charged = app.charge_ok(1, 5).await;
    assert_eq!(
        (int(&charged, "balance"), int(&charged, "version")),
        (75, 3)
    );
    app.pay(1, order)
        .await
        .expect_problem(409, "order_already_paid");
}
