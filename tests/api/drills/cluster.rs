//! Drills of several engines behind the router (issue 13): an engine killed, paused past its
//! lease, restarted one after another, or added, under load through HAProxy. Each checks the
//! books and where the errors fell.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::crash::{drill_topic, engine_env};
use super::database::database_address;
use super::load::{Load, LoadSpec, Outcome, Sample, quantile};
use super::proxy::TcpProxy;
use super::router::Router;
use super::{Row, buyers, check_books, events_lost, scaled, secs};
use crate::helpers::TestDatabase;
use crate::kafka::{EngineProcess, TopicReader, free_port, shared_brokers};

/// Short leases, so that a lost engine's shards move within seconds.
pub(super) const TTL: Duration = Duration::from_millis(2_000);

/// The engines' environment: the drills' (broker, topic) with short leases; ids per engine.
pub(super) fn cluster_env(brokers: &str, topic: &str) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = engine_env(brokers, topic)
        .into_iter()
        .filter(|(name, _)| *name != "ENGINE_ID")
        .collect();
    env.extend([
        ("LEASE_TTL_MS", TTL.as_millis().to_string()),
        ("LEASE_RENEW_MS", "250".to_string()),
        ("LEASE_MIN_HOLD_MS", "2000".to_string()),
        ("FORWARD_TIMEOUT_MS", "1000".to_string()),
    ]);
    env
}

