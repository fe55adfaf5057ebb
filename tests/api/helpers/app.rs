//! Engines under test: the database server, a throwaway database per test, the settings every
//! test engine starts from, and `spawn_app*`, which run an engine on port 0 on a thread of its own.

use std::sync::{Arc, Once};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use payment_engine::config::Settings;
use payment_engine::startup::Application;

// ---------------------------------------------------------------------------------------------
// Database server and throwaway databases
// ---------------------------------------------------------------------------------------------

/// The database server (no database in the path), from `TEST_DATABASE_SERVER_URL`.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306".to_string())
        .trim_end_matches('/')
        .to_string()
}

/// The server URL with other credentials: `mysql://USER@host:port`.
pub fn server_url_as(user: &str) -> String {
    let url = server_url();
    let rest = url.strip_prefix("mysql://").unwrap_or(&url);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("mysql://{user}@{host}")
}

/// A connection to the server as the configured (admin) user, with no default database.
pub fn admin_conn() -> MysqlConnection {
    MysqlConnection::establish(&server_url()).unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test database server {}: {e}",
            server_url()
        )
    })
}

/// A throwaway database named `pe_test_<uuid>`; dropped (`DROP DATABASE IF EXISTS`) when the
/// last clone goes away, panics included. Engines spawned on it share it.
#[derive(Clone)]
pub struct TestDatabase(Arc<DatabaseGuard>);

struct DatabaseGuard {
    name: String,
    /// The server it lives on (no database in the path).
    server: String,
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        TestDatabase::on(&server_url())
    }

    /// A throwaway database on another server than the suite's (a Galera cluster, say).
    pub fn on(server: &str) -> TestDatabase {
        TestDatabase(Arc::new(DatabaseGuard {
            name: format!("pe_test_{}", uuid::Uuid::new_v4().simple()),
            server: server.trim_end_matches('/').to_string(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn url(&self) -> String {
        format!("{}/{}", self.0.server, self.name())
    }

    pub fn connect(&self) -> MysqlConnection {
        MysqlConnection::establish(&self.url())
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name()))
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        drop_database(&self.server, &self.name);
    }
}

/// Blocking `DROP DATABASE IF EXISTS`; never panics (it runs in `Drop`, maybe while unwinding).
fn drop_database(server: &str, name: &str) {
    let mut conn = match MysqlConnection::establish(server) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("warning: cannot connect to drop test database {name}: {e}");
            return;
        }
    };
    // Do not hang forever on a metadata lock held by a server still shutting down.
    let _ = diesel::sql_query("SET SESSION lock_wait_timeout = 60").execute(&mut conn);
    if let Err(e) =
        diesel::sql_query(format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut conn)
    {
        eprintln!("warning: cannot drop test database {name}: {e}");
    }
}

fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Spawning engines
// ---------------------------------------------------------------------------------------------

/// A running engine on its own port, and the database it uses.
///
/// Each engine runs on a thread of its own with its own actix `System`, so that dropping the
/// `TestApp` (at the end of a test, or while a panic unwinds) can stop the HTTP server, let
/// `run_until_stopped` stop the actors, stop every arbiter the engine started, and wait for all
/// of it: no engine outlives its test holding database connections (under `cargo test`, which
/// runs every test in one process, leaked pools would soon exhaust the server's connections).
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub db_name: String,
    pub db: TestDatabase,
    pub client: reqwest::Client,
    pub handle: ServerHandle,
    pub settings: Settings,
    engine_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
        if let Some(thread) = self.engine_thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                eprintln!(
                    "warning: the engine on {} did not stop within 30 s",
                    self.db_name
                );
            }
        }
    }
}

/// The settings every test engine starts from.
pub fn test_settings(db: &TestDatabase) -> Settings {
    let mut settings = Settings::defaults();
    settings.database.url = db.url().into();
    settings.http.bind_addr = "127.0.0.1:0".parse().unwrap();
    settings.http.workers = 2;
    settings.buyers.actor_threads = 2;
    settings.database.pool_size = 6;
    // A graceful stop waits for open (even idle keep-alive) connections up to this long; tests
    // that stop engines must not wait the production default.
    settings.http.shutdown_timeout = Duration::from_secs(3);
    settings
}

/// An engine with the default settings on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// An engine on a fresh database, with settings adjusted by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on_with(&TestDatabase::new(), configure).await
}

/// Another engine on an existing database (a restart, or a second engine beside the first).
pub async fn spawn_app_on(db: &TestDatabase) -> TestApp {
    spawn_app_on_with(db, |_| {}).await
}

pub async fn spawn_app_on_with(
    db: &TestDatabase,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    init_tracing();
    let mut settings = test_settings(db);
    configure(&mut settings);
    let (started_tx, started_rx) = futures::channel::oneshot::channel();
    let engine_settings = settings.clone();
    let engine_thread = std::thread::Builder::new()
        .name(format!("engine-{}", db.name()))
        .spawn(move || run_engine(engine_settings, started_tx))
        .expect("spawning the engine thread");
    let started = started_rx
        .await
        .unwrap_or_else(|_| Err("the engine thread ended before reporting its start".to_string()));
    let (port, handle) =
        started.unwrap_or_else(|e| panic!("failed to build the application on {}: {e}", db.name()));
    assert_ne!(
        port, 0,
        "the application must report the port it actually bound"
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        // Drop idle connections before the server's keep-alive (5 s) closes them: reusing one
        // the server is closing at that moment fails the request with IncompleteMessage.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        db_name: db.name().to_string(),
        db: db.clone(),
        client,
        handle,
        settings,
        engine_thread: Some(engine_thread),
    }
}

type Started = Result<(u16, ServerHandle), String>;

/// The engine thread: builds the application in a fresh actix `System`, reports its port and
/// handle, serves until stopped, then stops the `System` (every arbiter the engine started) and
/// waits for it.
fn run_engine(settings: Settings, started: futures::channel::oneshot::Sender<Started>) {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        match Application::build(settings).await {
            Ok(app) => {
                let _ = started.send(Ok((app.port(), app.handle())));
                if let Err(e) = app.run_until_stopped().await {
                    eprintln!("warning: the engine stopped with an error: {e}");
                }
            }
            Err(e) => {
                let _ = started.send(Err(format!("{e:#}")));
            }
        }
        actix_web::rt::System::current().stop();
    });
    let _ = system.run();
}

impl TestApp {
    /// A direct connection to this test's database.
    pub fn db_conn(&self) -> MysqlConnection {
        self.db.connect()
    }
}

/// The error an engine with `settings` stops with at start, as `{:#}` shows it; panics if it
/// starts. (On a thread of its own, with its own actix system, as a test's engine runs.)
pub fn startup_error(settings: Settings, what: &str) -> String {
    let error = std::thread::spawn(move || {
        actix_web::rt::System::new()
            .block_on(async move { payment_engine::startup::Application::build(settings).await })
            .err()
    })
    .join()
    .unwrap()
    .unwrap_or_else(|| panic!("{what} must not start"));
    format!("{error:#}")
}
