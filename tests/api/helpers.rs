//! Test harness: a throwaway database and a real server on port 0 per test, an HTTP client with
//! one helper per route, and SQL helpers to check the books directly in the database.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Once};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use payment_engine::config::Settings;
use payment_engine::startup::Application;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

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
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        TestDatabase(Arc::new(DatabaseGuard {
            name: format!("pe_test_{}", uuid::Uuid::new_v4().simple()),
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name())
    }

    pub fn connect(&self) -> MysqlConnection {
        MysqlConnection::establish(&self.url())
            .unwrap_or_else(|e| panic!("cannot connect to test database {}: {e}", self.name()))
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}

/// Blocking `DROP DATABASE IF EXISTS`; never panics (it runs in `Drop`, maybe while unwinding).
pub fn drop_database(name: &str) {
    let mut conn = match MysqlConnection::establish(&server_url()) {
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

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A fully read response.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl ApiResponse {
    pub async fn read(response: reqwest::Response) -> ApiResponse {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("reading the response body");
        ApiResponse {
            status,
            headers,
            text,
        }
    }

    pub fn status(&self) -> u16 {
        self.status.as_u16()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header value is not ASCII"))
    }

    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    /// The body as JSON; panics showing the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {:?}",
                self.status, self.text
            )
        })
    }

    /// The problem `code`, when the body is a problem document.
    pub fn code(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.text)
            .ok()
            .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_string))
    }

    pub fn is_replay(&self) -> bool {
        self.header("idempotent-replayed")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status(),
            status,
            "expected status {status}, got {} with body {}",
            self.status,
            self.text
        );
        self.json()
    }

    #[track_caller]
    pub fn ok(&self) -> Value {
        self.expect(200)
    }

    /// Asserts an RFC 7807 problem with the given status and stable code; returns the body.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            (self.status(), self.code().as_deref()),
            (status, Some(code)),
            "expected {status} {code}, got {} with body {}",
            self.status,
            self.text
        );
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "a {status} {code} must be application/problem+json, got content type {:?}",
            self.header("content-type")
        );
        let body = self.json();
        for field in ["type", "title", "detail", "code"] {
            assert!(
                body.get(field).is_some_and(Value::is_string),
                "problem field {field:?} must be a string: {body}"
            );
        }
        assert_eq!(
            body["status"],
            json!(status),
            "problem status must match the HTTP status: {body}"
        );
        if status == 503 {
            let retry_after = self.header("retry-after").unwrap_or_else(|| {
                panic!("a 503 {code} must carry Retry-After: {:?}", self.headers)
            });
            assert!(
                retry_after.trim().parse::<u64>().is_ok(),
                "Retry-After must be a number of seconds, got {retry_after:?}"
            );
        }
        body
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> ApiResponse {
        let response = request.send().await.expect("sending the request");
        ApiResponse::read(response).await
    }

    /// GET any path (query string included).
    pub async fn get(&self, path: &str) -> ApiResponse {
        self.send(self.client.get(self.url(path))).await
    }

    /// Any method, any path, optional body, content type and Idempotency-Key.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        idempotency_key: Option<&[u8]>,
    ) -> ApiResponse {
        let mut request = self.client.request(method, self.url(path));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = idempotency_key {
            let value =
                reqwest::header::HeaderValue::from_bytes(key).expect("a sendable header value");
            request = request.header("idempotency-key", value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        self.send(request).await
    }

    /// POST a raw body to `path` with `content_type` (None: no Content-Type header).
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
    ) -> ApiResponse {
        self.raw(
            reqwest::Method::POST,
            path,
            Some(body.into()),
            content_type,
            None,
        )
        .await
    }

    /// POST a JSON value to `path`.
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> ApiResponse {
        self.raw(
            reqwest::Method::POST,
            path,
            Some(serde_json::to_vec(body).unwrap()),
            Some("application/json"),
            idempotency_key.map(str::as_bytes),
        )
        .await
    }

    // --- points ---------------------------------------------------------------------------

    pub async fn charge(&self, buyer: i64, points: i64) -> ApiResponse {
        self.charge_raw(&buyer.to_string(), &format!("point={points}"), None)
            .await
    }

    pub async fn charge_with_key(&self, buyer: i64, points: i64, key: &str) -> ApiResponse {
        self.charge_raw(
            &buyer.to_string(),
            &format!("point={points}"),
            Some(key.as_bytes()),
        )
        .await
    }

    /// POST /points/{buyer}?{query} with the path segment and query exactly as given.
    pub async fn charge_raw(&self, buyer: &str, query: &str, key: Option<&[u8]>) -> ApiResponse {
        let path = if query.is_empty() {
            format!("/points/{buyer}")
        } else {
            format!("/points/{buyer}?{query}")
        };
        self.raw(reqwest::Method::POST, &path, None, None, key)
            .await
    }

    /// Charges and asserts 200; returns the body.
    pub async fn charge_ok(&self, buyer: i64, points: i64) -> Value {
        let response = self.charge(buyer, points).await;
        assert_eq!(
            response.status(),
            200,
            "charging {points} to buyer {buyer}: {}",
            response.text
        );
        response.json()
    }

    pub async fn balance(&self, buyer: i64) -> ApiResponse {
        self.get(&format!("/points/{buyer}")).await
    }

    /// `(balance, version)` from GET /points/{buyer}, asserting 200.
    pub async fn balance_of(&self, buyer: i64) -> (i64, i64) {
        let response = self.balance(buyer).await;
        let body = response.ok();
        assert_eq!(
            body["buyerId"],
            json!(buyer),
            "balance of buyer {buyer}: {body}"
        );
        (
            body["balance"]
                .as_i64()
                .unwrap_or_else(|| panic!("balance is not an integer: {body}")),
            body["version"]
                .as_i64()
                .unwrap_or_else(|| panic!("version is not an integer: {body}")),
        )
    }

    // --- history --------------------------------------------------------------------------

    pub async fn history(
        &self,
        buyer: i64,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> ApiResponse {
        let mut request = self
            .client
            .get(self.url(&format!("/points/history/{buyer}")));
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit.to_string())]);
        }
        if let Some(cursor) = cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        self.send(request).await
    }

    /// Every entry, newest first, following nextCursor until null with pages of `limit`.
    pub async fn full_history(&self, buyer: i64, limit: i64) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        for _page in 0..10_000 {
            let response = self.history(buyer, Some(limit), cursor.as_deref()).await;
            let body = response.ok();
            assert_eq!(body["buyerId"], json!(buyer), "history page: {body}");
            let page = body["entries"]
                .as_array()
                .unwrap_or_else(|| panic!("entries must be an array: {body}"))
                .clone();
            assert!(
                page.len() as i64 <= limit,
                "page longer than limit {limit}: {body}"
            );
            entries.extend(page);
            match &body["nextCursor"] {
                Value::Null => return entries,
                Value::String(next) => cursor = Some(next.clone()),
                other => panic!("nextCursor must be a string or null, got {other}"),
            }
        }
        panic!("history of buyer {buyer} did not end after 10000 pages")
    }

    // --- orders ---------------------------------------------------------------------------

    pub async fn create_order(&self, buyer: i64, total: i64) -> ApiResponse {
        self.post_json(
            "/orders",
            &json!({ "buyerId": buyer, "totalPrice": total }),
            None,
        )
        .await
    }

    /// Creates an order, asserts 201, returns its id.
    pub async fn new_order(&self, buyer: i64, total: i64) -> i64 {
        let response = self.create_order(buyer, total).await;
        let body = response.expect(201);
        body["orderId"]
            .as_i64()
            .unwrap_or_else(|| panic!("orderId is not an integer: {body}"))
    }

    pub async fn get_order(&self, order: i64) -> ApiResponse {
        self.get(&format!("/orders/{order}")).await
    }

    // --- payments -------------------------------------------------------------------------

    pub async fn pay(&self, buyer: i64, order: i64) -> ApiResponse {
        self.post_json(
            "/orders/payment/kafka",
            &json!({ "buyerId": buyer, "orderId": order }),
            None,
        )
        .await
    }

    pub async fn pay_with_key(&self, buyer: i64, order: i64, key: &str) -> ApiResponse {
        self.post_json(
            "/orders/payment/kafka",
            &json!({ "buyerId": buyer, "orderId": order }),
            Some(key),
        )
        .await
    }

    // --- database -------------------------------------------------------------------------

    /// A direct connection to this test's database.
    pub fn db_conn(&self) -> MysqlConnection {
        self.db.connect()
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions on JSON values
// ---------------------------------------------------------------------------------------------

#[track_caller]
pub fn int(value: &Value, field: &str) -> i64 {
    value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("field {field:?} must be an integer: {value}"))
}

