//! Fault drills (issue 6): each drill runs the real engine binary under concurrent load against
//! the real MariaDB and a real broker, injects a fault (SIGKILL, the database cut off, the broker
//! killed, 3× overload, SIGTERM), and then checks the books: every acknowledged request is in the
//! database, every balance equals its ledger, versions have no gaps, no order is paid twice, and
//! every committed payment's event reached the broker.
//!
//! `DRILL_SCALE=full` runs the long form (`scripts/faults`); the default is the short form the
//! suite runs in CI. With `DRILL_REPORT=FILE`, each drill appends its row of the report (one JSON
//! line) to FILE, which `scripts/faults` prints as a table.

mod broker;
mod cluster;
mod crash;
mod database;
mod galera;
pub mod load;
mod overload;
pub mod proxy;
pub mod router;
mod shutdown;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Text;
use serde_json::json;

use crate::helpers::{
    LedgerEntry, TestDatabase, audit_books, ledger, order_row, payments_for_order, refund_row,
    scalar,
};
use crate::kafka::{EngineProcess, TopicReader};
use load::{Ack, Outcome};

/// Share of the orders of drills 1-3 that are cancelled, refunded or raced (see `load`), in
/// percent.
pub const LIFECYCLE_PERCENT: u32 = 30;

/// Short (CI, the default) or full (`DRILL_SCALE=full`).
pub fn full_scale() -> bool {
    std::env::var("DRILL_SCALE").is_ok_and(|v| v.trim().eq_ignore_ascii_case("full"))
}

/// `short` in the short form, `full` in the long one.
pub fn scaled<T>(short: T, full: T) -> T {
    if full_scale() { full } else { short }
}

/// What a drill found; the drill asserts the zeros after writing its row.
#[derive(Debug, Default, Clone)]
pub struct Books {
    /// Money movements acknowledged with a 2xx: charges, payments, refunds (orders created and
    /// cancelled are checked but not counted).
    pub acknowledged: usize,
    /// Acknowledged requests (orders included) not found in the database as answered.
    pub lost: Vec<String>,
    /// Buyers whose books break an invariant: those `payment-engine audit` names (balance vs
    /// ledger, versions, orders paid once, events, ...).
    pub mismatched_buyers: Vec<i64>,
    /// Answers the load's clients knew to be wrong from the order's state (see `load`).
    pub unexpected: Vec<String>,
}

/// Checks every acknowledgement of `outcome` against the database, and every buyer's books.
pub fn check_books(db: &TestDatabase, outcome: &Outcome) -> Books {
    let mut conn = db.connect();
    let mut ledgers = Ledgers::default();
    let mut books = Books {
        acknowledged: outcome.money_acks(),
        unexpected: outcome.unexpected.clone(),
        ..Books::default()
    };
    for ack in &outcome.acks {
        if !in_database(&mut conn, &mut ledgers, ack) {
            books.lost.push(format!("{ack:?}"));
        }
    }
    // The books themselves: payment-engine audit, the one definition of them.
    let report = audit_books(&mut conn, None);
    let buyers: BTreeSet<i64> = report
        .findings
        .kept
        .iter()
        .map(|finding| finding.buyer_id.unwrap_or(0))
        .collect();
    if !report.is_clean() {
        eprintln!("the audit found: {:#?}", report.findings.kept);
    }
    books.mismatched_buyers.extend(buyers);
    books
}

/// Each buyer's ledger by version, read once.
#[derive(Default)]
struct Ledgers(HashMap<i64, HashMap<i64, LedgerEntry>>);

impl Ledgers {
    fn entry(
        &mut self,
        conn: &mut MysqlConnection,
        buyer: i64,
        version: i64,
    ) -> Option<LedgerEntry> {
        self.0
            .entry(buyer)
            .or_insert_with(|| {
                ledger(conn, buyer)
                    .into_iter()
                    .map(|e| (e.version, e))
                    .collect()
            })
            .get(&version)
            .cloned()
    }
}

