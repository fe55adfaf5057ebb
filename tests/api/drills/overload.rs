//! Drill 4: offer three times the engine's measured capacity, open model (k6's
//! constant-arrival-rate: requests keep arriving whatever the answers, so queueing shows as
//! latency instead of being hidden by closed loops; `loadtests/overload.js`). The excess gets 503
//! with Retry-After quickly, accepted requests keep a bounded p99, memory stays bounded, the
//! engine serves normally once the load stops, and every acknowledged charge is in the books.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Books, Row, check_books, millis, scaled, secs};
use crate::helpers::{TestDatabase, scalar};
use crate::kafka::{EngineProcess, rss_of};
use crate::observability::tools::{K6, TempDir, output_text, repo_path, run};

/// The engine's bound on a request waiting for its commit, in this drill.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The engine's in-flight limit in this drill. k6 shares the two cores with the engine and keeps
/// at most its 500 pre-allocated VUs busy (it cannot start more fast enough, and drops the
/// iterations instead), so the default limit (512) may never be reached and the drill would test
/// the generator, not the shedding. 200 is Little's law for a 50 ms queueing budget at about
/// 4,000 charges/s, this machine's capacity; the capacity phase's 100 clients stay below it.
const MAX_IN_FLIGHT: u32 = 200;
const FIRST_BUYER: i64 = 4_001;
const BUYERS: i64 = 100;

/// Runs `loadtests/overload.js` against `engine` with `env`; returns its summary.
async fn k6(engine: &EngineProcess, env: &[(&str, String)]) -> Value {
    let dir = TempDir::new("pe-overload");
    let summary = dir.0.join("summary.json");
    let mut command = K6.command();
    command
        .arg("run")
        .arg("--quiet")
        .arg("--no-usage-report")
        .args(["-e", &format!("BASE_URL={}", engine.address)])
        .args(["-e", &format!("SUMMARY_FILE={}", summary.display())])
        .args(["-e", &format!("FIRST_BUYER={FIRST_BUYER}")])
        .args(["-e", &format!("BUYERS={BUYERS}")]);
    for (name, value) in env {
        command.args(["-e", &format!("{name}={value}")]);
    }
    command.arg(repo_path("loadtests/overload.js"));
    let output =
        actix_web::rt::task::spawn_blocking(move || run(command, Duration::from_secs(300)))
            .await
            .expect("the k6 task panicked");
    assert!(
        output.status.success(),
        "k6 failed:\n{}",
        output_text(&output)
    );
    let text = std::fs::read_to_string(&summary)
        .unwrap_or_else(|e| panic!("no k6 summary ({e}):\n{}", output_text(&output)));
    serde_json::from_str(&text).expect("the k6 summary is JSON")
}

