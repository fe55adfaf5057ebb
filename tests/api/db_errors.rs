//! How database failures are classified (`DbError::class`), with the errors a real MariaDB
//! server and its client library produce: a statement the server rejects is a bug (500), the
//! database's state (a lock wait, a lost connection) is transient (503).

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Unsigned};
use payment_engine::db::{DbError, ErrorClass};

use crate::helpers::{TestDatabase, spawn_app};

/// A migrated throwaway database and a connection to it.
fn migrated_database() -> (TestDatabase, MysqlConnection) {
    let db = TestDatabase::new();
    let url = payment_engine::db::DatabaseUrl::from(db.url());
    payment_engine::db::ensure_database(&url).expect("creating the test database");
    payment_engine::db::run_migrations(&url).expect("migrating the test database");
    let conn = db.connect();
    (db, conn)
}

/// The error `sql` fails with on `conn`, as the engine's queries see it.
fn failure_of(conn: &mut MysqlConnection, sql: &str) -> DbError {
    match diesel::sql_query(sql).execute(conn) {
        Ok(rows) => panic!("{sql} succeeded ({rows} rows)"),
        Err(error) => DbError::from(error),
    }
}

fn connection_id(conn: &mut MysqlConnection) -> u64 {
    diesel::select(diesel::dsl::sql::<Unsigned<BigInt>>("CONNECTION_ID()"))
        .get_result(conn)
        .expect("CONNECTION_ID()")
}

#[test]
fn a_sql_syntax_error_is_classified_as_a_bug() {
    let (_db, mut conn) = migrated_database();
    let error = failure_of(&mut conn, "SELEKT id FORM orders");
    assert_eq!(error.class(), ErrorClass::Bug, "{error:?}");
}

#[test]
fn an_unknown_column_or_table_is_classified_as_a_bug() {
    let (_db, mut conn) = migrated_database();
    for sql in [
        "SELECT no_such_column FROM orders",
        "SELECT id FROM no_such_table",
    ] {
        let error = failure_of(&mut conn, sql);
        assert_eq!(error.class(), ErrorClass::Bug, "{sql}: {error:?}");
    }
}

#[test]
fn a_constraint_violation_the_caller_did_not_expect_is_classified_as_a_bug() {
    let (_db, mut conn) = migrated_database();
    let error = failure_of(
        &mut conn,
        "INSERT INTO id_blocks (name, next_value) VALUES ('orders', 1)",
    );
    assert_eq!(error.class(), ErrorClass::Bug, "{error:?}");
}

#[test]
fn a_lock_wait_timeout_is_classified_as_transient() {
    let (db, mut holder) = migrated_database();
    holder
        .batch_execute("BEGIN; SELECT * FROM id_blocks WHERE name = 'orders' FOR UPDATE")
        .expect("locking the row");
    let mut waiter = db.connect();
    waiter
        .batch_execute("SET SESSION innodb_lock_wait_timeout = 1")
        .expect("shortening the lock wait");

    let error = failure_of(
        &mut waiter,
        "UPDATE id_blocks SET next_value = next_value + 1 WHERE name = 'orders'",
    );
    assert_eq!(error.class(), ErrorClass::Transient, "{error:?}");
    holder.batch_execute("ROLLBACK").expect("releasing the row");
}

#[test]
fn a_connection_killed_under_the_engine_is_classified_as_transient() {
    let (db, mut victim) = migrated_database();
    let id = connection_id(&mut victim);
    db.connect()
        .batch_execute(&format!("KILL CONNECTION {id}"))
        .expect("killing the connection");
    // The server closes the socket right after the KILL; give it a moment to land.
    std::thread::sleep(Duration::from_millis(100));

    let error = failure_of(&mut victim, "SELECT id FROM orders");
    assert_eq!(error.class(), ErrorClass::Transient, "{error:?}");
}

/// End to end: a query the schema no longer matches (an unknown column) is the engine's bug,
/// answered 500, not a 503 that would have clients retry it forever.
#[actix_web::test]
async fn a_query_the_schema_does_not_match_answers_500_not_503() {
    let app = spawn_app().await;
    app.charge_ok(1, 10).await;
    diesel::sql_query("ALTER TABLE ledger_entries DROP COLUMN payment_id")
        .execute(&mut app.db_conn())
        .expect("dropping a column the engine reads");

    let response = app.get("/points/history/1").await;
    response.expect_problem(500, "internal_error");
}
