//! Shard leases: which engine owns which shard, by the database's clock only.
//!
//! Every statement here is one round trip, sets times with `NOW(6)` and compares them with
//! `NOW(6)`, so engines never compare their own clocks. A claim is a conditional UPDATE on a
//! free or expired lease that raises its epoch; the group-commit writer reads the leases of its
//! batch's shards with a shared lock (`fence`) and commits only the writes whose shard is still
//! held at the epoch they were decided under.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};

/// The lease a write was decided under: its buyer's shard, the epoch this engine claimed it
/// at, and this engine's owner token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLease {
    pub shard: i32,
    pub epoch: i64,
    pub token: i64,
}

/// Who an engine is, as it writes itself into the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Drawn at random at every start: the lease's owner token, and the engine's key.
    pub token: i64,
    /// For people: `ENGINE_ID`.
    pub engine_id: String,
    /// Where other engines forward this engine's buyers' requests (`host:port`).
    pub address: String,
}

/// A lease as another engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LeaseView {
    #[diesel(sql_type = Integer)]
    pub shard: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub owner_token: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub owner_engine: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub address: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
    /// Microseconds until it expires by the database's clock (≤ 0: expired; `None`: free).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub remaining_us: Option<i64>,
    /// The engine asked to get this shard handed back, while the request holds.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub wanted_by: Option<i64>,
    /// Where `wanted_by` can be reached (from `cluster_engines`).
    #[diesel(sql_type = Nullable<Text>)]
    pub wanted_address: Option<String>,
}

impl LeaseView {
    /// A shard nobody holds or asked for.
    pub fn free(shard: i32) -> LeaseView {
        LeaseView {
            shard,
            owner_token: None,
            owner_engine: None,
            address: None,
            epoch: 0,
            remaining_us: None,
            wanted_by: None,
            wanted_address: None,
        }
    }

    /// Held by someone and not expired.
    pub fn is_live(&self) -> bool {
        self.owner_token.is_some() && self.remaining_us.is_some_and(|us| us > 0)
    }
}

#[derive(QueryableByName)]
struct Shard {
    #[diesel(sql_type = Integer)]
    shard: i32,
}

