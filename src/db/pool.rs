use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::mysql::MysqlConnection;
use diesel::r2d2::{self, ConnectionManager, CustomizeConnection, ManageConnection};
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DatabaseUrl, DbError};

pub type DbPool = r2d2::Pool<Manager>;

/// How long after a connection last served a request without error it is handed out again
/// without a check.
const PROVEN_FOR: Duration = Duration::from_secs(1);

/// A pooled connection, and when it last answered.
pub struct PooledMysql {
    conn: MysqlConnection,
    proven_at: Instant,
}

/// Diesel's connection manager, except that a connection is checked (`SELECT 1`, a round trip)
/// at checkout only if it has not answered for [`PROVEN_FOR`]. Under load every connection is
/// busy all the time, and the check was one of the five round trips of each group commit. After
/// a database restart a connection that answered in the last second fails one statement (its
/// request gets a retryable 503) and is checked, and replaced, at its next checkout.
#[derive(Debug)]
pub struct Manager {
    inner: ConnectionManager<MysqlConnection>,
}

impl ManageConnection for Manager {
    type Connection = PooledMysql;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PooledMysql, r2d2::Error> {
        Ok(PooledMysql {
            conn: self.inner.connect()?,
            proven_at: Instant::now(),
        })
    }

    fn is_valid(&self, pooled: &mut PooledMysql) -> Result<(), r2d2::Error> {
        if pooled.proven_at.elapsed() < PROVEN_FOR {
            return Ok(());
        }
        self.inner.is_valid(&mut pooled.conn)?;
        pooled.proven_at = Instant::now();
        Ok(())
    }

    fn has_broken(&self, pooled: &mut PooledMysql) -> bool {
        self.inner.has_broken(&mut pooled.conn)
    }
}

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Pool sizing and timeouts; r2d2's defaults (30 s checkout) are far too long for a 503 path.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_size: u32,
    pub checkout_timeout: Duration,
    /// How long a statement waits for a row lock before failing (InnoDB's default is 50 s);
    /// whole seconds.
    pub lock_wait_timeout: Duration,
}

/// Every connection talks UTC, reads committed data and, on Galera, sees every committed write.
#[derive(Debug)]
struct SessionSetup {
    lock_wait_timeout_s: u64,
}

impl CustomizeConnection<PooledMysql, r2d2::Error> for SessionSetup {
    fn on_acquire(&self, pooled: &mut PooledMysql) -> Result<(), r2d2::Error> {
        let conn = &mut pooled.conn;
        conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .and_then(|()| {
                // On a Galera cluster, a read (and BEGIN) first waits until the node has applied
                // every write the cluster committed before it (`wsrep_sync_wait`): a state load
                // or lease read then never decides on a row older than one committed through
                // another node. Written as a MariaDB executable comment, so MySQL skips it;
                // MariaDB without Galera accepts it and does nothing.
                conn.batch_execute(&format!(
                    "SET SESSION time_zone = '+00:00', SESSION innodb_lock_wait_timeout = {} \
                     /*M!, SESSION wsrep_sync_wait = 1 */",
                    self.lock_wait_timeout_s
                ))
            })
            .map_err(r2d2::Error::QueryError)
    }
}

/// Creates the database named in `url` if it does not exist yet.
pub fn ensure_database(url: &DatabaseUrl) -> anyhow::Result<()> {
    let (server_url, name) = url.split()?;
    let mut conn = MysqlConnection::establish(server_url.expose_secret())
        .with_context(|| format!("cannot connect to the database server at {server_url}"))?;
    diesel::sql_query(format!(
        "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .execute(&mut conn)
    .with_context(|| format!("cannot create database {name}"))?;
    Ok(())
}

/// Applies the embedded migrations that have not run yet.
pub fn run_migrations(url: &DatabaseUrl) -> anyhow::Result<()> {
    let mut conn = MysqlConnection::establish(url.expose_secret())
        .with_context(|| format!("cannot connect to {url}"))?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!(e))
        .context("running migrations")?;
    Ok(())
}

/// The embedded migrations the database has not applied (read only: unlike Diesel's harness,
/// this never creates the migrations table). A database without that table has applied none.
pub fn missing_migrations(conn: &mut MysqlConnection) -> anyhow::Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let applied: Vec<String> =
        match diesel::sql_query("SELECT version FROM __diesel_schema_migrations").load(conn) {
            Ok(rows) => rows.into_iter().map(|row: Applied| row.version).collect(),
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("doesn't exist") =>
            {
                Vec::new()
            }
            Err(error) => return Err(error).context("reading the applied migrations"),
        };
    let embedded = MigrationSource::<diesel::mysql::Mysql>::migrations(&MIGRATIONS)
        .map_err(|e| anyhow::anyhow!(e))
        .context("listing the embedded migrations")?;
    Ok(embedded
        .iter()
        .filter(|migration| !applied.contains(&migration.name().version().to_string()))
        .map(|migration| migration.name().to_string())
        .collect())
}

