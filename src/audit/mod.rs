//! `payment-engine audit`: the reconciliation of a live database. It reads, never writes: every
//! chunk of buyers is checked inside its own `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ
//! ONLY`, so the engine keeps committing meanwhile (no locks are taken) and each chunk sees one
//! committed state. The checks are set-based: each query covers a range of buyer ids and
//! returns only what breaks an invariant (plus per-buyer aggregates of the ledger).
//!
//! What is checked, and the name of each finding: [`FindingKind`]; ARCHITECTURE.md lists the
//! invariants, README the command.

/// Binds a chunk's first and last buyer id `$n` times, in that order.
macro_rules! bind_chunk {
    ($query:expr, $chunk:expr, $n:literal) => {{
        let mut query = $query.into_boxed::<diesel::mysql::Mysql>();
        for _ in 0..$n {
            query = query
                .bind::<diesel::sql_types::BigInt, _>($chunk.first)
                .bind::<diesel::sql_types::BigInt, _>($chunk.last);
        }
        query
    }};
}

mod books;
mod chunks;
mod command;
mod events;
mod findings;
mod money;
mod output;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

pub use command::{AuditArgs, run_command};
pub use events::ChargeEvents;
pub use findings::{Finding, FindingKind, Findings};

use crate::db::outbox::PruneWatermark;

/// Buyers per chunk unless told otherwise: a chunk's snapshot lasts well under a second.
pub const DEFAULT_CHUNK_BUYERS: i64 = 10_000;
/// Chunk workers (connections) unless told otherwise: twice one's speed where the database has
/// cores to spare, while a database server with two or more cores keeps one for its other
/// clients (README, `audit`; BENCHMARKS.md).
pub const DEFAULT_JOBS: usize = 2;
/// Findings kept (all are counted) unless told otherwise.
pub const DEFAULT_MAX_FINDINGS: usize = 1_000;

/// What to audit, and by which bounds.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Largest balance a buyer may hold (`MAX_BALANCE_POINTS`).
    pub max_balance: i64,
    /// Buyers (balance rows) per chunk and snapshot.
    pub chunk_buyers: i64,
    /// Only this buyer.
    pub buyer: Option<i64>,
    /// Whether charges must have `points.charged` events.
    pub charge_events: ChargeEvents,
    /// Findings kept in the report (every one is counted).
    pub max_findings: usize,
    /// Chunk workers, each with its own connection ([`audit_with_jobs`]).
    pub jobs: usize,
}

impl AuditOptions {
    /// The defaults, with the engine's largest balance.
    pub fn new(max_balance: i64) -> AuditOptions {
        AuditOptions {
            max_balance,
            chunk_buyers: DEFAULT_CHUNK_BUYERS,
            buyer: None,
            charge_events: ChargeEvents::Auto,
            max_findings: DEFAULT_MAX_FINDINGS,
            jobs: DEFAULT_JOBS,
        }
    }
}

/// Rows checked, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    pub balances: u64,
    pub ledger_entries: u64,
    pub orders: u64,
    pub payments: u64,
    pub refunds: u64,
    /// Outbox rows of the four event types checked against what they describe.
    pub events: u64,
}

impl Checked {
    fn add(&mut self, other: Checked) {
        self.balances += other.balances;
        self.ledger_entries += other.ledger_entries;
        self.orders += other.orders;
        self.payments += other.payments;
        self.refunds += other.refunds;
        self.events += other.events;
    }
}

/// What an audit found.
#[derive(Debug, Clone)]
pub struct Report {
    pub checked: Checked,
    pub findings: Findings,
    pub chunks: u64,
    /// Whether charges were required to have their events (see [`ChargeEvents`]).
    pub charge_events_checked: bool,
    /// How far pruning had gone, per event type, once every chunk was read.
    pub watermarks: Vec<PruneWatermark>,
    pub elapsed: Duration,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.total() == 0
    }
}

