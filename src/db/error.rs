use diesel::r2d2;

/// A failure to read or write the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had within the checkout timeout: the database is down or saturated.
    #[error("no database connection available")]
    Unavailable(#[source] r2d2::PoolError),
    /// The database answered with an error (connection lost, lock wait timeout, deadlock, ...).
    #[error("database error")]
    Database(#[source] diesel::result::Error),
    /// Something the engine did wrong (a bug): bad SQL, a row that does not deserialize.
    #[error("database query failed unexpectedly")]
    Internal(#[source] diesel::result::Error),
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

impl From<diesel::result::Error> for DbError {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::Error as E;
        match error {
            E::DatabaseError(..) | E::BrokenTransactionManager | E::AlreadyInTransaction => {
                DbError::Database(error)
            }
            other => DbError::Internal(other),
        }
    }
}

impl DbError {
    /// Whether the failure is the database's state (retry later) rather than an engine bug.
    pub fn is_transient(&self) -> bool {
        !matches!(self, DbError::Internal(_))
    }
}
