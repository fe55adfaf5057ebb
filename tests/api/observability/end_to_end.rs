//! End to end: a test engine under a short burst of traffic and a k6 run, a real Prometheus
//! scraping it and receiving k6's remote writes, and every dashboard panel's query answered.

use std::time::{Duration, Instant};

use futures::future::join_all;

use super::dashboards::{Dashboard, PanelQuery};
use super::prometheus::{SCRAPE_INTERVAL_S, TestPrometheus, run_k6};
use crate::helpers::{TestApp, spawn_app_with};
use crate::kafka::{shared_brokers, use_kafka};

/// A few seconds of charges and a 404 (a response k6 counts as unexpected) per iteration, with
/// checks, from 4 VUs.
const K6_SCRIPT: &str = r#"
import http from 'k6/http';
import { check, sleep } from 'k6';

export const options = {
  scenarios: { load: { executor: 'constant-vus', vus: 4, duration: '4s' } },
};
const BASE_URL = __ENV.BASE_URL;

export default function () {
  const buyer = 1 + Math.floor(Math.random() * 7);
  const charged = http.post(`${BASE_URL}/points/${buyer}?point=10`, null, { tags: { name: 'charge' } });
  check(charged, { 'charge answered 200': (r) => r.status === 200 });
  const missing = http.get(`${BASE_URL}/orders/999999999`, { tags: { name: 'missing order' } });
  check(missing, { 'a missing order answers 404': (r) => r.status === 404 });
  sleep(0.02);
}
"#;

/// Charges over several buyers, a burst on one hot buyer, orders paid, and some 404s.
async fn drive_traffic(app: &TestApp) {
    const HOT_BUYER: i64 = 42;
    let spread = (1..=10).flat_map(|buyer| [buyer; 3]);
    for response in join_all(spread.map(|buyer| app.charge(buyer, 1_000))).await {
        response.ok();
    }
    for response in join_all((0..100).map(|_| app.charge(HOT_BUYER, 100))).await {
        response.ok();
    }
    let mut orders = Vec::new();
    for _ in 0..10 {
        orders.push(app.new_order(HOT_BUYER, 50).await);
    }
    for response in join_all(orders.iter().map(|&order| app.pay(HOT_BUYER, order))).await {
        response.ok();
    }
    for _ in 0..5 {
        app.get_order(999_999_999)
            .await
            .expect_problem(404, "order_not_found");
    }
    app.pay(HOT_BUYER, 999_999_999)
        .await
        .expect_problem(404, "order_not_found");
}

/// Queries until every one returns a series, or `deadline` passes; returns those that never
/// did, with the last error if the query failed.
async fn queries_without_data(
    prometheus: &TestPrometheus,
    queries: &[PanelQuery],
    deadline: Duration,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut empty = Vec::new();
        for query in queries {
            match prometheus.query(&query.expr).await {
                Ok(series) if !series.is_empty() => {}
                Ok(_) => empty.push(format!("{query}")),
                Err(e) => empty.push(format!("{query}  -> error {e}")),
            }
        }
        if empty.is_empty() || start.elapsed() > deadline {
            return empty;
        }
        actix_web::rt::time::sleep(Duration::from_secs(SCRAPE_INTERVAL_S)).await;
    }
}

#[actix_web::test]
async fn every_dashboard_panel_returns_data() {
    let queries: Vec<PanelQuery> = Dashboard::all()
        .iter()
        .flat_map(Dashboard::queries)
        .collect();
    let brokers = shared_brokers();
    let app = spawn_app_with(|s| use_kafka(s, &brokers)).await;
    let prometheus = TestPrometheus::start(&format!("127.0.0.1:{}", app.port)).await;

    drive_traffic(&app).await;
    let testid = format!("observability-{}", uuid::Uuid::new_v4().simple());
    run_k6(
        K6_SCRIPT,
        &app.address,
        &prometheus.remote_write_url(),
        &testid,
    )
    .await;

    let empty = queries_without_data(&prometheus, &queries, Duration::from_secs(20)).await;
    assert!(
        empty.is_empty(),
        "{} of {} dashboard queries returned no data:\n  {}\nscrape targets: {}",
        empty.len(),
        queries.len(),
        empty.join("\n  "),
        prometheus.targets().await
    );
}
