//! Hostile input, generated: schemathesis derives thousands of requests from the engine's own
//! `/openapi.json` (boundary values, wrong types, missing and extra fields, odd headers) and
//! checks every answer: no 5xx, every status and content type documented (errors are
//! problem+json), bodies match their schemas. The engine's log must show no panic.

use std::time::Duration;

use crate::helpers::TestDatabase;
use crate::kafka::EngineProcess;
use crate::observability::tools::{SCHEMATHESIS, output_text, run};

/// Fixed by default so a CI run is reproducible; `SCHEMATHESIS_SEED=random` explores.
const DEFAULT_SEED: &str = "20261125";

#[tokio::test]
async fn generated_requests_never_get_a_server_error_or_an_undocumented_answer() {
    let db = TestDatabase::new();
    let engine = EngineProcess::serve(&db, &[("SEED_DEMO_DATA", "true".into())]).await;
    let mut command = SCHEMATHESIS.command();
    command
        .arg("run")
        .arg(engine.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
            "--max-examples",
            &std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "60".into()),
            "--request-timeout",
            "10",
            "--no-color",
        ])
        // It keeps a cache directory where it runs: not in the repository.
        .current_dir(std::env::temp_dir())
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1");
    match std::env::var("SCHEMATHESIS_SEED").as_deref() {
        Ok("random") => {}
        Ok(seed) => {
            command.args(["--seed", seed]);
        }
        Err(_) => {
            command.args(["--seed", DEFAULT_SEED]);
        }
    }
    let output = run(command, Duration::from_secs(240));
    let report = output_text(&output);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    let generated: u64 = report
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_suffix(" passed")?
                .split(" generated")
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no test-case count in the report:\n{report}"));
    assert!(
        generated >= 500,
        "only {generated} requests generated:\n{report}"
    );

    let log = engine.log_text();
    assert!(!log.contains("panicked"), "the engine panicked:\n{log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" ERROR "))
        // actix reports requests with malformed header bytes at ERROR; they get a 400.
        .filter(|line| !line.contains("request parse error"))
        .collect();
    assert!(
        errors.is_empty(),
        "ERROR lines in the engine's log:\n{}",
        errors.join("\n")
    );
}