/// Builds the connection pool. Does not fail when the database is down: requests then answer 503
/// and the pool reconnects when it is back.
pub fn build_pool(url: &DatabaseUrl, settings: &PoolSettings) -> DbPool {
    let manager = Manager {
        inner: ConnectionManager::<MysqlConnection>::new(url.expose_secret()),
    };
    r2d2::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(settings.max_size.min(4)))
        .connection_timeout(settings.checkout_timeout)
        // A checked-out connection that has not answered for a while is pinged first: after a
        // database restart, dead connections are replaced instead of failing one request each
        // forever (see `Manager`).
        .test_on_check_out(true)
        .connection_customizer(Box::new(SessionSetup {
            lock_wait_timeout_s: settings.lock_wait_timeout.as_secs(),
        }))
        .build_unchecked(manager)
}

/// How long requests fail fast after the database was found unreachable, before one of them
/// probes it again.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The pool plus a way to run blocking Diesel code off the async executor threads.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    breaker: Arc<Breaker>,
}

/// Fails fast while the database is unreachable. Without it every request of an outage waited
/// a whole checkout timeout, and a buyer's queued commands one after another, up to the request
/// timeout. When a checkout times out while the pool holds fewer connections than its size
/// (r2d2 could not open one in all that time: not saturation, the database is away), the
/// breaker opens: requests answer at once (`DbError::Down`, a 503) and every [`PROBE_EVERY`] one
/// request, alone, tries the database; its success closes the breaker.
#[derive(Debug)]
struct Breaker {
    epoch: Instant,
    /// Until when (ms since `epoch`) requests fail fast; 0 when closed.
    open_until_ms: AtomicU64,
    /// How long a probe may take (the checkout timeout): meanwhile the others still fail fast.
    probe_for: Duration,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether this request may use the database: the breaker is closed, or it was open and
    /// this request claimed the next probe.
    fn admit(&self) -> bool {
        let open_until = self.open_until_ms.load(Ordering::Acquire);
        if open_until == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= open_until
            && self
                .open_until_ms
                .compare_exchange(
                    open_until,
                    now + self.probe_for.as_millis() as u64 + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn open(&self) {
        if self.open_until_ms.load(Ordering::Acquire) == 0 {
            tracing::warn!(
                "the database is unreachable: failing fast, probing every {PROBE_EVERY:?}"
            );
        }
        let until = self.now_ms() + PROBE_EVERY.as_millis() as u64 + 1;
        self.open_until_ms.store(until, Ordering::Release);
    }

    fn close(&self) {
        if self.open_until_ms.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!("the database answers again");
        }
    }
}

impl Db {
    pub fn new(pool: DbPool) -> Self {
        let probe_for = pool.connection_timeout();
        Db {
            pool,
            breaker: Arc::new(Breaker {
                epoch: Instant::now(),
                open_until_ms: AtomicU64::new(0),
                probe_for,
            }),
        }
    }

    /// Runs `f` with a pooled connection on tokio's blocking thread pool, carrying the span.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut MysqlConnection) -> Result<T, diesel::result::Error> + Send + 'static,
    {
        if !self.breaker.admit() {
            return Err(DbError::Down);
        }
        let db = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            db.checked_out(f)
        })
        .await
        .map_err(|_| DbError::TaskFailed)?
    }

    /// Runs `f` with a pooled connection on this thread, blocking it: only for a thread that
    /// has nothing else to do meanwhile (the coordinator's).
    pub fn run_here<T>(
        &self,
        f: impl FnOnce(&mut MysqlConnection) -> Result<T, diesel::result::Error>,
    ) -> Result<T, DbError> {
        if !self.breaker.admit() {
            return Err(DbError::Down);
        }
        self.checked_out(f)
    }

    fn checked_out<T>(
        &self,
        f: impl FnOnce(&mut MysqlConnection) -> Result<T, diesel::result::Error>,
    ) -> Result<T, DbError> {
        let mut conn = match self.pool.get() {
            Ok(conn) => conn,
            Err(error) => {
                if self.pool.state().connections < self.pool.max_size() {
                    self.breaker.open();
                }
                return Err(DbError::Unavailable(error));
            }
        };
        self.breaker.close();
        let result = f(&mut conn.conn);
        if result.is_ok() {
            conn.proven_at = Instant::now();
        }
        result.map_err(DbError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_breaker_fails_fast_and_lets_one_probe_through_per_interval() {
        let breaker = Breaker {
            epoch: Instant::now(),
            open_until_ms: AtomicU64::new(0),
            probe_for: Duration::from_secs(60),
        };
        assert!(
            breaker.admit() && breaker.admit(),
            "closed: everyone passes"
        );
        breaker.open();
        assert!(!breaker.admit(), "open: requests fail fast");
        std::thread::sleep(PROBE_EVERY + Duration::from_millis(20));
        assert!(breaker.admit(), "after the interval one request probes");
        assert!(
            !breaker.admit(),
            "while it probes the others still fail fast"
        );
        breaker.close();
        assert!(
            breaker.admit() && breaker.admit(),
            "a successful probe closes it"
        );
    }
}