#[derive(QueryableByName)]
struct Held {
    #[diesel(sql_type = Integer)]
    shard: i32,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

/// Shard rows are inserted this many at a time.
const INSERT_CHUNK: i32 = 1000;

/// The database's shard count: `shards` if it has none yet (and then its lease rows are
/// created), else the one it was created with, which the caller must use.
pub fn ensure_shards(conn: &mut MysqlConnection, shards: i32) -> QueryResult<i32> {
    diesel::sql_query("INSERT IGNORE INTO cluster_settings (name, value) VALUES ('shards', ?)")
        .bind::<BigInt, _>(i64::from(shards))
        .execute(conn)?;
    let stored = diesel::sql_query("SELECT value FROM cluster_settings WHERE name = 'shards'")
        .get_result::<Value>(conn)?
        .value;
    let stored = i32::try_from(stored).unwrap_or(i32::MAX);
    let mut start = 0;
    while start < stored {
        let end = (start + INSERT_CHUNK).min(stored);
        let values = (start..end)
            .map(|shard| format!("({shard})"))
            .collect::<Vec<_>>()
            .join(",");
        diesel::sql_query(format!(
            "INSERT IGNORE INTO shard_leases (shard) VALUES {values}"
        ))
        .execute(conn)?;
        start = end;
    }
    Ok(stored)
}

/// Claims `shard` if it is free or expired (and not promised to another engine), or held by
/// an earlier run of this engine (same engine id: that process is gone or a zombie, and the
/// new epoch fences it, as a Kafka producer's transactional id does): one conditional UPDATE
/// raising the epoch. Then reads the lease, whoever won: the epoch if it is
/// `holder`'s now (claimed here or before), else who holds it.
pub fn claim(
    conn: &mut MysqlConnection,
    shard: i32,
    holder: &Holder,
    ttl_us: i64,
) -> QueryResult<Result<i64, LeaseView>> {
    diesel::sql_query(
        "UPDATE shard_leases SET owner_token = ?, owner_engine = ?, address = ?, \
         epoch = epoch + 1, expires_at = NOW(6) + INTERVAL ? MICROSECOND, claimed_at = NOW(6), \
         wanted_by = NULL, wanted_until = NULL \
         WHERE shard = ? AND NOT (owner_token <=> ?) \
         AND ((owner_token IS NOT NULL AND owner_engine = ?) \
              OR ((owner_token IS NULL OR expires_at <= NOW(6)) \
                  AND (wanted_by IS NULL OR wanted_by = ? OR wanted_until <= NOW(6))))",
    )
    .bind::<BigInt, _>(holder.token)
    .bind::<Text, _>(&holder.engine_id)
    .bind::<Text, _>(&holder.address)
    .bind::<BigInt, _>(ttl_us)
    .bind::<Integer, _>(shard)
    .bind::<BigInt, _>(holder.token)
    .bind::<Text, _>(&holder.engine_id)
    .bind::<BigInt, _>(holder.token)
    .execute(conn)?;
    let view = lease(conn, shard)?;
    Ok(match view {
        Some(view) if view.owner_token == Some(holder.token) => Ok(view.epoch),
        Some(view) => Err(view),
        None => Err(LeaseView::free(shard)),
    })
}

/// The lease of `shard` (no lock: for routing, not for deciding money).
pub fn lease(conn: &mut MysqlConnection, shard: i32) -> QueryResult<Option<LeaseView>> {
    diesel::sql_query(
        "SELECT l.shard, l.owner_token, l.owner_engine, l.address, l.epoch, \
         TIMESTAMPDIFF(MICROSECOND, NOW(6), l.expires_at) AS remaining_us, \
         CASE WHEN l.wanted_until > NOW(6) THEN l.wanted_by END AS wanted_by, \
         CASE WHEN l.wanted_until > NOW(6) THEN e.address END AS wanted_address \
         FROM shard_leases l LEFT JOIN cluster_engines e ON e.owner_token = l.wanted_by \
         WHERE l.shard = ?",
    )
    .bind::<Integer, _>(shard)
    .get_result(conn)
    .optional()
}

/// Extends every lease `token` holds, in one statement; how many it holds.
pub fn renew(conn: &mut MysqlConnection, token: i64, ttl_us: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE shard_leases SET expires_at = NOW(6) + INTERVAL ? MICROSECOND \
         WHERE owner_token = ?",
    )
    .bind::<BigInt, _>(ttl_us)
    .bind::<BigInt, _>(token)
    .execute(conn)
}

/// The shards `token` holds, with their epochs.
pub fn held(conn: &mut MysqlConnection, token: i64) -> QueryResult<Vec<(i32, i64)>> {
    Ok(
        diesel::sql_query("SELECT shard, epoch FROM shard_leases WHERE owner_token = ?")
            .bind::<BigInt, _>(token)
            .load::<Held>(conn)?
            .into_iter()
            .map(|row| (row.shard, row.epoch))
            .collect(),
    )
}

/// Gives up the given shards (all of `token`'s when `shards` is `None`); a hand-back request
/// on them stays, so only the engine that asked may claim them while it holds.
pub fn release(
    conn: &mut MysqlConnection,
    token: i64,
    shards: Option<&[i32]>,
) -> QueryResult<usize> {
    let only = match shards {
        None => String::new(),
        Some([]) => return Ok(0),
        Some(shards) => format!(" AND shard IN ({})", list(shards)),
    };
    diesel::sql_query(format!(
        "UPDATE shard_leases SET owner_token = NULL, owner_engine = NULL, address = NULL, \
         expires_at = NULL WHERE owner_token = ?{only}"
    ))
    .bind::<BigInt, _>(token)
    .execute(conn)
}

/// Free or expired shards (claimable by `holder`) with events still to publish: at most
/// `limit`. Their events would otherwise wait for the next request of one of their buyers.
pub fn orphans_with_events(
    conn: &mut MysqlConnection,
    holder: &Holder,
    shards: i32,
    limit: i64,
) -> QueryResult<Vec<i32>> {
    Ok(diesel::sql_query(
        "SELECT l.shard FROM shard_leases l WHERE \
         (l.owner_token IS NULL OR l.expires_at <= NOW(6) OR l.owner_engine = ?) \
         AND NOT (l.owner_token <=> ?) \
         AND (l.wanted_by IS NULL OR l.wanted_by = ? OR l.wanted_until <= NOW(6)) \
         AND l.shard IN (SELECT DISTINCT MOD(o.buyer_id, ?) FROM outbox_events o \
                         WHERE o.published_at IS NULL AND o.status = 'PENDING') \
         ORDER BY l.shard LIMIT ?",
    )
    .bind::<Text, _>(&holder.engine_id)
    .bind::<BigInt, _>(holder.token)
    .bind::<BigInt, _>(holder.token)
    .bind::<Integer, _>(shards)
    .bind::<BigInt, _>(limit)
    .load::<Shard>(conn)?
    .into_iter()
    .map(|row| row.shard)
    .collect())
}

