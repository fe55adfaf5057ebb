//! Events: every committed payment, refund, cancelled order (and charge, when charges emit
//! events) has its outbox row, unless it was published and pruned; no event describes something
//! that did not commit; none is there twice; none is dead.
//!
//! Pruned or lost: the pruner raises each type's watermark (`outbox_pruned.occurred_through`) in
//! the transaction that deletes published rows (`db::outbox::prune_published`), so in a snapshot
//! every event missing from the outbox occurred at or before its type's watermark. An event's
//! `occurred_at` is the time its row records (`paid_at`, `refunded_at`, `cancelled_at`, the
//! charge's `created_at`): a row at or before the watermark may have lost its event to pruning,
//! a later one must still have it.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Datetime, Nullable, Text};

use super::{Checked, Chunk, Finding, FindingKind, Findings};
use crate::db::outbox::{self, PruneWatermark};
use crate::events::{ORDER_CANCELLED, PAYMENT_COMPLETED, PAYMENT_REFUNDED, POINTS_CHARGED};

/// Whether charges must have their `points.charged` events (`--charge-events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChargeEvents {
    /// Required if the database shows charge events were emitted: a `points.charged` row in
    /// the outbox, or one pruned.
    Auto,
    /// Required (EMIT_CHARGE_EVENTS was on all along, or since before the watermark).
    On,
    /// Not required (present ones are still checked against their charge).
    Off,
}

impl ChargeEvents {
    pub(super) fn resolve(self, conn: &mut MysqlConnection) -> QueryResult<bool> {
        #[derive(QueryableByName)]
        struct Seen {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            seen: bool,
        }
        match self {
            ChargeEvents::On => Ok(true),
            ChargeEvents::Off => Ok(false),
            ChargeEvents::Auto => diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM outbox_events WHERE event_type = ?) \
                 OR EXISTS (SELECT 1 FROM outbox_pruned WHERE event_type = ?) AS seen",
            )
            .bind::<Text, _>(POINTS_CHARGED)
            .bind::<Text, _>(POINTS_CHARGED)
            .get_result::<Seen>(conn)
            .map(|row| row.seen),
        }
    }
}

/// The types the audit matches to rows (others, if any, are left alone).
const TYPES: &str =
    "('payment.completed', 'payment.refunded', 'order.cancelled', 'points.charged')";

/// Rows that must have an event, per type: `{at}` is the row's time (its event's occurred_at),
/// `{entity}` what the event's `entity_id` must be. Each SELECT binds the chunk twice, then the
/// type's watermark. The subquery repeats the chunk's bounds so that MariaDB, which turns the
/// `NOT EXISTS` into a materialised semi-join, reads the chunk's events rather than every event
/// of the type (which made each chunk's cost grow with the whole outbox).
const MISSING: [(&str, &str); 4] = [
    (
        PAYMENT_COMPLETED,
        "SELECT p.buyer_id, p.order_id, p.id AS payment_id, NULL AS refund_id, NULL AS version \
         FROM payments p WHERE p.buyer_id BETWEEN ? AND ? AND NOT EXISTS \
         (SELECT 1 FROM outbox_events e WHERE e.event_type = 'payment.completed' \
          AND e.buyer_id BETWEEN ? AND ? AND e.buyer_id = p.buyer_id AND e.entity_id = p.id) \
         AND p.paid_at > ?",
    ),
    (
        PAYMENT_REFUNDED,
        "SELECT r.buyer_id, r.order_id, r.payment_id, r.id AS refund_id, NULL AS version \
         FROM refunds r WHERE r.buyer_id BETWEEN ? AND ? AND NOT EXISTS \
         (SELECT 1 FROM outbox_events e WHERE e.event_type = 'payment.refunded' \
          AND e.buyer_id BETWEEN ? AND ? AND e.buyer_id = r.buyer_id AND e.entity_id = r.id) \
         AND r.refunded_at > ?",
    ),
    (
        ORDER_CANCELLED,
        "SELECT o.buyer_id, o.id AS order_id, NULL AS payment_id, NULL AS refund_id, \
         NULL AS version FROM orders o WHERE o.buyer_id BETWEEN ? AND ? \
         AND o.status = 'CANCELLED' AND NOT EXISTS \
         (SELECT 1 FROM outbox_events e WHERE e.event_type = 'order.cancelled' \
          AND e.buyer_id BETWEEN ? AND ? AND e.buyer_id = o.buyer_id AND e.entity_id = o.id) \
         AND o.cancelled_at > ?",
    ),
    (
        POINTS_CHARGED,
        "SELECT l.buyer_id, NULL AS order_id, NULL AS payment_id, NULL AS refund_id, \
         l.version FROM ledger_entries l WHERE l.buyer_id BETWEEN ? AND ? \
         AND l.kind = 'CHARGE' AND NOT EXISTS \
         (SELECT 1 FROM outbox_events e WHERE e.event_type = 'points.charged' \
          AND e.buyer_id BETWEEN ? AND ? AND e.buyer_id = l.buyer_id \
          AND e.entity_id = l.version) AND l.created_at > ?",
    ),
];

