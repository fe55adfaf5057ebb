//! Drill 5: SIGTERM under load. The engine drains (readiness 503, every answer closes its
//! connection), stops accepting connections, answers every request it accepted (none gets a 5xx
//! or a reset), flushes the publisher and exits within drain + shutdown timeout; every
//! acknowledged request is in the database and every payment's event on the broker, with no
//! engine running. The clients keep sending through it all, as clients ignoring readiness do.

use std::time::{Duration, Instant};

use super::crash::{drill_topic, engine_env};
use super::load::{Load, LoadSpec};
use super::{Row, buyers, check_books, events_lost, fund, millis, outbox_backlog, scaled};
use crate::helpers::TestDatabase;
use crate::kafka::{EngineProcess, shared_brokers};

/// `SHUTDOWN_TIMEOUT_S` in [`engine_env`].
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// `SHUTDOWN_DRAIN_MS` in this drill.
const DRAIN: Duration = Duration::from_millis(1_000);

#[actix_web::test]
async fn drill_5_sigterm_under_load_answers_every_accepted_request_and_flushes_events() {
    let db = TestDatabase::new();
    let brokers = shared_brokers();
    let topic = drill_topic();
    let mut env = engine_env(&brokers, &topic);
    env.push(("SHUTDOWN_DRAIN_MS", DRAIN.as_millis().to_string()));
    let spec = LoadSpec {
        clients: 100,
        buyers: buyers(5_001, 50),
        pay_percent: 50,
        lifecycle_percent: 0,
        timeout: Duration::from_secs(30),
        follow_readiness: false,
    };
    // Even rounds: clients behind a balancer (they follow readiness); odd rounds: clients that
    // ignore it and keep sending until the listener closes.
    let rounds = scaled(4, 8);
    let mut exits = Vec::new();
    let mut naive_resets = Vec::new();
    let mut total = super::load::Outcome::default();
    for round in 0..rounds {
        let engine = EngineProcess::serve(&db, &env).await;
        if round == 0 {
            fund(&engine, &spec.buyers, 10_000_000).await;
        }
        let behind_balancer = round % 2 == 0;
        let spec = LoadSpec {
            follow_readiness: behind_balancer,
            ..spec.clone()
        };
        let load = Load::start(&engine.address, &spec);
        actix_web::rt::time::sleep(scaled(Duration::from_secs(2), Duration::from_secs(5))).await;
        let term_at = load.elapsed();
        engine.terminate();
        let termed = Instant::now();
        actix_web::rt::time::sleep(DRAIN / 4).await;
        let ready = engine.client.get(engine.url("/health/ready")).send().await;
        let ready = ready.map(|r| r.status().as_u16()).unwrap_or(0);
        assert_eq!(ready, 503, "round {round}: ready while draining");
        let status = engine
            .wait_exit(DRAIN + SHUTDOWN_TIMEOUT + Duration::from_secs(5))
            .await;
        let exited_after = termed.elapsed();
        let outcome = load.stop().await;
        let status = status.unwrap_or_else(|| {
            panic!(
                "round {round}: still running {exited_after:?} after SIGTERM: {}",
                engine.describe()
            )
        });
        assert!(status.success(), "round {round}: exit status {status}");
        assert!(
            exited_after <= DRAIN + SHUTDOWN_TIMEOUT + Duration::from_secs(2),
            "round {round}: exited {exited_after:?} after SIGTERM"
        );
        let server_errors: Vec<String> = outcome
            .samples
            .iter()
            .filter(|s| s.status >= 500)
            .map(|s| format!("{s:?}"))
            .take(5)
            .collect();
        assert!(
            server_errors.is_empty(),
            "round {round}: 5xx answers around SIGTERM: {server_errors:?}"
        );
        // No answer and not refused: a request written to a connection that closed under it.
        let unanswered: Vec<_> = outcome
            .samples
            .iter()
            .filter(|s| s.status == 0 && !s.refused)
            .collect();
        if behind_balancer {
            assert!(
                unanswered.is_empty(),
                "round {round}: requests sent behind a balancer went unanswered after SIGTERM at \
                 {term_at:?}: {:?} {:?}",
                &unanswered[..unanswered.len().min(5)],
                outcome.error_examples
            );
        } else {
            // Clients ignoring readiness can only lose a connection at the instant the listener
            // closes (one the kernel had queued but the engine never took), not while it drains.
            let closed_at = term_at + DRAIN;
            let early: Vec<_> = unanswered
                .iter()
                .filter(|s| s.sent_at + s.latency + Duration::from_millis(300) < closed_at)
                .collect();
            assert!(
                early.is_empty(),
                "round {round}: connections lost during the drain (listener closed at \
                 {closed_at:?}): {early:?}"
            );
            naive_resets.push(unanswered.len());
        }
        assert_eq!(
            outbox_backlog(&mut db.connect()),
            0,
            "round {round}: the publisher must flush every event before exiting"
        );
        eprintln!(
            "round {round} ({}): exited {exited_after:?} after SIGTERM; answers {:?}",
            if behind_balancer {
                "behind a balancer"
            } else {
                "ignoring readiness"
            },
            outcome.statuses()
        );
        exits.push(exited_after);
        total.merge(outcome);
    }

    let books = check_books(&db, &total);
    let (lost, _) = events_lost(&db, &brokers, &topic, Duration::from_secs(30)).await;
    exits.sort();
    Row {
        drill: "5 graceful shutdown (SIGTERM)",
        load: spec.describe(),
        faults: format!("{rounds} SIGTERMs"),
        books,
        events_lost: Some(lost),
        recovery: format!(
            "exited {} after SIGTERM (max)",
            millis(exits[exits.len() - 1])
        ),
        notes: format!(
            "behind a balancer no request failed; clients ignoring readiness lost {naive_resets:?} \
             connections at the instant the listener closed; outbox empty at exit; drain {}, \
             then timeout {}",
            millis(DRAIN),
            millis(SHUTDOWN_TIMEOUT)
        ),
    }
    .report_and_assert();
}