/// Asks the owners of `shards` to hand them back to `holder` (the router sends them here);
/// the request holds for `ttl_us`. Shards already free are left to be claimed.
pub fn want(
    conn: &mut MysqlConnection,
    holder: &Holder,
    shards: &[i32],
    ttl_us: i64,
) -> QueryResult<usize> {
    if shards.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(format!(
        "UPDATE shard_leases SET wanted_by = ?, wanted_until = NOW(6) + INTERVAL ? MICROSECOND \
         WHERE shard IN ({}) AND owner_token IS NOT NULL AND owner_token <> ? \
         AND (wanted_by IS NULL OR wanted_by = ? OR wanted_until <= NOW(6))",
        list(shards)
    ))
    .bind::<BigInt, _>(holder.token)
    .bind::<BigInt, _>(ttl_us)
    .bind::<BigInt, _>(holder.token)
    .bind::<BigInt, _>(holder.token)
    .execute(conn)
}

/// Shards `token` holds that another serving engine asked for, held at least `min_hold_us`:
/// at most `limit`, the longest held first.
pub fn wanted_from(
    conn: &mut MysqlConnection,
    token: i64,
    min_hold_us: i64,
    limit: i64,
) -> QueryResult<Vec<i32>> {
    Ok(diesel::sql_query(
        "SELECT l.shard FROM shard_leases l JOIN cluster_engines e ON e.owner_token = l.wanted_by \
         WHERE l.owner_token = ? AND l.wanted_until > NOW(6) AND e.state = 'SERVING' \
         AND l.claimed_at <= NOW(6) - INTERVAL ? MICROSECOND ORDER BY l.claimed_at LIMIT ?",
    )
    .bind::<BigInt, _>(token)
    .bind::<BigInt, _>(min_hold_us)
    .bind::<BigInt, _>(limit)
    .load::<Shard>(conn)?
    .into_iter()
    .map(|row| row.shard)
    .collect())
}

/// Records `holder` as serving or draining, now (its heartbeat).
pub fn heartbeat(conn: &mut MysqlConnection, holder: &Holder, draining: bool) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO cluster_engines (owner_token, engine_id, address, state, started_at, \
         heartbeat_at) VALUES (?, ?, ?, ?, NOW(6), NOW(6)) \
         ON DUPLICATE KEY UPDATE state = VALUES(state), heartbeat_at = NOW(6)",
    )
    .bind::<BigInt, _>(holder.token)
    .bind::<Text, _>(&holder.engine_id)
    .bind::<Text, _>(&holder.address)
    .bind::<Text, _>(if draining { "DRAINING" } else { "SERVING" })
    .execute(conn)?;
    Ok(())
}

/// Whether an engine other than `token` is draining (heard from within `fresh_us`): shards
/// are not handed back meanwhile.
pub fn other_draining(conn: &mut MysqlConnection, token: i64, fresh_us: i64) -> QueryResult<bool> {
    let count = diesel::sql_query(
        "SELECT COUNT(*) AS value FROM cluster_engines WHERE owner_token <> ? \
         AND state = 'DRAINING' AND heartbeat_at > NOW(6) - INTERVAL ? MICROSECOND",
    )
    .bind::<BigInt, _>(token)
    .bind::<BigInt, _>(fresh_us)
    .get_result::<Value>(conn)?
    .value;
    Ok(count > 0)
}

/// Forgets engines not heard from within `stale_us` (restarted engines draw a new token).
pub fn forget_engines(conn: &mut MysqlConnection, stale_us: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM cluster_engines WHERE heartbeat_at < NOW(6) - INTERVAL ? MICROSECOND",
    )
    .bind::<BigInt, _>(stale_us)
    .execute(conn)
}

/// Shard numbers for an `IN (…)` list: integers, so formatting them is safe.
fn list(shards: &[i32]) -> String {
    shards
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