/// Whether the database holds `ack` as it was answered.
fn in_database(conn: &mut MysqlConnection, ledgers: &mut Ledgers, ack: &Ack) -> bool {
    match *ack {
        Ack::Charge {
            buyer,
            amount,
            balance,
            version,
        } => ledgers.entry(conn, buyer, version).is_some_and(|e| {
            e.kind == "CHARGE" && e.amount == amount && e.balance_after == balance
        }),
        Ack::Order {
            buyer,
            order,
            total,
        } => order_row(conn, order).is_some_and(|o| o.buyer_id == buyer && o.total_price == total),
        Ack::Payment {
            buyer,
            order,
            payment,
            balance,
            version,
        } => {
            let in_ledger = ledgers.entry(conn, buyer, version).is_some_and(|e| {
                e.kind == "PAYMENT"
                    && e.payment_id == Some(payment)
                    && e.order_id == Some(order)
                    && e.balance_after == balance
            });
            let rows = payments_for_order(conn, order);
            // Paid, and maybe refunded since (refunds are acks of their own).
            let paid = order_row(conn, order).is_some_and(|o| {
                matches!(
                    o.status.as_str(),
                    "PAID" | "PARTIALLY_REFUNDED" | "REFUNDED"
                )
            });
            in_ledger && paid && rows.len() == 1 && rows[0].id == payment
        }
        Ack::Refund { .. } => refund_in_database(conn, ledgers, ack),
        Ack::Cancel { buyer, order } => {
            let cancelled = order_row(conn, order)
                .is_some_and(|o| o.buyer_id == buyer && o.status == "CANCELLED");
            cancelled && payments_for_order(conn, order).is_empty()
        }
    }
}

/// A refund acknowledged: its row, and its REFUND entry at its version.
fn refund_in_database(conn: &mut MysqlConnection, ledgers: &mut Ledgers, ack: &Ack) -> bool {
    let Ack::Refund {
        buyer,
        payment,
        refund,
        amount,
        balance,
        version,
    } = *ack
    else {
        unreachable!("only refunds are looked up as refunds: {ack:?}")
    };
    let row = refund_row(conn, refund).is_some_and(|r| {
        r.payment_id == payment
            && r.buyer_id == buyer
            && r.amount == amount
            && r.balance_after == balance
            && r.ledger_version == version
    });
    let in_ledger = ledgers.entry(conn, buyer, version).is_some_and(|e| {
        e.kind == "REFUND"
            && e.amount == amount
            && e.balance_after == balance
            && e.payment_id == Some(payment)
            && e.refund_id == Some(refund)
    });
    row && in_ledger
}

#[derive(QueryableByName)]
struct EventId {
    #[diesel(sql_type = Text)]
    event_id: String,
}

/// The events published to the payment topic: payments, refunds, cancels (as SQL).
pub const PAYMENT_TOPIC_EVENTS: &str =
    "event_type IN ('payment.completed', 'payment.refunded', 'order.cancelled')";