#[track_caller]
pub fn rfc3339(value: &Value, field: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field:?} must be a string: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("field {field:?} = {text:?} is not RFC 3339: {e}"))
}

pub fn new_key() -> String {
    format!("key-{}", uuid::Uuid::new_v4())
}

// ---------------------------------------------------------------------------------------------
// SQL helpers
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LedgerEntry {
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = BigInt)]
    pub balance_after: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub order_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub payment_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct BalanceSql {
    #[diesel(sql_type = BigInt)]
    pub balance: i64,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LedgerSummary {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub min_version: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub max_version: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub sum: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct OrderSql {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    pub total_price: i64,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub has_paid_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PaymentSql {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub order_id: i64,
    #[diesel(sql_type = BigInt)]
    pub buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = BigInt)]
    pub balance_after: i64,
    #[diesel(sql_type = BigInt)]
    pub ledger_version: i64,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT ... AS n` returning one integer.
pub fn scalar(conn: &mut MysqlConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// The buyer's ledger entries by version ascending.
pub fn ledger(conn: &mut MysqlConnection, buyer: i64) -> Vec<LedgerEntry> {
    diesel::sql_query(
        "SELECT version, kind, amount, balance_after, order_id, payment_id \
         FROM ledger_entries WHERE buyer_id = ? ORDER BY version",
    )
    .bind::<BigInt, _>(buyer)
    .load(conn)
    .expect("reading ledger_entries")
}

pub fn ledger_summary(conn: &mut MysqlConnection, buyer: i64) -> LedgerSummary {
    diesel::sql_query(
        "SELECT COUNT(*) AS count, MIN(version) AS min_version, MAX(version) AS max_version, \
         CAST(COALESCE(SUM(amount), 0) AS SIGNED) AS sum FROM ledger_entries WHERE buyer_id = ?",
    )
    .bind::<BigInt, _>(buyer)
    .get_result(conn)
    .expect("summarizing ledger_entries")
}

pub fn ledger_count(conn: &mut MysqlConnection, buyer: i64) -> i64 {
    ledger_summary(conn, buyer).count
}

/// The buyer's balances row, if any.
pub fn balance_row(conn: &mut MysqlConnection, buyer: i64) -> Option<BalanceSql> {
    diesel::sql_query("SELECT balance, version FROM balances WHERE buyer_id = ?")
        .bind::<BigInt, _>(buyer)
        .get_result(conn)
        .optional()
        .expect("reading balances")
}

const ORDER_COLUMNS: &str =
    "id, buyer_id, total_price, status, CAST(paid_at IS NOT NULL AS SIGNED) AS has_paid_at";

pub fn order_row(conn: &mut MysqlConnection, order: i64) -> Option<OrderSql> {
    diesel::sql_query(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
        .bind::<BigInt, _>(order)
        .get_result(conn)
        .optional()
        .expect("reading orders")
}

pub fn orders_of(conn: &mut MysqlConnection, buyer: i64) -> Vec<OrderSql> {
    diesel::sql_query(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE buyer_id = ? ORDER BY id"
    ))
    .bind::<BigInt, _>(buyer)
    .load(conn)
    .expect("reading orders")
}

/// The columns `PaymentSql` reads.
const PAYMENT_COLUMNS: &str = "id, order_id, buyer_id, amount, balance_after, ledger_version";

pub fn payments_of(conn: &mut MysqlConnection, buyer: i64) -> Vec<PaymentSql> {
    diesel::sql_query(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE buyer_id = ? ORDER BY id"
    ))
    .bind::<BigInt, _>(buyer)
    .load(conn)
    .expect("reading payments")
}

pub fn payments_for_order(conn: &mut MysqlConnection, order: i64) -> Vec<PaymentSql> {
    diesel::sql_query(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = ? ORDER BY id"
    ))
    .bind::<BigInt, _>(order)
    .load(conn)
    .expect("reading payments")
}

/// Every buyer the database knows of (balances, ledger, orders or payments).
pub fn all_buyers(conn: &mut MysqlConnection) -> Vec<i64> {
    #[derive(QueryableByName)]
    struct Buyer {
        #[diesel(sql_type = BigInt)]
        buyer_id: i64,
    }
    diesel::sql_query(
        "SELECT buyer_id FROM balances UNION SELECT buyer_id FROM ledger_entries \
         UNION SELECT buyer_id FROM orders UNION SELECT buyer_id FROM payments ORDER BY buyer_id",
    )
    .load::<Buyer>(conn)
    .expect("listing buyers")
    .into_iter()
    .map(|b| b.buyer_id)
    .collect()
}

/// The books of one buyer, checked in SQL:
/// - ledger versions are exactly 1..=n, each entry's balance_after is the running sum, never < 0;
/// - the balances row (present iff n > 0) holds balance == SUM(amount) and version == n;
/// - CHARGE entries are positive and name no order; PAYMENT entries are negative and name the
///   payment and order they record;
/// - each PAID order has exactly one payment row (matching price, buyer and ledger entry), each
///   PENDING order none, and each payment row's order is PAID.
#[track_caller]
pub fn assert_buyer_invariants(conn: &mut MysqlConnection, buyer: i64) {
    let entries = ledger(conn, buyer);
    let versions: Vec<i64> = entries.iter().map(|e| e.version).collect();
    let expected: Vec<i64> = (1..=entries.len() as i64).collect();
    assert_eq!(
        versions, expected,
        "buyer {buyer}: ledger versions must be 1..=n without gaps"
    );

    let mut running: i64 = 0;
    for entry in &entries {
        running += entry.amount;
        assert_eq!(
            entry.balance_after, running,
            "buyer {buyer}: entry {entry:?} balance_after must be the running sum"
        );
        assert!(
            running >= 0,
            "buyer {buyer}: balance went negative at {entry:?}"
        );
        match entry.kind.as_str() {
            "CHARGE" => {
                assert!(
                    entry.amount > 0,
                    "buyer {buyer}: a CHARGE must be positive: {entry:?}"
                );
                assert_eq!(
                    (entry.order_id, entry.payment_id),
                    (None, None),
                    "buyer {buyer}: a CHARGE names no order or payment: {entry:?}"
                );
            }
            "PAYMENT" => {
                assert!(
                    entry.amount < 0,
                    "buyer {buyer}: a PAYMENT must be negative: {entry:?}"
                );
                assert!(
                    entry.order_id.is_some() && entry.payment_id.is_some(),
                    "buyer {buyer}: a PAYMENT names its order and payment: {entry:?}"
                );
            }
            other => panic!("buyer {buyer}: unknown ledger kind {other:?}"),
        }
    }

    let summary = ledger_summary(conn, buyer);
    assert_eq!(summary.sum, running, "buyer {buyer}: SUM(amount)");
    match balance_row(conn, buyer) {
        None => assert!(
            entries.is_empty(),
            "buyer {buyer}: ledger entries but no balances row"
        ),
        Some(row) => {
            assert_eq!(
                (row.balance, row.version),
                (summary.sum, summary.count),
                "buyer {buyer}: balances row must equal (SUM(amount), COUNT(*)) of the ledger"
            );
            assert_eq!(
                summary.max_version,
                Some(summary.count),
                "buyer {buyer}: MAX(version)"
            );
            assert!(
                row.balance >= 0,
                "buyer {buyer}: negative balance {}",
                row.balance
            );
        }
    }

    let payments = payments_of(conn, buyer);
    let by_version: HashMap<i64, &LedgerEntry> = entries.iter().map(|e| (e.version, e)).collect();
    let payment_entries = entries.iter().filter(|e| e.kind == "PAYMENT").count();
    assert_eq!(
        payments.len(),
        payment_entries,
        "buyer {buyer}: one payment row per PAYMENT ledger entry; payments {payments:?}"
    );
    let mut paid_orders = HashSet::new();
    for payment in &payments {
        assert!(
            paid_orders.insert(payment.order_id),
            "buyer {buyer}: order paid twice: {payments:?}"
        );
        let order = order_row(conn, payment.order_id)
            .unwrap_or_else(|| panic!("buyer {buyer}: payment {payment:?} of a missing order"));
        assert_eq!(
            order.buyer_id, buyer,
            "buyer {buyer}: paid someone else's order {order:?}"
        );
        assert_eq!(
            (order.status.as_str(), order.has_paid_at),
            ("PAID", 1),
            "buyer {buyer}: the order of payment {payment:?} must be PAID with paid_at"
        );
        assert_eq!(
            payment.amount.abs(),
            order.total_price,
            "buyer {buyer}: payment amount {payment:?} vs {order:?}"
        );
        let entry = by_version.get(&payment.ledger_version).unwrap_or_else(|| {
            panic!("buyer {buyer}: payment {payment:?} names a missing ledger version")
        });
        assert_eq!(
            (
                entry.kind.as_str(),
                entry.amount,
                entry.balance_after,
                entry.order_id,
                entry.payment_id
            ),
            (
                "PAYMENT",
                -order.total_price,
                payment.balance_after,
                Some(payment.order_id),
                Some(payment.id)
            ),
            "buyer {buyer}: ledger entry of payment {payment:?}"
        );
    }
    for order in orders_of(conn, buyer) {
        let count = payments_for_order(conn, order.id).len();
        match order.status.as_str() {
            "PAID" => {
                assert_eq!(
                    count, 1,
                    "buyer {buyer}: PAID order {order:?} needs exactly one payment"
                );
                assert_eq!(
                    order.has_paid_at, 1,
                    "buyer {buyer}: PAID order {order:?} without paid_at"
                );
            }
            "PENDING" => {
                assert_eq!(
                    count, 0,
                    "buyer {buyer}: PENDING order {order:?} has a payment"
                );
                assert_eq!(
                    order.has_paid_at, 0,
                    "buyer {buyer}: PENDING order {order:?} with paid_at"
                );
            }
            other => panic!(
                "buyer {buyer}: order {} has unknown status {other:?}",
                order.id
            ),
        }
    }
}

/// [`assert_buyer_invariants`] for every buyer in the database.
#[track_caller]
pub fn assert_all_invariants(conn: &mut MysqlConnection) {
    for buyer in all_buyers(conn) {
        assert_buyer_invariants(conn, buyer);
    }
}

/// Checks one history entry against the ledger row of the same version.
#[track_caller]
pub fn assert_entry_matches_ledger(entry: &Value, row: &LedgerEntry) {
    assert_eq!(
        (
            int(entry, "version"),
            entry["kind"].as_str(),
            int(entry, "amount"),
            int(entry, "balanceAfter"),
            entry["orderId"].as_i64(),
            entry["paymentId"].as_i64(),
        ),
        (
            row.version,
            Some(row.kind.as_str()),
            row.amount,
            row.balance_after,
            row.order_id,
            row.payment_id
        ),
        "history entry {entry} vs ledger row {row:?}"
    );
    rfc3339(entry, "createdAt");
}

/// Holds an exclusive lock on a buyer's `balances` row, in an open transaction, until released
/// or dropped: every engine write touching that buyer waits, so the test can observe a request
/// while it is in flight.
pub struct BalanceLock {
    conn: Option<MysqlConnection>,
    db_name: String,
}

impl BalanceLock {
    pub fn acquire(db: &TestDatabase, buyer: i64) -> BalanceLock {
        use diesel::connection::SimpleConnection;
        let mut conn = db.connect();
        conn.batch_execute("START TRANSACTION")
            .expect("starting the locking transaction");
        let locked: Vec<BalanceSql> = diesel::sql_query(
            "SELECT balance, version FROM balances WHERE buyer_id = ? FOR UPDATE",
        )
        .bind::<BigInt, _>(buyer)
        .load(&mut conn)
        .expect("locking the balances row");
        assert_eq!(
            locked.len(),
            1,
            "buyer {buyer} needs a balances row to lock"
        );
        BalanceLock {
            conn: Some(conn),
            db_name: db.name().to_string(),
        }
    }

    /// Waits until an engine write to `balances` is blocked on the lock (at most 10 s).
    pub async fn wait_for_a_waiter(&self) {
        let mut conn = admin_conn();
        // (MariaDB does not always list the waiting transaction in INNODB_TRX; the statement
        // itself shows in the process list for as long as it waits.)
        let sql = format!(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST \
             WHERE DB = '{}' AND INFO LIKE 'UPDATE%balances%'",
            self.db_name
        );
        let start = std::time::Instant::now();
        while scalar(&mut conn, &sql) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no engine write started waiting for the locked row"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn release(mut self) {
        self.rollback();
    }

    fn rollback(&mut self) {
        use diesel::connection::SimpleConnection;
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.batch_execute("ROLLBACK");
        }
    }
}

impl Drop for BalanceLock {
    fn drop(&mut self) {
        self.rollback();
    }
}
