//! Issue 15's drills: the engine on a 3-node MariaDB Galera cluster behind HAProxy
//! (`scripts/galera`: one writer at a time, the others hot standbys), under concurrent charge,
//! payment, refund and cancel load. 1: SIGKILL the primary node; writes answer 503 with
//! Retry-After for a bounded time, then succeed on the next node; the killed node restarts and
//! rejoins (state transfer) while the load goes on, without an error to any client. 3: the
//! primary is cut off from the other two (it loses quorum and must refuse writes); HAProxy moves
//! the writes on. After each, every acknowledged request is in the database, the audit finds
//! nothing, and every committed payment's event reached the broker.
//!
//! They start the cluster themselves (`scripts/galera up`, idempotent) and leave it running for
//! the next drill; `scripts/faults --galera` runs them and stops it after.

use std::process::Command;
use std::time::{Duration, Instant};

use super::crash::{drill_topic, engine_env};
use super::load::{Load, LoadSpec, Outcome, Sample, quantile};
use super::{LIFECYCLE_PERCENT, Row, buyers, check_books, events_lost, fund, millis, scaled, secs};
use crate::helpers::TestDatabase;
use crate::kafka::{EngineProcess, shared_brokers};

mod writers;

/// The engine's bound on a request waiting for its commit, in these drills.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request waits for a database connection, in these drills.
const CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest the writes may fail while the cluster fails over.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

/// The cluster of `scripts/galera`, driven through the script.
struct Galera;

impl Galera {
    /// Starts the cluster if it is not running, and every node that is down.
    fn up() -> Galera {
        Galera::script(&["up"]);
        for node in 1..=3 {
            if !Galera::node_up(node) {
                Galera::script(&["start", &node.to_string()]);
            }
        }
        Galera::script(&["wait-synced"]);
        Galera
    }