/// How far an audit has got, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub buyers_done: u64,
    /// Balance rows when the audit started (an estimate on a live database).
    pub buyers_total: u64,
    pub findings: u64,
}

/// An inclusive range of buyer ids, audited in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    first: i64,
    last: i64,
}

/// Audits the database `conn` is connected to, one chunk at a time on that one connection
/// (`options.jobs` is [`audit_with_jobs`]'s). Leaves the connection's session as it was (each
/// chunk's transaction is ended before the next starts, on errors too).
pub fn audit(
    conn: &mut MysqlConnection,
    options: &AuditOptions,
    progress: &mut dyn FnMut(Progress),
) -> QueryResult<Report> {
    run(vec![conn], options, progress)
}

/// Audits with `options.jobs` chunk workers: `conn` and `jobs - 1` more connections opened by
/// `connect` (each should be a read-only session, as `conn`), each worker checking its own
/// chunks in its own snapshots. The report is the one [`audit`] gives (findings are sorted and
/// counts summed, whatever order the chunks finished in). One buyer needs one connection.
pub fn audit_with_jobs<E: From<diesel::result::Error>>(
    conn: &mut MysqlConnection,
    mut connect: impl FnMut() -> Result<MysqlConnection, E>,
    options: &AuditOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, E> {
    let more = match options.buyer {
        Some(_) => 0,
        None => options.jobs.max(1) - 1,
    };
    let mut others = (0..more)
        .map(|_| connect())
        .collect::<Result<Vec<_>, E>>()?;
    let conns = std::iter::once(conn).chain(others.iter_mut()).collect();
    Ok(run(conns, options, progress)?)
}

/// The audit on these connections (one chunk worker each; the first also reads what precedes
/// and follows the chunks).
fn run(
    mut conns: Vec<&mut MysqlConnection>,
    options: &AuditOptions,
    progress: &mut dyn FnMut(Progress),
) -> QueryResult<Report> {
    let started = Instant::now();
    let first = &mut *conns[0];
    let charge_events_checked = options.charge_events.resolve(first)?;
    let buyers_total = count_buyers(first, options.buyer)?;
    let mut report = Report {
        checked: Checked::default(),
        findings: Findings::new(options.max_findings),
        chunks: 0,
        charge_events_checked,
        watermarks: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let jobs = chunks::Jobs {
        options,
        charge_events: charge_events_checked,
    };
    jobs.run(&mut conns, |done| {
        report.checked.add(done.checked);
        report.findings.merge(done.findings);
        report.chunks += 1;
        progress(Progress {
            buyers_done: report.checked.balances,
            buyers_total,
            findings: report.findings.total(),
        });
    })?;
    report.watermarks = in_snapshot(&mut *conns[0], |conn| {
        events::dead_events(conn, options.buyer, &mut report.findings)?;
        events::watermarks(conn)
    })?;
    report.findings.settle();
    report.elapsed = started.elapsed();
    Ok(report)
}

fn count_buyers(conn: &mut MysqlConnection, buyer: Option<i64>) -> QueryResult<u64> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let (first, last) = buyer.map_or((i64::MIN, i64::MAX), |b| (b, b));
    let count: Count =
        diesel::sql_query("SELECT COUNT(*) AS n FROM balances WHERE buyer_id BETWEEN ? AND ?")
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(last)
            .get_result(conn)?;
    Ok(count.n.max(0) as u64)
}

/// Runs `f` in a read-only transaction on a consistent snapshot, and ends it (ROLLBACK: there is
/// nothing to commit) whatever `f` returned.
fn in_snapshot<T>(
    conn: &mut MysqlConnection,
    f: impl FnOnce(&mut MysqlConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    // The isolation level of the next transaction only: the session keeps its own.
    conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
    conn.batch_execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")?;
    let result = f(conn);
    let ended = conn.batch_execute("ROLLBACK");
    let value = result?;
    ended?;
    Ok(value)
}
