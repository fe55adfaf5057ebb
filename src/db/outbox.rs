//! Outbox queries: what the publisher and the `events` CLI read and update.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Datetime, Integer, Text};

use super::models::OutboxEventRow;
pub use super::models::OutboxStatus;
use super::schema::outbox_events;

/// Longest error text kept for a dead event (the column's size).
const LAST_ERROR_MAX_CHARS: usize = 1024;

/// Whose events a relay publishes: those of the buyers whose shard the engine with this owner
/// token holds (`shards`: the database's shard count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayScope {
    pub owner_token: i64,
    pub shards: i32,
}

/// Undelivered events that occurred at or before `cutoff`, in commit order; with a `scope`,
/// only those of the shards it holds (so per-buyer order holds across hand-overs).
pub fn pending(
    conn: &mut MysqlConnection,
    cutoff: NaiveDateTime,
    limit: i64,
    scope: Option<RelayScope>,
) -> QueryResult<Vec<OutboxEventRow>> {
    let mut query = outbox_events::table.into_boxed();
    if let Some(scope) = scope {
        query = query.filter(
            diesel::dsl::sql::<Bool>("MOD(outbox_events.buyer_id, ")
                .bind::<Integer, _>(scope.shards)
                .sql(") IN (SELECT shard FROM shard_leases WHERE owner_token = ")
                .bind::<BigInt, _>(scope.owner_token)
                .sql(")"),
        );
    }
    query
        .filter(outbox_events::published_at.is_null())
        .filter(outbox_events::status.eq(OutboxStatus::Pending))
        .filter(outbox_events::occurred_at.le(cutoff))
        .order((outbox_events::published_at.asc(), outbox_events::seq.asc()))
        .limit(limit)
        .select(OutboxEventRow::as_select())
        .load(conn)
}

pub fn mark_published(
    conn: &mut MysqlConnection,
    event_ids: &[String],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if event_ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        outbox_events::table
            .filter(outbox_events::event_id.eq_any(event_ids))
            .filter(outbox_events::status.eq(OutboxStatus::Pending)),
    )
    .set((
        outbox_events::status.eq(OutboxStatus::Published),
        outbox_events::published_at.eq(now),
    ))
    .execute(conn)
}

/// Counts a failed delivery; the event is parked as dead once it reaches `max_attempts`.
/// Returns whether it is dead now.
pub fn record_failure(
    conn: &mut MysqlConnection,
    event_id: &str,
    error: &str,
    max_attempts: i32,
) -> QueryResult<bool> {
    let error: String = error.chars().take(LAST_ERROR_MAX_CHARS).collect();
    diesel::sql_query(
        "UPDATE outbox_events SET attempts = attempts + 1, last_error = ?, \
         status = IF(attempts >= ?, ?, status) WHERE event_id = ? AND status = ?",
    )
    .bind::<Text, _>(error)
    .bind::<Integer, _>(max_attempts)
    .bind::<Text, _>(OutboxStatus::Dead)
    .bind::<Text, _>(event_id)
    .bind::<Text, _>(OutboxStatus::Pending)
    .execute(conn)?;
    let status: Option<OutboxStatus> = outbox_events::table
        .filter(outbox_events::event_id.eq(event_id))
        .select(outbox_events::status)
        .first(conn)
        .optional()?;
    Ok(status == Some(OutboxStatus::Dead))
}

/// Deletes up to `limit` events published before `cutoff` (oldest published first) and, in the
/// same transaction, raises each deleted type's watermark in `outbox_pruned` to the latest
/// `occurred_at` (and highest `seq`) deleted. So in any snapshot an event can be missing from the
/// outbox only if it occurred at or before its type's watermark: `payment-engine audit` tells a
/// pruned event from a lost one by it.
pub fn prune_published(
    conn: &mut MysqlConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let rows: Vec<(i64, String, NaiveDateTime)> = outbox_events::table
            .filter(outbox_events::status.eq(OutboxStatus::Published))
            .filter(outbox_events::published_at.lt(cutoff))
            .order((outbox_events::published_at.asc(), outbox_events::seq.asc()))
            .limit(limit)
            .select((
                outbox_events::seq,
                outbox_events::event_type,
                outbox_events::occurred_at,
            ))
            .for_update()
            .load(conn)?;
        let seqs: Vec<i64> = rows.iter().map(|(seq, _, _)| *seq).collect();
        if seqs.is_empty() {
            return Ok(0);
        }
        let deleted = diesel::delete(outbox_events::table.filter(outbox_events::seq.eq_any(&seqs)))
            .execute(conn)?;
        for mark in watermarks(&rows) {
            raise_watermark(conn, &mark)?;
        }
        Ok(deleted)
    })
}