fn number(summary: &Value, field: &str) -> f64 {
    summary[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no {field} in {summary}"))
}

#[actix_web::test]
async fn drill_4_three_times_capacity_sheds_the_excess_quickly_and_recovers() {
    let db = TestDatabase::new();
    let engine = EngineProcess::serve(
        &db,
        &[
            (
                "REQUEST_TIMEOUT_MS",
                REQUEST_TIMEOUT.as_millis().to_string(),
            ),
            ("MAX_IN_FLIGHT_REQUESTS", MAX_IN_FLIGHT.to_string()),
        ],
    )
    .await;
    let duration = scaled(Duration::from_secs(5), Duration::from_secs(30));
    let seconds = format!("{}s", duration.as_secs());

    // Capacity: what 100 closed-loop clients get acknowledged per second.
    let capacity_run = k6(
        &engine,
        &[("MODE", "capacity".into()), ("DURATION", seconds.clone())],
    )
    .await;
    let capacity =
        number(&capacity_run, "ackedCharges") / number(&capacity_run, "durationMs") * 1e3;
    assert!(capacity > 0.0, "no charge acknowledged: {capacity_run}");
    let baseline_rss = engine.rss_bytes().unwrap_or(0);

    // Three times that, open model, while sampling the engine's memory.
    let rate = (3.0 * capacity).ceil() as u64;
    let rss_peak = Arc::new(AtomicU64::new(baseline_rss));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (rss_peak, sampling, pid) = (
            Arc::clone(&rss_peak),
            Arc::clone(&sampling),
            engine.pid().unwrap(),
        );
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    rss_peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let overload = k6(
        &engine,
        &[
            ("MODE", "overload".into()),
            ("DURATION", seconds),
            ("RATE", rate.to_string()),
        ],
    )
    .await;
    let stopped = Instant::now();

    // Back to normal: a charge answers 200 quickly.
    let mut normal_after = None;
    while stopped.elapsed() < Duration::from_secs(20) {
        let start = Instant::now();
        let response = engine.charge(FIRST_BUYER, 1).await;
        if response.status() == 200 && start.elapsed() < Duration::from_millis(100) {
            normal_after = Some(stopped.elapsed());
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("the memory sampler panicked");
    let rss_peak = rss_peak.load(Ordering::Relaxed);
    eprintln!("overload drill: capacity {capacity_run}\noverload {overload}");

    let (shed, other) = (number(&overload, "shed"), number(&overload, "other"));
    let failed_checks = number(&capacity_run, "failedChecks") + number(&overload, "failedChecks");
    assert_eq!(other, 0.0, "only 200 and 503 expected: {overload}");
    assert_eq!(
        failed_checks, 0.0,
        "every 503 must be an `overloaded` problem+json with Retry-After: {overload}"
    );
    assert!(shed > 0.0, "3× capacity must shed some load: {overload}");
    let shed_p99 = Duration::from_secs_f64(number(&overload, "shedP99Ms") / 1e3);
    let accepted_p99 = Duration::from_secs_f64(number(&overload, "acceptedP99Ms") / 1e3);
    assert!(
        shed_p99 < Duration::from_millis(500),
        "shedding must be quick: p99 of the 503s {shed_p99:?}"
    );
    assert!(
        accepted_p99 < Duration::from_secs(2),
        "accepted requests must keep a bounded p99: {accepted_p99:?}"
    );
    assert!(
        rss_peak < 512 * 1024 * 1024,
        "memory must stay bounded: peak {} MB",
        rss_peak / (1024 * 1024)
    );
    let normal_after = normal_after.expect("the engine did not return to normal within 20 s");

    // The books: every acknowledged charge (and nothing else) moved money; no timeouts or lost
    // connections happened, so the totals must match exactly.
    let acked = number(&capacity_run, "ackedCharges") + number(&overload, "ackedCharges") + 1.0;
    let points = number(&capacity_run, "ackedPoints") + number(&overload, "ackedPoints") + 1.0;
    let mut books = check_books(&db, &super::load::Outcome::default());
    books.acknowledged = acked as usize;
    let mut conn = db.connect();
    let in_ledger = scalar(&mut conn, "SELECT COUNT(*) AS n FROM ledger_entries");
    let ledger_points = scalar(
        &mut conn,
        "SELECT CAST(COALESCE(SUM(amount), 0) AS SIGNED) AS n FROM ledger_entries",
    );
    if in_ledger as f64 != acked || ledger_points as f64 != points {
        books.lost.push(format!(
            "acknowledged {acked} charges of {points} points; the ledger holds {in_ledger} of \
             {ledger_points}"
        ));
    }
    drop(engine);
    let total = number(&overload, "requests");
    Row {
        drill: "4 overload (3× capacity)",
        load: format!(
            "{capacity:.0}/s measured (100 VUs), {rate}/s offered for {} (open model), \
             in-flight limit {MAX_IN_FLIGHT}",
            secs(duration)
        ),
        faults: format!("{shed:.0} of {total:.0} requests shed with 503"),
        books: Books { ..books },
        events_lost: None,
        recovery: format!("normal {} after the load stopped", millis(normal_after)),
        notes: format!(
            "p99 accepted {}, p99 shed {}; {:.0} iterations dropped by k6; RSS {} MB → peak {} MB",
            millis(accepted_p99),
            millis(shed_p99),
            number(&overload, "droppedIterations"),
            baseline_rss / (1024 * 1024),
            rss_peak / (1024 * 1024)
        ),
    }
    .report_and_assert();
}
