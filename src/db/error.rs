//! The database layer's error, and the one place that decides what a failure means: the
//! database's state (retry later, 503) or a bug of the engine (500).

use diesel::r2d2;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A failure to read or write the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had within the checkout timeout: the database is down or saturated.
    #[error("no database connection available")]
    Unavailable(#[source] r2d2::PoolError),
    /// The database could not serve the statement now (connection lost, lock wait timeout,
    /// deadlock, server shutting down, ...): the same statement may succeed later.
    #[error("database error")]
    Database(#[source] DieselError),
    /// Something the engine did wrong (a bug): bad SQL, an unknown column, a constraint it did
    /// not expect to meet, a row that does not deserialize.
    #[error("database query failed unexpectedly")]
    Internal(#[source] DieselError),
    /// The database was found unreachable moments ago: failing fast until the next probe (see
    /// `Db::run`).
    #[error("the database is unreachable (failing fast until the next probe)")]
    Down,
    /// A concurrent attempt at the same work failed just now (see `IdAllocator`): rather than
    /// queue another attempt, this one fails as that one did.
    #[error("the database failed a concurrent attempt just now")]
    FailedConcurrently,
    /// The blocking task running the query was lost (panicked or cancelled).
    #[error("database task failed")]
    TaskFailed,
}

/// What a database failure means for the request that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database's state: retry later (503 with Retry-After).
    Transient,
    /// The engine's own fault: a bug (500, opaque to the client).
    Bug,
}

impl From<DieselError> for DbError {
    fn from(error: DieselError) -> Self {
        if is_transient(&error) {
            DbError::Database(error)
        } else {
            DbError::Internal(error)
        }
    }
}

impl DbError {
    /// The class of this failure, without logging it (see [`DbError::classify`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            DbError::Internal(_) => ErrorClass::Bug,
            DbError::Unavailable(_)
            | DbError::Database(_)
            | DbError::Down
            | DbError::FailedConcurrently
            | DbError::TaskFailed => ErrorClass::Transient,
        }
    }

    /// Classifies the failure of `what` (e.g. "loading buyer state") and logs it, with its
    /// cause, once: a warning if transient, an error if a bug. Callers only map the class to
    /// their own error; they do not log it again.
    pub fn classify(&self, what: &str) -> ErrorClass {
        let class = self.class();
        let cause = Causes(self);
        match class {
            ErrorClass::Transient => {
                tracing::warn!(what, error = %self, cause = %cause, "database unavailable");
            }
            ErrorClass::Bug => {
                tracing::error!(what, error = %self, cause = %cause, "database query failed unexpectedly");
            }
        }
        class
    }
}

/// The chain of sources below an error, `: `-separated (empty if it has none).
struct Causes<'a>(&'a DbError);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut source = std::error::Error::source(self.0);
        let mut first = true;
        while let Some(error) = source {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{error}")?;
            first = false;
            source = error.source();
        }
        Ok(())
    }
}

/// Whether `error` is the database's state rather than the statement's fault.
///
/// Anything not known to be transient is a bug: a statement the server rejects (a syntax
/// error, an unknown column or table, a constraint the caller did not handle) fails the same
/// way on every retry, so answering 503 would only have clients retry it forever. The
/// constraint violations the engine expects (a duplicate Idempotency-Key, a stale fence) are
/// handled by the writer before they reach here.
fn is_transient(error: &DieselError) -> bool {
    use DatabaseErrorKind as Kind;
    match error {
        DieselError::DatabaseError(
            Kind::SerializationFailure | Kind::ReadOnlyTransaction | Kind::ClosedConnection,
            _,
        ) => true,
        DieselError::DatabaseError(
            Kind::UniqueViolation
            | Kind::ForeignKeyViolation
            | Kind::NotNullViolation
            | Kind::CheckViolation
            | Kind::RestrictViolation
            | Kind::ExclusionViolation,
            _,
        ) => false,
        DieselError::DatabaseError(_, info) => is_transient_message(info.message()),
        // A ROLLBACK that failed after a failed statement: the connection is gone.
        DieselError::BrokenTransactionManager => true,
        DieselError::RollbackErrorOnCommit { commit_error, .. } => is_transient(commit_error),
        _ => false,
    }
}