/// How far pruning has gone for one event type (a row of `outbox_pruned`).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PruneWatermark {
    #[diesel(sql_type = Text)]
    pub event_type: String,
    /// Every pruned event of this type occurred at or before this.
    #[diesel(sql_type = Datetime)]
    pub occurred_through: NaiveDateTime,
    /// The highest `seq` pruned.
    #[diesel(sql_type = BigInt)]
    pub seq_through: i64,
    /// Events of this type pruned so far.
    #[diesel(sql_type = BigInt)]
    pub events: i64,
}

/// The watermark each type's deleted rows (seq, type, occurred_at) call for.
fn watermarks(rows: &[(i64, String, NaiveDateTime)]) -> Vec<PruneWatermark> {
    let mut marks: Vec<PruneWatermark> = Vec::new();
    for (seq, event_type, occurred_at) in rows {
        match marks.iter_mut().find(|m| &m.event_type == event_type) {
            Some(mark) => {
                mark.occurred_through = mark.occurred_through.max(*occurred_at);
                mark.seq_through = mark.seq_through.max(*seq);
                mark.events += 1;
            }
            None => marks.push(PruneWatermark {
                event_type: event_type.clone(),
                occurred_through: *occurred_at,
                seq_through: *seq,
                events: 1,
            }),
        }
    }
    marks
}

/// Raises (never lowers) a type's watermark and adds to its count.
fn raise_watermark(conn: &mut MysqlConnection, mark: &PruneWatermark) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO outbox_pruned (event_type, occurred_through, seq_through, events, \
         updated_at) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE \
         occurred_through = GREATEST(occurred_through, VALUES(occurred_through)), \
         seq_through = GREATEST(seq_through, VALUES(seq_through)), \
         events = events + VALUES(events), updated_at = VALUES(updated_at)",
    )
    .bind::<Text, _>(&mark.event_type)
    .bind::<Datetime, _>(mark.occurred_through)
    .bind::<BigInt, _>(mark.seq_through)
    .bind::<BigInt, _>(mark.events)
    .execute(conn)
}

/// Every type's pruning watermark.
pub fn prune_watermarks(conn: &mut MysqlConnection) -> QueryResult<Vec<PruneWatermark>> {
    diesel::sql_query(
        "SELECT event_type, occurred_through, seq_through, events FROM outbox_pruned \
         ORDER BY event_type",
    )
    .load(conn)
}

pub fn dead(conn: &mut MysqlConnection, limit: i64) -> QueryResult<Vec<OutboxEventRow>> {
    outbox_events::table
        .filter(outbox_events::published_at.is_null())
        .filter(outbox_events::status.eq(OutboxStatus::Dead))
        .order(outbox_events::seq.asc())
        .limit(limit)
        .select(OutboxEventRow::as_select())
        .load(conn)
}

/// Puts dead events (all, or the given ones) back in line with a fresh attempt count.
pub fn redrive(conn: &mut MysqlConnection, event_ids: Option<&[String]>) -> QueryResult<usize> {
    let reset = (
        outbox_events::status.eq(OutboxStatus::Pending),
        outbox_events::attempts.eq(0),
    );
    match event_ids {
        None => diesel::update(
            outbox_events::table.filter(outbox_events::status.eq(OutboxStatus::Dead)),
        )
        .set(reset)
        .execute(conn),
        Some(ids) => diesel::update(
            outbox_events::table
                .filter(outbox_events::status.eq(OutboxStatus::Dead))
                .filter(outbox_events::event_id.eq_any(ids)),
        )
        .set(reset)
        .execute(conn),
    }
}

/// Events not yet published (the backlog).
pub fn backlog(conn: &mut MysqlConnection) -> QueryResult<i64> {
    outbox_events::table
        .filter(outbox_events::published_at.is_null())
        .filter(outbox_events::status.eq(OutboxStatus::Pending))
        .count()
        .get_result(conn)
}
