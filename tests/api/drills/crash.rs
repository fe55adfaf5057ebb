//! Drill 1: SIGKILL the engine at random moments while 100 clients charge and pay, restart it,
//! and check that nothing acknowledged was lost and that every committed payment's event reaches
//! the broker once an engine runs again.

use std::time::{Duration, Instant};

use super::load::{Load, LoadSpec, Outcome, Rng};
use super::{LIFECYCLE_PERCENT, Row, buyers, check_books, events_lost, fund, scaled, secs};
use crate::helpers::TestDatabase;
use crate::kafka::{EngineProcess, shared_brokers};

/// The engine's environment in the drills: the shared broker, a topic of the drill's own, and
/// one engine id, as a restarted service keeps its identity: each new process takes over the
/// leases of the one before at once (rather than after their TTL) and fences it.
pub fn engine_env(brokers: &str, topic: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ENGINE_ID", "drill-engine".to_string()),
        ("KAFKA_BROKERS", brokers.to_string()),
        ("KAFKA_PAYMENT_TOPIC", topic.to_string()),
        ("OUTBOX_RELAY_INTERVAL_MS", "200".to_string()),
        ("SHUTDOWN_TIMEOUT_S", "10".to_string()),
    ]
}

pub fn drill_topic() -> String {
    format!("payment.completed.drill.{}", uuid::Uuid::new_v4().simple())
}

#[actix_web::test]
async fn drill_1_sigkill_under_load_loses_nothing_acknowledged() {
    let db = TestDatabase::new();
    let brokers = shared_brokers();
    let topic = drill_topic();
    let env = engine_env(&brokers, &topic);
    let spec = LoadSpec {
        clients: 100,
        buyers: buyers(1_001, 50),
        pay_percent: 50,
        lifecycle_percent: LIFECYCLE_PERCENT,
        timeout: Duration::from_secs(15),
        follow_readiness: false,
    };
    let rounds = scaled(10, 25);
    let mut rng = Rng::seeded(1);
    {
        let engine = EngineProcess::serve(&db, &env).await;
        fund(&engine, &spec.buyers, 10_000_000).await;
    }

    let mut total = Outcome::default();
    let mut restarts = Vec::new();
    for round in 0..rounds {
        let start = Instant::now();
        let mut engine = EngineProcess::serve(&db, &env).await;
        restarts.push(start.elapsed());
        let load = Load::start(&engine.address, &spec);
        // A random moment: anywhere from warm-up to steady state.
        let run_for = Duration::from_millis(scaled(300, 1_000) + rng.below(scaled(1_700, 5_000)));
        actix_web::rt::time::sleep(run_for).await;
        engine.kill();
        let outcome = load.stop().await;
        let acks = outcome.money_acks();
        eprintln!(
            "round {round}: killed after {run_for:?} with {acks} acknowledged; answers {:?}",
            outcome.statuses()
        );
        assert!(
            acks > 0,
            "round {round}: the load got no acknowledgement in {run_for:?}: {:?} {:?}",
            outcome.statuses(),
            outcome.error_examples
        );
        let failures: usize = outcome.samples.iter().filter(|s| s.status >= 500).count();
        assert_eq!(
            failures,
            0,
            "round {round}: 5xx answers before the kill: {:?}",
            outcome.statuses()
        );
        total.merge(outcome);
    }

    // The next engine publishes what the killed ones committed but did not publish.
    let start = Instant::now();
    let engine = EngineProcess::serve(&db, &env).await;
    restarts.push(start.elapsed());
    total.assert_lifecycle_ran();
    let books = check_books(&db, &total);
    let (lost, took) = events_lost(&db, &brokers, &topic, Duration::from_secs(60)).await;
    drop(engine);
    restarts.sort();
    Row {
        drill: "1 crash (SIGKILL)",
        load: spec.describe(),
        faults: format!("{rounds} SIGKILLs at random moments"),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "restart to serving: median {}, max {}",
            secs(restarts[restarts.len() / 2]),
            secs(restarts[restarts.len() - 1])
        ),
        notes: format!(
            "{:.0} answers/s while up; all events on the topic {} after the last restart; {}",
            total.rate(),
            secs(took),
            total.lifecycle_summary()
        ),
    }
    .report_and_assert();
}