/// Conflicts after which the server has rolled the whole transaction back, or the engine has
/// (it rolls back on any failed statement): ER_LOCK_DEADLOCK (1213: a deadlock, or on Galera a
/// certification failure at COMMIT, whose message MariaDB words as its own) and
/// ER_LOCK_WAIT_TIMEOUT (1205).
const CONFLICT_MESSAGES: [&str; 3] = [
    "deadlock found",
    "wsrep detected deadlock/conflict",
    "lock wait timeout exceeded",
];

impl DbError {
    /// The transaction met a conflict and was rolled back whole: nothing of it committed, and
    /// running it again is safe (its writes are fenced on the rows they were decided on).
    pub fn is_conflict(&self) -> bool {
        match self {
            DbError::Database(DieselError::DatabaseError(_, info)) => {
                let message = info.message().to_ascii_lowercase();
                CONFLICT_MESSAGES
                    .iter()
                    .any(|pattern| message.contains(pattern))
            }
            _ => false,
        }
    }
}

/// Transient errors Diesel reports without a kind, recognised by their message (Diesel keeps
/// the server's or the client library's message, not the error number). The spellings of both
/// libmysqlclient and libmariadb are covered.
const TRANSIENT_MESSAGES: [&str; 20] = [
    // Client: CR_CONN_HOST_ERROR, CR_CONNECTION_ERROR, CR_UNKNOWN_HOST ("Can't connect to ...",
    // "Unknown MySQL server host").
    "can't connect to",
    "unknown mysql server host",
    "unknown server host",
    // Client: CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED, CR_SERVER_GONE_ERROR.
    "lost connection",
    "gone away",
    // Client: CR_OUT_OF_MEMORY; server: ER_OUTOFMEMORY, ER_OUT_OF_RESOURCES.
    "out of memory",
    "out of resources",
    // Server: ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS.
    "too many connections",
    "has more than 'max_user_connections'",
    // Server: ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED (MariaDB), ER_QUERY_INTERRUPTED (KILL
    // QUERY, max_statement_time), ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8).
    "shutdown in progress",
    "connection was killed",
    "query execution was interrupted",
    "disconnected by the server",
    // Server: ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
    "lock wait timeout exceeded",
    "deadlock found",
    // Server: ER_NET_READ_ERROR and friends ("Got an error reading communication packets").
    "communication packets",
    // Server: ER_OPTION_PREVENTS_STATEMENT for --read-only (a failover in progress).
    "--read-only",
    // Server: ER_NEED_REPREPARE (a table's definition changed under a cached statement).
    "needs to be re-prepared",
    // Galera: a certification conflict (1213, in this wording when a replicated write aborted
    // the transaction), and a node out of the primary component refusing statements (1047).
    "wsrep detected deadlock/conflict",
    "wsrep has not yet prepared node",
];