#[derive(QueryableByName)]
struct MissingSql {
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    order_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    payment_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    refund_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    version: Option<i64>,
}

/// An event row found wrong: `events` rows for one entity, or one naming none.
#[derive(QueryableByName)]
struct EventSql {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    entity_id: Option<i64>,
    #[diesel(sql_type = BigInt)]
    events: i64,
}

/// Every type's pruning watermark, as of the current snapshot.
pub(super) fn watermarks(conn: &mut MysqlConnection) -> QueryResult<Vec<PruneWatermark>> {
    outbox::prune_watermarks(conn)
}

/// Checks the chunk's events; returns how many outbox rows it matched.
pub(super) fn check(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    watermarks: &[PruneWatermark],
    charges: bool,
    findings: &mut Findings,
) -> QueryResult<Checked> {
    for (event_type, sql) in MISSING {
        if event_type == POINTS_CHARGED && !charges {
            continue;
        }
        let through = watermarks
            .iter()
            .find(|mark| mark.event_type == event_type)
            .map_or_else(never, |mark| mark.occurred_through);
        let rows: Vec<MissingSql> = bind_chunk!(diesel::sql_query(sql), chunk, 2)
            .bind::<Datetime, _>(through)
            .load(conn)?;
        for row in rows {
            let detail =
                format!("no {event_type} event, and none of its type was pruned this late");
            let finding = Finding::new(FindingKind::EventMissing, Some(row.buyer_id), detail)
                .order(row.order_id)
                .payment(row.payment_id)
                .refund(row.refund_id)
                .version(row.version);
            findings.push(finding);
        }
    }
    check_rows(conn, chunk, findings)
}

/// Before any time an entity can have: nothing was pruned.
fn never() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1000, 1, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .expect("a valid date")
}

/// The chunk's event rows: none twice, none unreadable, none for something that did not commit.
fn check_rows(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    findings: &mut Findings,
) -> QueryResult<Checked> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count = bind_chunk!(
        diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM outbox_events \
             WHERE event_type IN {TYPES} AND buyer_id BETWEEN ? AND ?"
        )),
        chunk,
        1
    )
    .get_result(conn)?;
    let grouped: Vec<EventSql> = bind_chunk!(
        diesel::sql_query(format!(
            "SELECT MIN(seq) AS seq, event_type, buyer_id, entity_id, COUNT(*) AS events \
             FROM outbox_events WHERE event_type IN {TYPES} AND buyer_id BETWEEN ? AND ? \
             GROUP BY event_type, buyer_id, entity_id HAVING events > 1 OR entity_id IS NULL"
        )),
        chunk,
        1
    )
    .load(conn)?;
    for row in grouped {
        let (kind, detail) = match row.entity_id {
            None => (
                FindingKind::EventUnreadable,
                format!(
                    "{} {} event(s) whose payload names no id",
                    row.events, row.event_type
                ),
            ),
            Some(_) => (
                FindingKind::EventDuplicate,
                format!(
                    "{} {} events for one {}",
                    row.events,
                    row.event_type,
                    entity_name(&row.event_type)
                ),
            ),
        };
        findings.push(about_entity(kind, &row, detail));
    }
    check_orphans(conn, chunk, findings)?;
    Ok(Checked {
        events: count.n as u64,
        ..Checked::default()
    })
}