/// Engines `engine-1`.. on fixed ports of one database.
pub(super) struct Engines {
    db: TestDatabase,
    env: Vec<(&'static str, String)>,
    /// Settings of one engine only (e.g. its database URL), by index.
    own_env: HashMap<usize, Vec<(&'static str, String)>>,
    pub(super) ports: Vec<u16>,
    running: Vec<Option<EngineProcess>>,
}

impl Engines {
    pub(super) async fn start(
        db: &TestDatabase,
        n: usize,
        env: Vec<(&'static str, String)>,
    ) -> Engines {
        Engines::start_each(db, env, vec![Vec::new(); n]).await
    }

    /// One engine per entry of `own`, each with those settings of its own (e.g. its database
    /// URL) on top of `env`.
    pub(super) async fn start_each(
        db: &TestDatabase,
        env: Vec<(&'static str, String)>,
        own: Vec<Vec<(&'static str, String)>>,
    ) -> Engines {
        let n = own.len();
        let mut engines = Engines {
            db: db.clone(),
            env,
            own_env: own.into_iter().enumerate().collect(),
            ports: (0..n).map(|_| free_port()).collect(),
            running: (0..n).map(|_| None).collect(),
        };
        for index in 0..n {
            engines.restart(index).await;
        }
        engines
    }

    /// Starts engine `index` (again), on its port, with its id.
    pub(super) async fn restart(&mut self, index: usize) {
        let mut env = self.env.clone();
        env.extend(self.own_env.get(&index).cloned().unwrap_or_default());
        env.push(("ENGINE_ID", format!("engine-{}", index + 1)));
        let engine = EngineProcess::serve_on(&self.db, self.ports[index], &env).await;
        self.running[index] = Some(engine);
    }

    pub(super) fn engine(&self, index: usize) -> &EngineProcess {
        self.running[index].as_ref().expect("engine running")
    }

    pub(super) fn signal(&self, index: usize, signal: &str) {
        let pid = self.engine(index).pid().expect("engine running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

#[derive(QueryableByName)]
struct Owner {
    #[diesel(sql_type = BigInt)]
    shard: i64,
    #[diesel(sql_type = Text)]
    owner_engine: String,
}

/// Which engine holds each held shard.
fn owners(db: &TestDatabase) -> HashMap<i64, String> {
    diesel::sql_query(
        "SELECT CAST(shard AS SIGNED) AS shard, owner_engine FROM shard_leases \
         WHERE owner_token IS NOT NULL",
    )
    .load::<Owner>(&mut db.connect())
    .unwrap()
    .into_iter()
    .map(|row| (row.shard, row.owner_engine))
    .collect()
}

fn spec(clients: usize) -> LoadSpec {
    LoadSpec {
        clients,
        buyers: buyers(2_001, 120),
        pay_percent: 30,
        lifecycle_percent: 0,
        timeout: Duration::from_secs(15),
        follow_readiness: false,
    }
}

/// Funds the buyers through the router, so that each shard is claimed by the engine the
/// router sends it to.
pub(super) async fn fund_through(router: &Router, buyers: &[i64]) {
    let http = reqwest::Client::new();
    for &buyer in buyers {
        let response = http
            .post(format!("{}/points/{buyer}?point=10000000", router.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "funding buyer {buyer}");
    }
}

pub(super) fn errors(outcome: &Outcome) -> Vec<&Sample> {
    outcome
        .samples
        .iter()
        .filter(|s| s.status >= 500 || s.status == 0)
        .collect()
}

pub(super) fn describe(samples: &[&Sample]) -> String {
    let mut codes: HashMap<String, usize> = HashMap::new();
    for sample in samples {
        let code = sample
            .code
            .clone()
            .unwrap_or_else(|| sample.status.to_string());
        *codes.entry(code).or_default() += 1;
    }
    format!("{codes:?}")
}

#[actix_web::test]
async fn drill_6_kill_one_of_three_engines_under_load() {
    let db = TestDatabase::new();
    let (brokers, topic) = (shared_brokers(), drill_topic());
    let mut engines = Engines::start(&db, 3, cluster_env(&brokers, &topic)).await;
    let router = Router::start(&engines.ports);
    router.wait_for(&[1, 2, 3], Duration::from_secs(10)).await;
    let spec = spec(30);
    fund_through(&router, &spec.buyers).await;

    let load = Load::start(&router.address, &spec);
    actix_web::rt::time::sleep(scaled(Duration::from_secs(2), Duration::from_secs(5))).await;
    let owned = owners(&db);
    let victims: HashSet<i64> = spec
        .buyers
        .iter()
        .copied()
        .filter(|buyer| owned.get(&(buyer % 1024)).is_some_and(|e| e == "engine-2"))
        .collect();
    let killed_at = load.elapsed();
    engines.running[1].as_mut().unwrap().kill();
    actix_web::rt::time::sleep(TTL + scaled(Duration::from_secs(5), Duration::from_secs(10))).await;
    let outcome = load.stop().await;

    let failed = errors(&outcome);
    let others: Vec<&&Sample> = failed
        .iter()
        .filter(|s| !victims.contains(&s.buyer))
        .collect();
    let last = failed.iter().map(|s| s.sent_at).max().unwrap_or(killed_at);
    let recovery = last.saturating_sub(killed_at);
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    let (backwards, duplicates) = versions_backwards(&db, &brokers, &topic).await;
    let row = Row {
        drill: "6 kill -9 one of three engines",
        load: format!("{} through HAProxy", spec.describe()),
        faults: format!(
            "engine-2 (owner of {} of the buyers) SIGKILLed",
            victims.len()
        ),
        books,
        events_lost: Some(lost),
        recovery: format!("its buyers served again {} after the kill", secs(recovery)),
        notes: format!(
            "{} answers; errors {} (all for its buyers: {}); p99 {}; events: {duplicates} \
             redelivered, {backwards} out of per-buyer version order",
            outcome.samples.len(),
            describe(&failed),
            others.is_empty(),
            secs(quantile(outcome.samples.iter(), 0.99))
        ),
    };
    assert_eq!(backwards, 0, "a buyer's event versions went backwards");
    assert!(!victims.is_empty(), "engine-2 owned none of the buyers");
    assert!(
        others.is_empty(),
        "buyers of other engines saw errors: {others:?}"
    );
    assert!(
        recovery <= TTL + Duration::from_secs(2),
        "errors went on {recovery:?} after the kill"
    );
    row.report_and_assert();
}

#[actix_web::test]
async fn drill_4_an_owner_paused_past_its_lease_writes_nothing_stale() {
    let db = TestDatabase::new();
    let (brokers, topic) = (shared_brokers(), drill_topic());
    let engines = Engines::start(&db, 2, cluster_env(&brokers, &topic)).await;
    let router = Router::start(&engines.ports);
    router.wait_for(&[1, 2], Duration::from_secs(10)).await;
    let spec = spec(30);
    fund_through(&router, &spec.buyers).await;

    let load = Load::start(&router.address, &spec);
    let pauses = scaled(2, 5);
    for _ in 0..pauses {
        actix_web::rt::time::sleep(Duration::from_millis(1_500)).await;
        engines.signal(0, "STOP");
        actix_web::rt::time::sleep(TTL * 2).await;
        engines.signal(0, "CONT");
    }
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let outcome = load.stop().await;
    let refused = scrape(
        engines.engine(0),
        "payment_engine_cluster_not_owner_refusals_total",
    )
    .await;
    let lost_leases = scrape(engines.engine(0), "payment_engine_cluster_lease_lost_total").await;
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    let (backwards, duplicates) = versions_backwards(&db, &brokers, &topic).await;
    let failed = errors(&outcome);
    assert_eq!(backwards, 0, "a buyer's event versions went backwards");
    Row {
        drill: "4 owner paused past its lease (SIGSTOP)",
        load: format!("{} through HAProxy, 2 engines", spec.describe()),
        faults: format!(
            "engine-1 SIGSTOPped {pauses} times for {} (lease TTL {})",
            secs(TTL * 2),
            secs(TTL)
        ),
        books,
        events_lost: Some(lost),
        recovery: format!("{lost_leases} leases lost by the paused engine"),
        notes: format!(
            "{} answers; {refused} writes of the paused engine refused not_owner in the commit; \
             errors {}; p99 {}; events: {duplicates} redelivered, {backwards} out of order",
            outcome.samples.len(),
            describe(&failed),
            secs(quantile(outcome.samples.iter(), 0.99))
        ),
    }
    .report_and_assert();
}

#[actix_web::test]
async fn drill_5_rolling_restart_of_three_engines_answers_no_error() {
    let db = TestDatabase::new();
    let (brokers, topic) = (shared_brokers(), drill_topic());
    let mut engines = Engines::start(&db, 3, cluster_env(&brokers, &topic)).await;
    let router = Router::start(&engines.ports);
    router.wait_for(&[1, 2, 3], Duration::from_secs(10)).await;
    let spec = spec(30);
    fund_through(&router, &spec.buyers).await;

    let load = Load::start(&router.address, &spec);
    let started = Instant::now();
    let rounds = scaled(1, 3);
    let mut diagnostics = Vec::new();
    for _ in 0..rounds {
        for index in 0..3 {
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
            let engine = engines.running[index].take().unwrap();
            eprintln!("{:?}: SIGTERM engine-{}", load.elapsed(), index + 1);
            engine.terminate();
            let status = engine.wait_exit(Duration::from_secs(30)).await;
            assert!(
                status.is_some_and(|s| s.success()),
                "engine-{} exit: {status:?}",
                index + 1
            );
            eprintln!("{:?}: engine-{} exited", load.elapsed(), index + 1);
            diagnostics.push(routing_log(&engine, index));
            engines.restart(index).await;
            eprintln!("{:?}: engine-{} restarted", load.elapsed(), index + 1);
            router.wait_for(&[1, 2, 3], Duration::from_secs(10)).await;
            eprintln!("{:?}: all up", load.elapsed());
        }
    }
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let outcome = load.stop().await;
    let took = started.elapsed();
    let failed = errors(&outcome);
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    let (backwards, duplicates) = versions_backwards(&db, &brokers, &topic).await;
    let owned = owners(&db);
    let row = Row {
        drill: "5 rolling restart of three engines",
        load: format!("{} through HAProxy", spec.describe()),
        faults: format!("{rounds} rounds of SIGTERM + restart of each engine in turn"),
        books,
        events_lost: Some(lost),
        recovery: format!("{} for {} restarts", secs(took), 3 * rounds),
        notes: format!(
            "{} answers; errors {}; p99 {}; shards held at the end {} (by {} engines); events: \
             {duplicates} redelivered, {backwards} out of per-buyer version order",
            outcome.samples.len(),
            describe(&failed),
            secs(quantile(outcome.samples.iter(), 0.99)),
            owned.len(),
            owned.values().collect::<HashSet<_>>().len()
        ),
    };
    for sample in &failed {
        eprintln!("failed: {sample:?} shard {}", sample.buyer % 1024);
    }
    if !failed.is_empty() {
        for (index, engine) in engines.running.iter().enumerate() {
            diagnostics.extend(engine.as_ref().map(|e| routing_log(e, index)));
        }
        eprintln!("{}", diagnostics.join("\n"));
    }
    assert_eq!(backwards, 0, "a buyer's event versions went backwards");
    assert!(
        failed.is_empty(),
        "errors during the rolling restart: {}",
        describe(&failed)
    );
    row.report_and_assert();
}

#[actix_web::test]
async fn drill_7_an_engine_cut_off_from_the_database_fails_only_its_own_buyers() {
    let db = TestDatabase::new();
    let (brokers, topic) = (shared_brokers(), drill_topic());
    let proxy = TcpProxy::start(&database_address());
    let through_proxy = db
        .url()
        .replace(&database_address(), &format!("127.0.0.1:{}", proxy.port));
    let cut_off = vec![
        ("DATABASE_URL", through_proxy),
        ("DB_CHECKOUT_TIMEOUT_MS", "500".to_string()),
        ("REQUEST_TIMEOUT_MS", "2000".to_string()),
    ];
    let own = vec![cut_off, Vec::new(), Vec::new()];
    let engines = Engines::start_each(&db, cluster_env(&brokers, &topic), own).await;
    let router = Router::start(&engines.ports);
    router.wait_for(&[1, 2, 3], Duration::from_secs(10)).await;
    let spec = spec(30);
    fund_through(&router, &spec.buyers).await;

    let load = Load::start(&router.address, &spec);
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let owned = owners(&db);
    let victims: HashSet<i64> = spec
        .buyers
        .iter()
        .copied()
        .filter(|buyer| owned.get(&(buyer % 1024)).is_some_and(|e| e == "engine-1"))
        .collect();
    let cut_at = load.elapsed();
    proxy.cut();
    let outage = TTL + scaled(Duration::from_secs(3), Duration::from_secs(8));
    actix_web::rt::time::sleep(outage).await;
    proxy.restore();
    actix_web::rt::time::sleep(Duration::from_secs(4)).await;
    let outcome = load.stop().await;
    let refused = scrape(
        engines.engine(0),
        "payment_engine_cluster_not_owner_refusals_total",
    )
    .await;
    let failed = errors(&outcome);
    let others: Vec<&&Sample> = failed
        .iter()
        .filter(|s| !victims.contains(&s.buyer))
        .collect();
    let last = failed.iter().map(|s| s.sent_at).max().unwrap_or(cut_at);
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    let row = Row {
        drill: "7 one engine cut off from the database",
        load: format!("{} through HAProxy, 3 engines", spec.describe()),
        faults: format!(
            "engine-1 (owner of {} of the buyers) cut off for {}",
            victims.len(),
            secs(outage)
        ),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "its buyers served elsewhere {} after the cut",
            secs(last.saturating_sub(cut_at))
        ),
        notes: format!(
            "{} answers; errors {} (all for its buyers: {}); {refused} of its writes refused \
             not_owner after the healing; p99 {}",
            outcome.samples.len(),
            describe(&failed),
            others.is_empty(),
            secs(quantile(outcome.samples.iter(), 0.99))
        ),
    };
    assert!(!victims.is_empty(), "engine-1 owned none of the buyers");
    assert!(
        others.is_empty(),
        "buyers of other engines saw errors: {others:?}"
    );
    assert!(
        last.saturating_sub(cut_at) <= TTL + Duration::from_secs(3),
        "its buyers failed until {last:?} (cut at {cut_at:?})"
    );
    row.report_and_assert();
}

#[actix_web::test]
async fn drill_8_two_routers_with_different_health_views_never_conflict() {
    let db = TestDatabase::new();
    let (brokers, topic) = (shared_brokers(), drill_topic());
    let engines = Engines::start(&db, 3, cluster_env(&brokers, &topic)).await;
    // Router `a` sees all three engines; router `b` cannot reach engine-3 (its address is
    // wrong there), so it sends engine-3's hash slots to the other two.
    let a = Router::start(&engines.ports);
    let b = Router::start(&engines.ports[..2]);
    a.wait_for(&[1, 2, 3], Duration::from_secs(10)).await;
    b.wait_for(&[1, 2], Duration::from_secs(10)).await;
    let spec = spec(15);
    fund_through(&a, &spec.buyers).await;

    let (load_a, load_b) = (
        Load::start(&a.address, &spec),
        Load::start(&b.address, &spec),
    );
    actix_web::rt::time::sleep(scaled(Duration::from_secs(6), Duration::from_secs(20))).await;
    let mut outcome = load_a.stop().await;
    outcome.merge(load_b.stop().await);
    let failed = errors(&outcome);
    let conflicts = outcome
        .samples
        .iter()
        .filter(|s| s.code.as_deref() == Some("write_conflict"))
        .count();
    let forwarded = forwarded(&engines).await;
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    let row = Row {
        drill: "8 two routers, different health views",
        load: format!("{} through each of two HAProxys", spec.describe()),
        faults: "router b cannot reach engine-3; router a can".to_string(),
        books,
        events_lost: Some(lost),
        recovery: "—".to_string(),
        notes: format!(
            "{} answers; {forwarded} forwarded; {conflicts} write_conflict; errors {}; p99 {}",
            outcome.samples.len(),
            describe(&failed),
            secs(quantile(outcome.samples.iter(), 0.99))
        ),
    };
    assert_eq!(conflicts, 0, "write_conflict answered");
    assert!(failed.is_empty(), "errors: {}", describe(&failed));
    row.report_and_assert();
}

/// What an engine logged about requests it could not route (for a failed drill).
fn routing_log(engine: &EngineProcess, index: usize) -> String {
    engine
        .log_text()
        .lines()
        .filter(|line| {
            [
                "no engine to serve",
                "unreachable",
                "answer was lost",
                "owner_unavailable",
            ]
            .iter()
            .any(|needle| line.contains(needle))
        })
        .map(|line| format!("engine-{}: {line}", index + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Requests forwarded by all running engines so far.
async fn forwarded(engines: &Engines) -> f64 {
    let mut total = 0.0;
    for engine in engines.running.iter().flatten() {
        total += scrape(
            engine,
            "payment_engine_cluster_forwarded_requests_total{outcome=\"answered\"}",
        )
        .await;
    }
    total
}

#[actix_web::test]
async fn drill_9_an_engine_added_under_load_gets_its_shards_and_forwarding_stops() {
    let db = TestDatabase::new();
    let (brokers, topic) = (shared_brokers(), drill_topic());
    let mut engines = Engines::start(&db, 2, cluster_env(&brokers, &topic)).await;
    engines.ports.push(free_port());
    engines.running.push(None);
    let router = Router::start(&engines.ports);
    router.wait_for(&[1, 2], Duration::from_secs(10)).await;
    let spec = spec(30);
    fund_through(&router, &spec.buyers).await;

    let load = Load::start(&router.address, &spec);
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let added_at = load.elapsed();
    engines.restart(2).await;
    router.wait_for(&[1, 2, 3], Duration::from_secs(10)).await;
    // Converged: engine-3 holds shards and nothing was forwarded for a whole second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let converged_at = loop {
        let before = forwarded(&engines).await;
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        let held = owners(&db).values().filter(|e| *e == "engine-3").count();
        if held > 0 && forwarded(&engines).await == before {
            break load.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "never converged: {held} shards on engine-3"
        );
    };
    let window_start = load.elapsed();
    let forwarded_before = forwarded(&engines).await;
    actix_web::rt::time::sleep(scaled(Duration::from_secs(3), Duration::from_secs(10))).await;
    let forwarded_after = forwarded(&engines).await;
    let outcome = load.stop().await;
    let answered_after = outcome.between(window_start, outcome.duration).count();
    let share = (forwarded_after - forwarded_before) / answered_after.max(1) as f64;
    let failed = errors(&outcome);
    let books = check_books(&db, &outcome);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    let owned = owners(&db);
    let per_engine: Vec<usize> = (1..=3)
        .map(|i| {
            owned
                .values()
                .filter(|e| **e == format!("engine-{i}"))
                .count()
        })
        .collect();
    let row = Row {
        drill: "9 an engine added under load",
        load: format!("{} through HAProxy", spec.describe()),
        faults: "engine-3 started beside two running engines".to_string(),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "converged {} after it was started",
            secs(converged_at.saturating_sub(added_at))
        ),
        notes: format!(
            "shards held per engine at the end {per_engine:?}; forwarded afterwards {:.2} % of \
             {answered_after} answers; errors {}; p99 {}",
            share * 100.0,
            describe(&failed),
            secs(quantile(outcome.samples.iter(), 0.99))
        ),
    };
    assert!(
        failed.is_empty(),
        "errors while adding an engine: {}",
        describe(&failed)
    );
    assert!(
        share < 0.01,
        "still forwarding {:.2} % after converging",
        share * 100.0
    );
    row.report_and_assert();
}

/// Drill 10: per buyer, the ledger versions of the payment events on `topic`, read in partition
/// order, never go backwards once duplicates (a redelivered `eventId`) are dropped. Returns the
/// events that went backwards and the duplicates.
pub(super) async fn versions_backwards(
    db: &TestDatabase,
    brokers: &str,
    topic: &str,
) -> (usize, usize) {
    let events = crate::helpers::scalar(
        &mut db.connect(),
        "SELECT COUNT(*) AS n FROM outbox_events WHERE event_type = 'payment.completed'",
    ) as usize;
    let mut reader = TopicReader::open(brokers, topic).await;
    reader
        .read_until_distinct(events, Duration::from_secs(60))
        .await;
    let mut messages = reader.received.clone();
    messages.sort_by_key(|m| (m.partition, m.offset));
    let (mut seen, mut newest) = (HashSet::new(), HashMap::new());
    let (mut backwards, mut duplicates) = (0, 0);
    for message in &messages {
        if !seen.insert(message.event_id().to_string()) {
            duplicates += 1;
            continue;
        }
        let data = &message.value["data"];
        let (buyer, version) = (data["buyerId"].as_i64(), data["version"].as_i64());
        let newest = newest.entry(buyer).or_insert(version);
        if version < *newest {
            backwards += 1;
        }
        *newest = version.max(*newest);
    }
    (backwards, duplicates)
}

/// A counter of an engine's exposition (0 when absent).
pub(super) async fn scrape(engine: &EngineProcess, series: &str) -> f64 {
    let text = engine
        .client
        .get(engine.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
