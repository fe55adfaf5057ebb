//! The group-commit transaction in one round trip per `BEGIN` and `COMMIT`.
//!
//! Diesel's transaction manager sends `BEGIN` and `COMMIT` as text through `batch_execute`,
//! which on MySQL switches multi-statement mode on before and off after every call: three round
//! trips each, six per batch, more than a charge batch's own two statements (four round trips).
//! Every round trip wakes the writer's thread and a MariaDB thread, and on two shared cores
//! those wake-ups were most of the database's cost per charge. Here the three statements are
//! prepared once per connection and kept in Diesel's statement cache: one round trip each.
//!
//! MySQL (unlike MariaDB) refuses `BEGIN` in the prepared-statement protocol ("not supported in
//! the prepared statement protocol yet"): on that refusal the engine falls back, for the rest of
//! its life, to Diesel's transaction.
//!
//! The transaction runs outside Diesel's transaction manager, so the body must not use
//! `Connection::transaction` (its `BEGIN` would commit ours implicitly). If neither `ROLLBACK`
//! nor anything else can be sent on the connection after a failure, it is killed, so that the
//! pool's check at the next checkout discards it rather than hand out a connection that may
//! still hold half a transaction.

use std::sync::atomic::{AtomicBool, Ordering};

use diesel::mysql::{Mysql, MysqlConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::Error as DieselError;

/// A fixed statement, cached by its SQL.
#[derive(Debug, Clone, Copy)]
struct Fixed(&'static str);

impl QueryId for Fixed {
    type QueryId = ();
    // Not identified by type (the three share it): Diesel caches it by its SQL.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Mysql> for Fixed {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

impl RunQueryDsl<MysqlConnection> for Fixed {}

const BEGIN: Fixed = Fixed("BEGIN");
const COMMIT: Fixed = Fixed("COMMIT");
const ROLLBACK: Fixed = Fixed("ROLLBACK");

/// Set once the server refused a prepared `BEGIN` (MySQL).
static TEXT_TRANSACTIONS: AtomicBool = AtomicBool::new(false);

/// Runs `body` in a transaction: committed if it returns `Ok`, rolled back otherwise. An
/// error of `COMMIT` itself leaves the outcome unknown, as with any database.
pub(super) fn transaction<T, E>(
    conn: &mut MysqlConnection,
    body: impl FnOnce(&mut MysqlConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DieselError>,
{
    if TEXT_TRANSACTIONS.load(Ordering::Relaxed) {
        return conn.transaction(body);
    }
    if let Err(error) = BEGIN.execute(conn) {
        if !refused_as_prepared(&error) {
            return Err(error.into());
        }
        tracing::info!(
            "the database refuses BEGIN as a prepared statement; using Diesel's transactions"
        );
        TEXT_TRANSACTIONS.store(true, Ordering::Relaxed);
        return conn.transaction(body);
    }
    match body(conn) {
        Ok(value) => match COMMIT.execute(conn) {
            Ok(_) => Ok(value),
            Err(error) => {
                roll_back(conn);
                Err(error.into())
            }
        },
        Err(error) => {
            roll_back(conn);
            Err(error)
        }
    }
}

fn roll_back(conn: &mut MysqlConnection) {
    if let Err(error) = ROLLBACK.execute(conn) {
        tracing::warn!(error = %error, "ROLLBACK failed; closing the connection");
        // The pool pings at checkout: a killed connection is discarded there.
        let _ = diesel::sql_query("KILL CONNECTION_ID()").execute(conn);
    }
}

/// MySQL's ER_UNSUPPORTED_PS (1295).
fn refused_as_prepared(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info)
        if info.message().contains("prepared statement protocol"))
}