/// Payment-topic events that did not reach `topic`: waits up to `timeout` for the outbox to
/// hold one PUBLISHED event per payment, refund and cancelled order and for the topic to carry
/// every one of them; returns how many are missing (0 when all arrived), and how long that took.
pub async fn events_lost(
    db: &TestDatabase,
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> (usize, Duration) {
    let start = std::time::Instant::now();
    let mut conn = db.connect();
    let without_event = without_event(&mut conn);
    let mut reader = TopicReader::open_within(brokers, topic, timeout).await;
    let committed: HashSet<String> = diesel::sql_query(format!(
        "SELECT event_id FROM outbox_events WHERE {PAYMENT_TOPIC_EVENTS}"
    ))
    .load::<EventId>(&mut conn)
    .expect("reading the outbox")
    .into_iter()
    .map(|row| row.event_id)
    .collect();
    let left = timeout.saturating_sub(start.elapsed());
    reader.read_until_distinct(committed.len(), left).await;
    let read = reader.distinct_ids();
    let missing = committed.difference(&read).count();
    (missing + without_event, start.elapsed())
}

/// Payments, refunds and cancelled orders with no event in the outbox (each commits its event
/// with it, so 0).
pub fn without_event(conn: &mut MysqlConnection) -> usize {
    let mut missing = 0;
    for (rows, event) in [
        ("SELECT COUNT(*) AS n FROM payments", "payment.completed"),
        ("SELECT COUNT(*) AS n FROM refunds", "payment.refunded"),
        (
            "SELECT COUNT(*) AS n FROM orders WHERE status = 'CANCELLED'",
            "order.cancelled",
        ),
    ] {
        let events =
            format!("SELECT COUNT(*) AS n FROM outbox_events WHERE event_type = '{event}'");
        missing += (scalar(conn, rows) - scalar(conn, &events)).max(0) as usize;
    }
    missing
}

/// Waits until no outbox event is left unpublished; returns how long that took, or `None` when
/// `timeout` passed first.
pub async fn outbox_drained(db: &TestDatabase, timeout: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    let mut conn = db.connect();
    loop {
        if outbox_backlog(&mut conn) == 0 {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Outbox events not yet published.
pub fn outbox_backlog(conn: &mut MysqlConnection) -> i64 {
    scalar(
        conn,
        "SELECT COUNT(*) AS n FROM outbox_events WHERE status <> 'PUBLISHED'",
    )
}

/// Gives each buyer `points` through `engine` so that the load's payments are covered.
pub async fn fund(engine: &EngineProcess, buyers: &[i64], points: i64) {
    for &buyer in buyers {
        engine.charge(buyer, points).await.ok();
    }
}

/// Buyers `first..first + n`.
pub fn buyers(first: i64, n: i64) -> Vec<i64> {
    (first..first + n).collect()
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub drill: &'static str,
    pub load: String,
    pub faults: String,
    pub books: Books,
    pub events_lost: Option<usize>,
    pub recovery: String,
    pub notes: String,
}

impl Row {
    /// Prints the row, appends it to `DRILL_REPORT` when set, then asserts the zeros.
    #[track_caller]
    pub fn report_and_assert(self) {
        let line = json!({
            "drill": self.drill,
            "load": self.load,
            "faults": self.faults,
            "acknowledged": self.books.acknowledged,
            "lost": self.books.lost.len(),
            "mismatches": self.books.mismatched_buyers.len(),
            "unexpected": self.books.unexpected.len(),
            "eventsLost": self.events_lost,
            "recovery": self.recovery,
            "notes": self.notes,
            "scale": scaled("short", "full"),
        });
        eprintln!("drill report: {line}");
        if let Ok(path) = std::env::var("DRILL_REPORT") {
            if !path.trim().is_empty() {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap_or_else(|e| panic!("opening DRILL_REPORT {path}: {e}"));
                writeln!(file, "{line}").expect("writing the drill report");
            }
        }
        assert!(
            self.books.lost.is_empty(),
            "{}: {} acknowledged requests are not in the database, e.g. {:?}",
            self.drill,
            self.books.lost.len(),
            &self.books.lost[..self.books.lost.len().min(5)]
        );
        assert!(
            self.books.mismatched_buyers.is_empty(),
            "{}: books broken for buyers {:?} (negative: orders paid twice)",
            self.drill,
            self.books.mismatched_buyers
        );
        assert!(
            self.books.unexpected.is_empty(),
            "{}: {} answers contradict the state the client knew, e.g. {:?}",
            self.drill,
            self.books.unexpected.len(),
            &self.books.unexpected[..self.books.unexpected.len().min(5)]
        );
        assert_eq!(
            self.events_lost.unwrap_or(0),
            0,
            "{}: events lost",
            self.drill
        );
    }
}

/// `1.23 s`
pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// `120 ms`
pub fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