/// Events whose payment, refund, cancelled order or charge (of their buyer) does not exist.
const ORPHANS: &str = "\
    SELECT e.seq, e.event_type, e.buyer_id, e.entity_id, 1 AS events FROM outbox_events e \
    LEFT JOIN payments p ON e.event_type = 'payment.completed' AND p.id = e.entity_id \
      AND p.buyer_id = e.buyer_id \
    LEFT JOIN refunds r ON e.event_type = 'payment.refunded' AND r.id = e.entity_id \
      AND r.buyer_id = e.buyer_id \
    LEFT JOIN orders o ON e.event_type = 'order.cancelled' AND o.id = e.entity_id \
      AND o.buyer_id = e.buyer_id AND o.status = 'CANCELLED' \
    LEFT JOIN ledger_entries l ON e.event_type = 'points.charged' AND l.buyer_id = e.buyer_id \
      AND l.version = e.entity_id AND l.kind = 'CHARGE' \
    WHERE e.event_type IN ('payment.completed', 'payment.refunded', 'order.cancelled', \
      'points.charged') AND e.buyer_id BETWEEN ? AND ? AND e.entity_id IS NOT NULL \
      AND p.id IS NULL AND r.id IS NULL AND o.id IS NULL AND l.buyer_id IS NULL";

fn check_orphans(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    findings: &mut Findings,
) -> QueryResult<()> {
    let rows: Vec<EventSql> = bind_chunk!(diesel::sql_query(ORPHANS), chunk, 1).load(conn)?;
    for row in rows {
        let detail = format!(
            "a {} event for a {} that did not commit",
            row.event_type,
            entity_name(&row.event_type)
        );
        findings.push(about_entity(FindingKind::EventOrphan, &row, detail));
    }
    Ok(())
}

#[derive(QueryableByName)]
struct DeadSql {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    event_id: String,
    #[diesel(sql_type = Text)]
    event_type: String,
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    entity_id: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

/// Every event parked as dead (of `buyer`, if given): committed, but no consumer will see it
/// until it is redriven (`payment-engine events redrive`).
pub(super) fn dead_events(
    conn: &mut MysqlConnection,
    buyer: Option<i64>,
    findings: &mut Findings,
) -> QueryResult<()> {
    let (first, last) = buyer.map_or((i64::MIN, i64::MAX), |b| (b, b));
    let rows: Vec<DeadSql> = diesel::sql_query(
        "SELECT seq, event_id, event_type, buyer_id, entity_id, attempts, last_error \
         FROM outbox_events WHERE published_at IS NULL AND status = 'DEAD' \
         AND buyer_id BETWEEN ? AND ? ORDER BY seq",
    )
    .bind::<BigInt, _>(first)
    .bind::<BigInt, _>(last)
    .load(conn)?;
    for row in rows {
        let detail = format!(
            "{} event {} dead after {} attempts: {}",
            row.event_type,
            row.event_id,
            row.attempts,
            row.last_error.as_deref().unwrap_or("no error recorded")
        );
        let event = EventSql {
            seq: row.seq,
            event_type: row.event_type,
            buyer_id: row.buyer_id,
            entity_id: row.entity_id,
            events: 1,
        };
        findings.push(about_entity(FindingKind::EventDead, &event, detail));
    }
    Ok(())
}

/// What an event of this type describes.
fn entity_name(event_type: &str) -> &'static str {
    match event_type {
        PAYMENT_COMPLETED => "payment",
        PAYMENT_REFUNDED => "refund",
        ORDER_CANCELLED => "cancelled order",
        POINTS_CHARGED => "charge",
        _ => "row",
    }
}

/// A finding about an event row, naming what the event describes in its own field.
fn about_entity(kind: FindingKind, row: &EventSql, detail: String) -> Finding {
    let finding = Finding::new(kind, Some(row.buyer_id), detail).event(Some(row.seq));
    match row.event_type.as_str() {
        PAYMENT_COMPLETED => finding.payment(row.entity_id),
        PAYMENT_REFUNDED => finding.refund(row.entity_id),
        ORDER_CANCELLED => finding.order(row.entity_id),
        POINTS_CHARGED => finding.version(row.entity_id),
        _ => finding,
    }
}