    fn script(args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/galera");
        let output = Command::new(script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running scripts/galera {args:?}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "scripts/galera {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn node_up(node: u16) -> bool {
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/galera"))
            .args(["synced", &node.to_string()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// The server URL through HAProxy (no database).
    fn url(&self) -> String {
        Galera::script(&["url"]).trim().to_string()
    }

    /// The URL of database `name` on node `node` itself, not through HAProxy.
    fn node_url(&self, node: u16, name: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{name}", 3306 + node)
    }

    /// The node HAProxy sends the writes to now.
    fn primary(&self) -> u16 {
        Galera::script(&["primary"])
            .trim()
            .parse()
            .expect("scripts/galera primary prints a node number")
    }
}

/// The load of both drills, and the engine on a fresh database of the cluster.
async fn engine_on(galera: &Galera) -> (TestDatabase, EngineProcess, LoadSpec, String, String) {
    let db = TestDatabase::on(&galera.url());
    let brokers = shared_brokers();
    let topic = drill_topic();
    let mut env = engine_env(&brokers, &topic);
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
    let engine = EngineProcess::serve(&db, &env).await;
    let spec = LoadSpec {
        clients: 50,
        buyers: buyers(5_001, 50),
        pay_percent: 50,
        lifecycle_percent: LIFECYCLE_PERCENT,
        timeout: Duration::from_secs(30),
        follow_readiness: false,
    };
    fund(&engine, &spec.buyers, 10_000_000).await;
    (db, engine, spec, brokers, topic)
}

/// A failure a client may see while the writer node changes: a quick 503 with Retry-After as
/// problem+json (or a refusal the state made right).
fn acceptable_during_failover(sample: &Sample) -> bool {
    sample.status == 200
        || sample.status == 201
        || sample.refusal_expected
        || sample.status == 503 && sample.retry_after && sample.problem_json
}

fn failed(sample: &Sample) -> bool {
    sample.status >= 500 || sample.status == 0
}

/// From `fault_at`, how long until the last failed answer (zero if none failed), and how many
/// failed.
fn failover_window(outcome: &Outcome, fault_at: Duration, until: Duration) -> (Duration, usize) {
    let failures: Vec<&Sample> = outcome
        .between(fault_at, until)
        .filter(|s| failed(s))
        .collect();
    let window = failures
        .iter()
        .map(|s| (s.sent_at + s.latency).saturating_sub(fault_at))
        .max()
        .unwrap_or_default();
    (window, failures.len())
}

/// Every answer to a request sent in `[from, to)` acceptable while failing over, and those
/// answered before `to` within the engine's bound. (One answered later may have waited for a
/// commit stalled by what came next, a node rejoining: it is not a failover answer.)
fn assert_failover_answers(outcome: &Outcome, from: Duration, to: Duration, what: &str) {
    let bound = REQUEST_TIMEOUT + CHECKOUT_TIMEOUT + Duration::from_secs(1);
    let mut wrong: Vec<String> = outcome
        .between(from, to)
        .filter(|s| {
            !acceptable_during_failover(s) || s.sent_at + s.latency < to && s.latency > bound
        })
        .map(|s| format!("{s:?}"))
        .collect();
    wrong.truncate(5);
    assert!(
        wrong.is_empty(),
        "{what}: every failure must be a 503 with Retry-After within {bound:?}: {wrong:?}"
    );
}

fn assert_no_failures(outcome: &Outcome, from: Duration, to: Duration, what: &str) {
    let mut failing: Vec<String> = outcome
        .between(from, to)
        .filter(|s| failed(s))
        .map(|s| format!("{s:?}"))
        .collect();
    let count = failing.len();
    failing.truncate(5);
    assert_eq!(count, 0, "{what}: {count} failed answers, e.g. {failing:?}");
}

#[actix_web::test]
async fn galera_1_killing_the_primary_fails_over_then_it_rejoins_losing_nothing() {
    let galera = Galera::up();
    let (db, engine, spec, brokers, topic) = engine_on(&galera).await;
    let load = Load::start(&engine.address, &spec);
    actix_web::rt::time::sleep(scaled(Duration::from_secs(2), Duration::from_secs(10))).await;

    let primary = galera.primary();
    let kill_at = load.elapsed();
    Galera::script(&["kill", &primary.to_string()]);
    let killed = Instant::now();
    while galera.primary() == primary && killed.elapsed() < FAILOVER_BOUND {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let moved_after = killed.elapsed();
    // Steady on the new primary before the killed node comes back.
    actix_web::rt::time::sleep(scaled(Duration::from_secs(4), Duration::from_secs(10))).await;
    let rejoin_at = load.elapsed();
    let rejoining = Instant::now();
    Galera::script(&["start", &primary.to_string()]);
    let rejoined_after = rejoining.elapsed();
    actix_web::rt::time::sleep(scaled(Duration::from_secs(3), Duration::from_secs(10))).await;
    let outcome = load.stop().await;

    assert_no_failures(&outcome, Duration::ZERO, kill_at, "before the kill");
    assert_failover_answers(&outcome, kill_at, rejoin_at, "failing over");
    let (window, refused) = failover_window(&outcome, kill_at, rejoin_at);
    assert!(
        window < FAILOVER_BOUND,
        "writes failed for {window:?} after the primary was killed"
    );
    let settled = kill_at + window + Duration::from_secs(1);
    assert_no_failures(&outcome, settled, outcome.duration, "after the failover");
    // The node's return stalls the cluster's commits for a moment (a membership change, then
    // the joiner catching up): answers wait, none fails. The slowest is reported.
    let rejoin_p99 = quantile(
        outcome
            .samples
            .iter()
            .filter(|s| s.sent_at + s.latency >= rejoin_at),
        0.99,
    );
    let rejoin_max = outcome
        .samples
        .iter()
        .filter(|s| s.sent_at + s.latency >= rejoin_at)
        .map(|s| s.latency)
        .max()
        .unwrap_or_default();
    outcome.assert_lifecycle_ran();
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    drop(engine);
    Row {
        drill: "G1 Galera primary killed, then rejoins",
        load: spec.describe(),
        faults: format!("SIGKILL of node {primary} (the primary), restarted after it"),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "writes failed for {} ({refused} answers 503); HAProxy moved after {}; \
             the node rejoined (synced) in {}",
            millis(window),
            millis(moved_after),
            secs(rejoined_after)
        ),
        notes: format!(
            "{:.0} answers/s; no failed answer while the node rejoined (answers then: p99 {}, \
             max {}); {}",
            outcome.rate(),
            millis(rejoin_p99),
            millis(rejoin_max),
            outcome.lifecycle_summary()
        ),
    }
    .report_and_assert();
}

#[actix_web::test]
async fn galera_3_a_primary_cut_off_from_the_others_refuses_writes_and_the_engine_moves_on() {
    let galera = Galera::up();
    let (db, engine, spec, brokers, topic) = engine_on(&galera).await;
    let load = Load::start(&engine.address, &spec);
    actix_web::rt::time::sleep(scaled(Duration::from_secs(2), Duration::from_secs(10))).await;

    let primary = galera.primary();
    let cut_at = load.elapsed();
    Galera::script(&["partition", &primary.to_string()]);
    let cut = Instant::now();
    while galera.primary() == primary && cut.elapsed() < FAILOVER_BOUND {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let moved_after = cut.elapsed();
    actix_web::rt::time::sleep(scaled(Duration::from_secs(4), Duration::from_secs(10))).await;
    let heal_at = load.elapsed();
    Galera::script(&["heal", &primary.to_string()]);
    Galera::script(&["wait-synced"]);
    actix_web::rt::time::sleep(scaled(Duration::from_secs(2), Duration::from_secs(10))).await;
    let outcome = load.stop().await;

    assert_no_failures(&outcome, Duration::ZERO, cut_at, "before the partition");
    assert_failover_answers(&outcome, cut_at, heal_at, "partitioned");
    let (window, refused) = failover_window(&outcome, cut_at, heal_at);
    assert!(
        window < FAILOVER_BOUND,
        "writes failed for {window:?} after the primary was partitioned"
    );
    let settled = cut_at + window + Duration::from_secs(1);
    assert_no_failures(&outcome, settled, outcome.duration, "after the failover");
    outcome.assert_lifecycle_ran();
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    drop(engine);
    Row {
        drill: "G3 Galera primary partitioned",
        load: spec.describe(),
        faults: format!("node {primary} (the primary) cut off from the other two, then healed"),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "writes failed for {} ({refused} answers 503); HAProxy moved after {}",
            millis(window),
            millis(moved_after)
        ),
        notes: format!(
            "{:.0} answers/s; {}",
            outcome.rate(),
            outcome.lifecycle_summary()
        ),
    }
    .report_and_assert();
}
