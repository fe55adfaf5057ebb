//! The binary: `payment-engine audit` against the test's database, its exit codes and output.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use super::{paid, plant};
use crate::helpers::{TestDatabase, server_url, spawn_app};
use crate::kafka::{engine_command, free_port};
use crate::observability::tools::output_text;

/// Runs `payment-engine audit ARGS...` with `DATABASE_URL` = `url`.
async fn run_audit(db: &TestDatabase, url: &str, args: &[&str]) -> Output {
    let mut command = engine_command(db);
    command.env("DATABASE_URL", url).arg("audit").args(args);
    actix_web::rt::task::spawn_blocking(move || {
        crate::observability::tools::run(command, Duration::from_secs(120))
    })
    .await
    .expect("the audit task panicked")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "--json must print one JSON document ({e}): {}",
            output_text(output)
        )
    })
}

#[actix_web::test]
async fn the_binary_exits_0_on_clean_books_and_1_naming_what_it_found() {
    let app = spawn_app().await;
    let one = paid(&app, 1).await;
    let two = paid(&app, 2).await;
    let url = app.db.url();

    let clean = run_audit(&app.db, &url, &["--json"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", output_text(&clean));
    let report = json_of(&clean);
    assert_eq!(report["clean"], true);
    assert_eq!(report["checked"]["balances"], 2);
    assert_eq!(report["checked"]["payments"], 2);
    assert_eq!(report["checked"]["orders"], 4);
    assert_eq!(report["checked"]["ledgerEntries"], 4);
    assert_eq!(report["checked"]["events"], 2);
    assert_eq!(report["findingsTotal"], 0);
    assert_eq!(
        report["findingCounts"]["balance_mismatch"], 0,
        "every kind is listed"
    );
    let human = run_audit(&app.db, &url, &[]).await;
    assert_eq!(human.status.code(), Some(0), "{}", output_text(&human));
    assert!(String::from_utf8_lossy(&human.stdout).contains("clean: no findings"));

    let mut conn = app.db_conn();
    plant(
        &mut conn,
        &format!(
            "UPDATE balances SET balance = 5 WHERE buyer_id = {}",
            two.id
        ),
    );
    let found = run_audit(&app.db, &url, &["--json", "--chunk-buyers", "1"]).await;
    assert_eq!(found.status.code(), Some(1), "{}", output_text(&found));
    let report = json_of(&found);
    assert_eq!(report["clean"], false);
    assert_eq!(
        report["chunks"], 3,
        "buyer 1, buyer 2, and the rest of the id space"
    );
    assert_eq!(report["findingCounts"]["balance_mismatch"], 1);
    let finding = &report["findings"][0];
    assert_eq!(finding["kind"], "balance_mismatch");
    assert_eq!(finding["buyerId"], two.id);
    assert!(
        finding["detail"].as_str().unwrap().contains("balance 5"),
        "{finding}"
    );
    let human = run_audit(&app.db, &url, &[]).await;
    assert_eq!(human.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&human.stdout).contains("balance_mismatch (buyer 2)"));

    let only_one = run_audit(&app.db, &url, &["--json", "--buyer", &one.id.to_string()]).await;
    assert_eq!(
        only_one.status.code(),
        Some(0),
        "{}",
        output_text(&only_one)
    );
    assert_eq!(json_of(&only_one)["checked"]["balances"], 1);
    assert_eq!(json_of(&only_one)["buyer"], one.id);
}

#[actix_web::test]
async fn the_binary_exits_2_when_it_cannot_run() {
    let db = TestDatabase::new();
    let host = server_url();
    let unreachable = format!("mysql://root@127.0.0.1:{}/{}", free_port(), db.name());
    let down = run_audit(&db, &unreachable, &["--json"]).await;
    assert_eq!(down.status.code(), Some(2), "{}", output_text(&down));
    assert!(String::from_utf8_lossy(&down.stderr).contains("could not run"));
    assert!(down.stdout.is_empty(), "no report when it could not run");

    let malformed = run_audit(&db, "not a url", &[]).await;
    assert_eq!(
        malformed.status.code(),
        Some(2),
        "{}",
        output_text(&malformed)
    );

    // A database without the engine's tables: the audit refuses rather than report findings.
    let mut admin = crate::helpers::admin_conn();
    plant(&mut admin, &format!("CREATE DATABASE `{}`", db.name()));
    let empty = run_audit(&db, &format!("{host}/{}", db.name()), &[]).await;
    assert_eq!(empty.status.code(), Some(2), "{}", output_text(&empty));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("lacks migrations"));
}

#[actix_web::test]
async fn the_password_never_appears_in_the_audits_output() {
    let db = TestDatabase::new();
    let url = format!(
        "mysql://root:s3cret-pw@127.0.0.1:{}/{}",
        free_port(),
        db.name()
    );
    let output = run_audit(&db, &url, &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        !output_text(&output).contains("s3cret-pw"),
        "{}",
        output_text(&output)
    );
}
