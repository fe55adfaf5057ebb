//! Outbox queries: what the publisher and the `events` CLI read and update.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::OutboxEventRow;
use super::schema::outbox_events;

pub const PENDING: &str = "PENDING";
pub const PUBLISHED: &str = "PUBLISHED";
pub const DEAD: &str = "DEAD";

/// Longest error text kept for a dead event (the column's size).
const LAST_ERROR_MAX_CHARS: usize = 1024;

/// Undelivered events that occurred at or before `cutoff`, in commit order.
pub fn pending(
    conn: &mut MysqlConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<OutboxEventRow>> {
    outbox_events::table
        .filter(outbox_events::published_at.is_null())
        .filter(outbox_events::status.eq(PENDING))
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
            .filter(outbox_events::status.eq(PENDING)),
    )
    .set((
        outbox_events::status.eq(PUBLISHED),
        outbox_events::published_at.eq(now),
    ))
    .execute(conn)
}

/// Counts a failed delivery; the event is parked as DEAD once it reaches `max_attempts`.
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
         status = IF(attempts >= ?, 'DEAD', status) WHERE event_id = ? AND status = 'PENDING'",
    )
    .bind::<diesel::sql_types::Varchar, _>(error)
    .bind::<diesel::sql_types::Integer, _>(max_attempts)
    .bind::<diesel::sql_types::Varchar, _>(event_id)
    .execute(conn)?;
    let status: Option<String> = outbox_events::table
        .filter(outbox_events::event_id.eq(event_id))
        .select(outbox_events::status)
        .first(conn)
        .optional()?;
    Ok(status.as_deref() == Some(DEAD))
}

/// Deletes up to `limit` events published before `cutoff`.
pub fn prune_published(
    conn: &mut MysqlConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM outbox_events WHERE status = 'PUBLISHED' AND published_at < ? LIMIT ?",
    )
    .bind::<diesel::sql_types::Datetime, _>(cutoff)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
}

pub fn dead(conn: &mut MysqlConnection, limit: i64) -> QueryResult<Vec<OutboxEventRow>> {
    outbox_events::table
        .filter(outbox_events::published_at.is_null())
        .filter(outbox_events::status.eq(DEAD))
        .order(outbox_events::seq.asc())
        .limit(limit)
        .select(OutboxEventRow::as_select())
        .load(conn)
}

/// Puts dead events (all, or the given ones) back in line with a fresh attempt count.
pub fn redrive(conn: &mut MysqlConnection, event_ids: Option<&[String]>) -> QueryResult<usize> {
    let reset = (
        outbox_events::status.eq(PENDING),
        outbox_events::attempts.eq(0),
    );
    match event_ids {
        None => diesel::update(outbox_events::table.filter(outbox_events::status.eq(DEAD)))
            .set(reset)
            .execute(conn),
        Some(ids) => diesel::update(
            outbox_events::table
                .filter(outbox_events::status.eq(DEAD))
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
        .filter(outbox_events::status.eq(PENDING))
        .count()
        .get_result(conn)
}