fn is_transient_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    TRANSIENT_MESSAGES
        .iter()
        .any(|pattern| message.contains(pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DbError {
        DbError::from(DieselError::DatabaseError(
            kind,
            Box::new(message.to_string()),
        ))
    }

    #[test]
    fn a_sql_syntax_error_is_a_bug() {
        let error = database_error(
            DatabaseErrorKind::Unknown,
            "You have an error in your SQL syntax; check the manual that corresponds to your \
             MariaDB server version for the right syntax to use near 'FORM orders' at line 1",
        );
        assert!(matches!(error, DbError::Internal(_)), "{error:?}");
        assert_eq!(error.class(), ErrorClass::Bug);
    }

    #[test]
    fn statements_the_server_rejects_are_bugs() {
        for message in [
            "Unknown column 'nope' in 'field list'",
            "Table 'pe.nope' doesn't exist",
            "Incorrect datetime value: 'x' for column `pe`.`orders`.`created_at` at row 1",
            "Data too long for column 'kind' at row 1",
        ] {
            let error = database_error(DatabaseErrorKind::Unknown, message);
            assert_eq!(error.class(), ErrorClass::Bug, "{message}");
        }
        let unexpected_duplicate = database_error(
            DatabaseErrorKind::UniqueViolation,
            "Duplicate entry '7' for key 'PRIMARY'",
        );
        assert_eq!(unexpected_duplicate.class(), ErrorClass::Bug);
        assert_eq!(
            DbError::from(DieselError::NotFound).class(),
            ErrorClass::Bug
        );
    }

    #[test]
    fn a_lost_connection_a_lock_wait_and_a_deadlock_are_transient() {
        for message in [
            "Lost connection to server during query",
            "Lost connection to MySQL server during query",
            "Server has gone away",
            "MySQL server has gone away",
            "Can't connect to server on '127.0.0.1' (111)",
            "Lock wait timeout exceeded; try restarting transaction",
            "Connection was killed",
            "Server shutdown in progress",
            "WSREP has not yet prepared node for application use",
            "Too many connections",
        ] {
            let error = database_error(DatabaseErrorKind::Unknown, message);
            assert!(matches!(error, DbError::Database(_)), "{message}");
            assert_eq!(error.class(), ErrorClass::Transient, "{message}");
        }
        let deadlock = database_error(
            DatabaseErrorKind::SerializationFailure,
            "Deadlock found when trying to get lock; try restarting transaction",
        );
        assert_eq!(deadlock.class(), ErrorClass::Transient);
        assert_eq!(
            DbError::from(DieselError::BrokenTransactionManager).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn deadlocks_lock_waits_and_certification_failures_are_conflicts_worth_one_more_run() {
        for (kind, message) in [
            (
                DatabaseErrorKind::SerializationFailure,
                "Deadlock found when trying to get lock; try restarting transaction",
            ),
            (
                DatabaseErrorKind::Unknown,
                "WSREP detected deadlock/conflict and aborted the transaction. Try restarting the transaction",
            ),
            (
                DatabaseErrorKind::Unknown,
                "Lock wait timeout exceeded; try restarting transaction",
            ),
        ] {
            let error = database_error(kind, message);
            assert!(error.is_conflict(), "{message}");
            assert_eq!(error.class(), ErrorClass::Transient, "{message}");
        }
        for message in [
            "Lost connection to server during query",
            "Server has gone away",
        ] {
            assert!(!database_error(DatabaseErrorKind::Unknown, message).is_conflict());
        }
        let syntax = database_error(
            DatabaseErrorKind::Unknown,
            "You have an error in your SQL syntax",
        );
        assert!(!syntax.is_conflict());
    }

    #[test]
    fn a_failed_commit_whose_rollback_failed_too_is_classified_by_the_commit() {
        let error = DbError::from(DieselError::RollbackErrorOnCommit {
            rollback_error: Box::new(DieselError::BrokenTransactionManager),
            commit_error: Box::new(DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new("Server has gone away".to_string()),
            )),
        });
        assert_eq!(error.class(), ErrorClass::Transient);
    }

    #[test]
    fn failures_outside_a_statement_are_transient() {
        for error in [
            DbError::Down,
            DbError::FailedConcurrently,
            DbError::TaskFailed,
        ] {
            assert_eq!(error.class(), ErrorClass::Transient, "{error:?}");
        }
    }

    #[test]
    fn the_logged_cause_is_the_chain_below_the_error() {
        let error = database_error(DatabaseErrorKind::Unknown, "Server has gone away");
        assert_eq!(Causes(&error).to_string(), "Server has gone away");
        assert_eq!(Causes(&DbError::Down).to_string(), "");
    }
}
