//! Kafka test plumbing: settings pointing an engine at a broker with topics of its own, brokers
//! of a test's own (tansu on a free port, killed and restarted at will), a reader collecting a
//! topic from the beginning, the outbox table, and the `payment-engine` binary run as a child
//! process (`serve`, and the `events` commands).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use payment_engine::config::Settings;
use payment_engine::events::kafka::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::helpers::{ApiResponse, TestDatabase};

/// How long a test waits for events to arrive (or an outbox to drain) before it fails.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(30);
/// After the expected events arrived, how much longer a reader listens for unexpected extras.
pub const SETTLE: Duration = Duration::from_millis(1_500);

// ---------------------------------------------------------------------------------------------
// Engine settings
// ---------------------------------------------------------------------------------------------

/// The shared broker every test may use (`TEST_KAFKA_BROKERS`, default `127.0.0.1:9092`).
pub fn shared_brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string())
}

/// Points an engine at `brokers`, with topics of this test's own (so tests run in parallel)
/// and relay timings short enough for tests.
pub fn use_kafka(settings: &mut Settings, brokers: &str) {
    let id = uuid::Uuid::new_v4().simple();
    let kafka = &mut settings.kafka;
    kafka.kafka_brokers = brokers.to_string();
    kafka.kafka_payment_topic = format!("payment.completed.{id}");
    kafka.kafka_charge_topic = format!("points.charged.{id}");
    kafka.outbox_relay_interval_ms = 100;
    kafka.outbox_relay_grace_ms = 300;
    kafka.kafka_message_timeout_ms = 2_000;
}

/// Client settings for `brokers` (consumers, metadata look-ups).
pub fn client_settings(brokers: &str) -> KafkaSettings {
    let mut kafka = Settings::defaults().kafka;
    kafka.kafka_brokers = brokers.to_string();
    kafka.kafka_client_config = String::new();
    kafka
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// Polls `probe` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a topic
// ---------------------------------------------------------------------------------------------

/// One message as read from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub value: Value,
}

