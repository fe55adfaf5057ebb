use std::time::Duration;

use anyhow::{Context, bail};
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::r2d2::{self, ConnectionManager, CustomizeConnection};
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::DbError;

pub type DbPool = r2d2::Pool<ConnectionManager<MysqlConnection>>;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Pool sizing and timeouts; r2d2's defaults (30 s checkout) are far too long for a 503 path.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_size: u32,
    pub checkout_timeout: Duration,
    /// How long a statement waits for a row lock before failing (InnoDB's default is 50 s).
    pub lock_wait_timeout_s: u32,
}

/// Every connection talks UTC and reads committed data.
#[derive(Debug)]
struct SessionSetup {
    lock_wait_timeout_s: u32,
}

impl CustomizeConnection<MysqlConnection, r2d2::Error> for SessionSetup {
    fn on_acquire(&self, conn: &mut MysqlConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .and_then(|()| {
                conn.batch_execute(&format!(
                    "SET SESSION time_zone = '+00:00', SESSION innodb_lock_wait_timeout = {}",
                    self.lock_wait_timeout_s
                ))
            })
            .map_err(r2d2::Error::QueryError)
    }
}

/// Creates the database named in `url` if it does not exist yet.
pub fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (server_url, name) = split_database_url(url)?;
    let mut conn = MysqlConnection::establish(&server_url).with_context(|| {
        format!(
            "cannot connect to the database server at {}",
            redact(&server_url)
        )
    })?;
    diesel::sql_query(format!(
        "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .execute(&mut conn)
    .with_context(|| format!("cannot create database {name}"))?;
    Ok(())
}

/// Applies the embedded migrations that have not run yet.
pub fn run_migrations(url: &str) -> anyhow::Result<()> {
    let mut conn = MysqlConnection::establish(url)
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!(e))
        .context("running migrations")?;
    Ok(())
}

/// Builds the connection pool. Does not fail when the database is down: requests then answer 503
/// and the pool reconnects when it is back.
pub fn build_pool(url: &str, settings: &PoolSettings) -> DbPool {
    let manager = ConnectionManager::<MysqlConnection>::new(url);
    r2d2::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(settings.max_size.min(4)))
        .connection_timeout(settings.checkout_timeout)
        // A checked-out connection is pinged first: after a database restart, dead connections
        // are replaced instead of failing one request each forever.
        .test_on_check_out(true)
        .connection_customizer(Box::new(SessionSetup {
            lock_wait_timeout_s: settings.lock_wait_timeout_s,
        }))
        .build_unchecked(manager)
}

fn split_database_url(url: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = url.strip_prefix("mysql://") else {
        bail!("the database URL must start with mysql://");
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let name = path.split('?').next().unwrap_or_default();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        bail!("the database URL must name a database made of letters, digits and underscores");
    }
    Ok((format!("mysql://{authority}"), name.to_owned()))
}

/// The URL without its password, for logs and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The pool plus a way to run blocking Diesel code off the async executor threads.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
}

impl Db {
    pub fn new(pool: DbPool) -> Self {
        Db { pool }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Runs `f` with a pooled connection on tokio's blocking thread pool, carrying the span.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut MysqlConnection) -> Result<T, diesel::result::Error> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.get().map_err(DbError::Unavailable)?;
            f(&mut conn).map_err(DbError::from)
        })
        .await
        .map_err(|_| DbError::TaskFailed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_split_and_redacted() {
        let (server, name) = split_database_url("mysql://root:pw@127.0.0.1:3306/pe_1?x=y").unwrap();
        assert_eq!(server, "mysql://root:pw@127.0.0.1:3306");
        assert_eq!(name, "pe_1");
        assert!(split_database_url("mysql://root@host/").is_err());
        assert!(split_database_url("mysql://root@host/a;drop").is_err());
        assert!(split_database_url("postgres://x/y").is_err());
        assert_eq!(
            redact("mysql://root:secret@h:1/db"),
            "mysql://root:***@h:1/db"
        );
        assert_eq!(redact("mysql://root@h:1/db"), "mysql://root@h:1/db");
    }
}
