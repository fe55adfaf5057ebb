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

/// Deletes up to `limit` events published before `cutoff`.
pub fn prune_published(
    conn: &mut MysqlConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM outbox_events WHERE status = ? AND published_at < ? LIMIT ?")
        .bind::<Text, _>(OutboxStatus::Published)
        .bind::<Datetime, _>(cutoff)
        .bind::<BigInt, _>(limit)
        .execute(conn)
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