impl Received {
    /// `eventId` of the value; panics when there is none.
    #[track_caller]
    pub fn event_id(&self) -> &str {
        self.value["eventId"]
            .as_str()
            .unwrap_or_else(|| panic!("message without a string eventId: {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Reads every partition of one topic from the beginning (partitions assigned directly: no
/// consumer-group rebalance to wait for) and keeps everything it read.
pub struct TopicReader {
    consumer: StreamConsumer,
    pub topic: String,
    pub received: Vec<Received>,
}

impl TopicReader {
    /// Waits (up to [`EVENT_DEADLINE`]) for `topic` to exist on `brokers` (the engine creates
    /// it at start-up, and again on a broker that restarted empty), then starts reading it.
    pub async fn open(brokers: &str, topic: &str) -> TopicReader {
        TopicReader::open_within(brokers, topic, EVENT_DEADLINE).await
    }

    /// [`TopicReader::open`], waiting up to `timeout` for the topic.
    pub async fn open_within(brokers: &str, topic: &str, timeout: Duration) -> TopicReader {
        let kafka = client_settings(brokers);
        let partitions = {
            let (kafka, topic) = (kafka.clone(), topic.to_string());
            actix_web::rt::task::spawn_blocking(move || wait_for_topic(&kafka, &topic, timeout))
                .await
                .expect("the metadata task panicked")
        };
        let group = format!("pe-test-{}", uuid::Uuid::new_v4());
        let consumer: StreamConsumer = kafka
            .consumer_config(&group, true)
            .expect("consumer config")
            .create()
            .expect("creating the test consumer");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("adding a partition to the assignment");
        }
        consumer
            .assign(&assignment)
            .expect("assigning the topic's partitions");
        TopicReader {
            consumer,
            topic: topic.to_string(),
            received: Vec::new(),
        }
    }

    /// The distinct event ids read so far.
    pub fn distinct_ids(&self) -> HashSet<String> {
        self.received
            .iter()
            .map(|m| m.event_id().to_string())
            .collect()
    }

    /// Reads until `n` distinct event ids (in all, counting earlier reads) have arrived or
    /// `timeout` passed, then for [`SETTLE`] more to catch unexpected extras. Returns the number
    /// of distinct ids read; the caller asserts on it and on [`TopicReader::received`].
    pub async fn read_until_distinct(&mut self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut settle_until: Option<Instant> = None;
        let mut distinct = self.distinct_ids();
        loop {
            if settle_until.is_none() && distinct.len() >= n {
                settle_until = Some(Instant::now() + SETTLE);
            }
            let until = settle_until.unwrap_or(deadline);
            let Some(wait) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            match actix_web::rt::time::timeout(wait, self.consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Ok(message)) => {
                    let received = decode(&message);
                    distinct.insert(received.event_id().to_string());
                    self.received.push(received);
                }
                Ok(Err(error)) => {
                    // Transient (e.g. a broker restarting): librdkafka reconnects by itself.
                    eprintln!("test consumer of {}: {error}", self.topic);
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        distinct.len()
    }

    /// Reads for `duration`, whatever arrives (to show that nothing does).
    pub async fn read_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while let Some(wait) = deadline.checked_duration_since(Instant::now()) {
            match actix_web::rt::time::timeout(wait, self.consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Ok(message)) => self.received.push(decode(&message)),
                Ok(Err(error)) => {
                    eprintln!("test consumer of {}: {error}", self.topic);
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

fn decode(message: &impl Message) -> Received {
    let mut headers = BTreeMap::new();
    if let Some(list) = message.headers() {
        for header in list.iter() {
            let value = header
                .value
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            headers.insert(header.key.to_string(), value);
        }
    }
    let payload = message.payload().unwrap_or_default();
    let value = serde_json::from_slice(payload).unwrap_or_else(|e| {
        panic!(
            "a message on {} is not JSON ({e}): {:?}",
            message.topic(),
            String::from_utf8_lossy(payload)
        )
    });
    Received {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        headers,
        value,
    }
}

/// Blocks until `topic` exists with at least one partition; returns its partition count.
fn wait_for_topic(kafka: &KafkaSettings, topic: &str, timeout: Duration) -> i32 {
    let consumer: BaseConsumer = kafka
        .consumer_config(&format!("pe-test-meta-{}", uuid::Uuid::new_v4()), true)
        .expect("consumer config")
        .create()
        .expect("creating the metadata consumer");
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    while start.elapsed() < timeout {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => {
                if let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) {
                    if found.error().is_none() && !found.partitions().is_empty() {
                        return found.partitions().len() as i32;
                    }
                    last = format!("error {:?}", found.error());
                }
            }
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "topic {topic} did not appear on {} within {timeout:?}: {last}",
        kafka.kafka_brokers
    )
}

// ---------------------------------------------------------------------------------------------
// Checking messages
// ---------------------------------------------------------------------------------------------

/// The envelope, headers and key every message must carry: `event-id` equal to the value's
/// `eventId`, `event-type` equal to its `type`, `schema-version` 1, key the buyer id.
#[track_caller]
pub fn assert_envelope(message: &Received, event_type: &str, buyer: i64) {
    let value = &message.value;
    let event_id = message.event_id();
    assert!(
        uuid::Uuid::parse_str(event_id).is_ok(),
        "eventId must be a UUID: {message:?}"
    );
    assert_eq!(
        (
            value["type"].as_str(),
            value["schemaVersion"].as_i64(),
            value["data"]["buyerId"].as_i64()
        ),
        (Some(event_type), Some(1), Some(buyer)),
        "envelope of {message:?}"
    );
    crate::helpers::rfc3339(value, "occurredAt");
    assert_eq!(
        (
            message.header("event-id"),
            message.header("event-type"),
            message.header("schema-version"),
            message.key.as_deref()
        ),
        (
            Some(event_id),
            Some(event_type),
            Some("1"),
            Some(buyer.to_string().as_str())
        ),
        "headers and key of {message:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The outbox table
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct OutboxSql {
    #[diesel(sql_type = BigInt)]
    pub seq: i64,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Integer)]
    pub schema_version: i32,
    #[diesel(sql_type = BigInt)]
    pub buyer_id: i64,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub has_published_at: i64,
}

impl OutboxSql {
    /// The payload as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("outbox payload of {} is not JSON: {e}", self.event_id))
    }
}

/// Every outbox row, in commit order.
pub fn outbox_rows(conn: &mut MysqlConnection) -> Vec<OutboxSql> {
    diesel::sql_query(
        "SELECT seq, event_id, event_type, schema_version, buyer_id, payload, status, attempts, \
         last_error, CAST(published_at IS NOT NULL AS SIGNED) AS has_published_at \
         FROM outbox_events ORDER BY seq",
    )
    .load(conn)
    .expect("reading outbox_events")
}

/// One outbox row by event id.
pub fn outbox_row(conn: &mut MysqlConnection, event_id: &str) -> Option<OutboxSql> {
    outbox_rows(conn)
        .into_iter()
        .find(|row| row.event_id == event_id)
}

/// `status -> count` over the outbox.
pub fn outbox_statuses(conn: &mut MysqlConnection) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in outbox_rows(conn) {
        *counts.entry(row.status).or_insert(0) += 1;
    }
    counts
}

/// Waits until the outbox holds exactly `n` rows, all PUBLISHED with a `published_at`.
pub async fn wait_until_all_published(db: &TestDatabase, n: usize, timeout: Duration) {
    let mut conn = db.connect();
    let start = Instant::now();
    let last = loop {
        let rows = outbox_rows(&mut conn);
        if rows.len() == n
            && rows
                .iter()
                .all(|r| r.status == "PUBLISHED" && r.has_published_at == 1)
        {
            return;
        }
        if start.elapsed() > timeout {
            break outbox_statuses(&mut conn);
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    panic!("the outbox did not drain to {n} PUBLISHED rows within {timeout:?}: statuses {last:?}")
}

/// Inserts an outbox row directly, as PENDING, occurred now.
pub fn insert_outbox_row(
    conn: &mut MysqlConnection,
    event_id: &str,
    event_type: &str,
    buyer: i64,
    payload: &str,
) {
    diesel::sql_query(
        "INSERT INTO outbox_events (event_id, event_type, schema_version, buyer_id, payload, \
         occurred_at) VALUES (?, ?, 1, ?, ?, UTC_TIMESTAMP(6))",
    )
    .bind::<Text, _>(event_id)
    .bind::<Text, _>(event_type)
    .bind::<BigInt, _>(buyer)
    .bind::<Text, _>(payload)
    .execute(conn)
    .expect("inserting an outbox row");
}

// ---------------------------------------------------------------------------------------------
// Ports, a broker of the test's own
// ---------------------------------------------------------------------------------------------

/// A port nothing listens on right now, below the kernel's ephemeral range: no outgoing
/// connection takes it meanwhile (a broker restarts on it), and a client reconnecting to it
/// while nothing listens cannot connect to itself.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&low| low > 20_000)
        .unwrap_or(32_768);
    for _ in 0..1_000 {
        let span = u128::from(low - 10_000);
        let port = 10_000 + (uuid::Uuid::new_v4().as_u128() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}")
}

fn accepts(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

fn log_file(name: &str) -> (PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&path)
        .unwrap_or_else(|e| panic!("creating the log file {}: {e}", path.display()));
    (path, file)
}

fn tail_of(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A tansu broker of the test's own on a free port, with in-memory storage (a restart comes
/// back empty). Killed with SIGKILL when dropped.
pub struct TansuBroker {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl TansuBroker {
    pub fn start() -> TansuBroker {
        let (log, _) = log_file("tansu");
        let mut broker = TansuBroker {
            port: free_port(),
            child: None,
            log,
        };
        broker.restart();
        broker
    }

    /// `127.0.0.1:PORT`
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on its port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let bin = std::env::var("TANSU_BIN")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "/opt/payment-engine-tools/bin/tansu".to_string());
        let url = format!("tcp://{}", self.address());
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log)
            .expect("opening the broker log");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting tansu ({bin}): {e}"));
        self.child = Some(child);
        let start = Instant::now();
        while !accepts(self.port) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tansu on port {} exited with {status}:\n{}",
                    self.port,
                    tail_of(&self.log)
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "tansu did not listen on port {} within 20 s:\n{}",
                self.port,
                tail_of(&self.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

// ---------------------------------------------------------------------------------------------
// The payment-engine binary
// ---------------------------------------------------------------------------------------------

/// The engine binary: `ENGINE_BIN` when set (scripts/faults runs the drills against the release
/// build, as deployed), else the one cargo built for these tests.
pub fn engine_bin() -> String {
    std::env::var("ENGINE_BIN")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_payment-engine").to_string())
}

/// The binary with a clean environment: only `DATABASE_URL` and what the caller adds.
pub fn engine_command(db: &TestDatabase) -> Command {
    let mut command = Command::new(engine_bin());
    command.env_clear();
    for keep in ["PATH", "HOME", "TMPDIR", "RUST_LOG"] {
        if let Some(value) = std::env::var_os(keep) {
            command.env(keep, value);
        }
    }
    command
        .env("DATABASE_URL", db.url())
        .env("LOG_FORMAT", "pretty")
        .stdin(Stdio::null());
    command
}

/// Runs `payment-engine events ARGS...` against the test's database (and `env`) to completion
/// (at most 60 s); returns its output.
pub async fn run_events_command(
    db: &TestDatabase,
    args: &[&str],
    env: &[(&str, String)],
) -> Output {
    let mut command = engine_command(db);
    command.arg("events").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    actix_web::rt::task::spawn_blocking(move || {
        crate::observability::tools::run(command, Duration::from_secs(60))
    })
    .await
    .expect("the command task panicked")
}

/// `payment-engine serve` as a child process on a free port. Killed with SIGKILL when dropped.
pub struct EngineProcess {
    pub address: String,
    pub client: reqwest::Client,
    child: Mutex<Option<Child>>,
    log: PathBuf,
}

impl EngineProcess {
    /// Starts `serve` on the test's database with `env` added (HTTP on a free port, 2 workers)
    /// and waits until it answers `/health/live`.
    pub async fn serve(db: &TestDatabase, env: &[(&str, String)]) -> EngineProcess {
        EngineProcess::serve_on(db, free_port(), env).await
    }

    /// `serve` on the given port (an engine restarted where it was).
    pub async fn serve_on(db: &TestDatabase, port: u16, env: &[(&str, String)]) -> EngineProcess {
        let (log, file) = log_file("payment-engine");
        let mut command = engine_command(db);
        command
            .arg("serve")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("HTTP_WORKERS", "2")
            .env("ACTOR_THREADS", "2")
            .env("DB_POOL_SIZE", "6")
            .stdout(file.try_clone().expect("cloning the log handle"))
            .stderr(file);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("starting payment-engine serve");
        let engine = EngineProcess {
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                // Before the server's keep-alive (5 s) closes them; see helpers::spawn_app.
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("reqwest client"),
            child: Mutex::new(Some(child)),
            log,
        };
        let start = Instant::now();
        loop {
            if let Ok(response) = engine.client.get(engine.url("/health/live")).send().await {
                if response.status() == 200 {
                    return engine;
                }
            }
            if let Some(status) = engine.exit_status() {
                panic!(
                    "payment-engine serve exited with {status}:\n{}",
                    tail_of(&engine.log)
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "payment-engine serve did not answer within 30 s:\n{}",
                tail_of(&engine.log)
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_ref().map(Child::id)
    }

    /// SIGTERM: the graceful stop.
    pub fn terminate(&self) {
        let pid = self.pid().expect("the engine is not running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits up to `timeout` for the process to exit; returns its status, if it did.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The resident set of the process in bytes (from /proc), while it runs.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.pid()?)
    }

    /// How the process ended, if it did (a signal included: killed by someone else?).
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// What a failure message says about the process: its state and the tail of its log.
    pub fn describe(&self) -> String {
        std::thread::sleep(Duration::from_millis(300)); // let a dying process finish
        let state = match self.exit_status() {
            Some(status) => format!("the engine process exited ({status})"),
            None => "the engine process is still running".to_string(),
        };
        format!("{state}; its log ends with:\n{}", tail_of(&self.log))
    }

    async fn post(&self, path: &str, body: Option<Value>) -> ApiResponse {
        let mut request = self.client.post(self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {}\n{}", error_chain(&e), self.describe()));
        ApiResponse::read(response).await
    }

    pub async fn charge(&self, buyer: i64, points: i64) -> ApiResponse {
        self.post(&format!("/points/{buyer}?point={points}"), None)
            .await
    }

    pub async fn new_order(&self, buyer: i64, total: i64) -> i64 {
        let body = self
            .post(
                "/orders",
                Some(json!({ "buyerId": buyer, "totalPrice": total })),
            )
            .await
            .expect(201);
        crate::helpers::int(&body, "orderId")
    }

    pub async fn pay(&self, buyer: i64, order: i64) -> ApiResponse {
        self.post(
            "/orders/payment/kafka",
            Some(json!({ "buyerId": buyer, "orderId": order })),
        )
        .await
    }
}

/// The resident set of process `pid` in bytes (from /proc), if it runs.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// An error and its sources, `: `-separated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
