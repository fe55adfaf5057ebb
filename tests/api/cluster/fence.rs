//! The lease fence in the commit, at the writer (drills 2 and 3 of issue 13): a write decided
//! under a lease that moved writes nothing, and a takeover waits for a batch in flight.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use payment_engine::db::leases::{self, Holder, ShardLease};
use payment_engine::db::models::LedgerRow;
use payment_engine::db::writer::{
    BalanceChange, Fence, Rejection, WriteCommand, WriteOp, WriteResult, commit_batch,
};
use payment_engine::db::{ensure_database, run_migrations};
use payment_engine::domain::EntryKind;

use super::shard_of;
use crate::helpers::{TestDatabase, balance_row, ledger};

const TTL_US: i64 = 60_000_000;

fn migrated() -> (TestDatabase, MysqlConnection) {
    let db = TestDatabase::new();
    let url = db.url().into();
    ensure_database(&url).expect("creating the database");
    run_migrations(&url).expect("migrating");
    let mut conn = db.connect();
    leases::ensure_shards(&mut conn, 1024).unwrap();
    (db, conn)
}

fn holder(name: &str, token: i64) -> Holder {
    Holder {
        token,
        engine_id: name.to_string(),
        address: format!("{name}.invalid:1"),
    }
}

fn claim(conn: &mut MysqlConnection, buyer: i64, holder: &Holder) -> ShardLease {
    let epoch = leases::claim(conn, shard_of(buyer) as i32, holder, TTL_US)
        .unwrap()
        .unwrap_or_else(|view| panic!("{} could not claim: {view:?}", holder.engine_id));
    ShardLease {
        shard: shard_of(buyer) as i32,
        epoch,
        token: holder.token,
    }
}

fn expire(conn: &mut MysqlConnection, buyer: i64) {
    diesel::sql_query(format!(
        "UPDATE shard_leases SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE shard = {}",
        shard_of(buyer)
    ))
    .execute(conn)
    .unwrap();
}

/// A charge of `amount` taking `buyer` from `from` (version, balance, token) to the next version.
fn charge(
    buyer: i64,
    from: Option<(i64, i64, i64)>,
    amount: i64,
    token: i64,
    lease: ShardLease,
) -> WriteOp {
    let (version, balance) = from.map_or((0, 0), |(v, b, _)| (v, b));
    WriteOp {
        buyer_id: buyer,
        command: WriteCommand::Charge(BalanceChange {
            expected: from.map(|(version, _, token)| Fence { version, token }),
            balance: balance + amount,
            fence_token: token,
            entry: LedgerRow {
                buyer_id: buyer,
                version: version + 1,
                kind: EntryKind::Charge,
                amount,
                balance_after: balance + amount,
                order_id: None,
                payment_id: None,
                refund_id: None,
                created_at: Utc::now().naive_utc(),
            },
        }),
        idempotency: None,
        event: None,
        lease: Some(lease),
    }
}

fn commit(conn: &mut MysqlConnection, ops: &[WriteOp]) -> Vec<WriteResult> {
    commit_batch(conn, ops, Utc::now().naive_utc()).expect("the batch commits")
}

#[test]
fn a_write_decided_under_a_lease_taken_over_is_refused_not_owner_and_the_owner_writes_first_time() {
    let (_db, mut conn) = migrated();
    let (a, b) = (holder("a", 11), holder("b", 22));
    let a_lease = claim(&mut conn, 1, &a);
    let a_other = claim(&mut conn, 2, &a);
    assert_eq!(
        commit(
            &mut conn,
            &[
                charge(1, None, 10, 101, a_lease),
                charge(2, None, 10, 101, a_other)
            ]
        ),
        vec![WriteResult::Committed; 2]
    );
    // `a` pauses past its lease of buyer 1's shard; `b` takes it over.
    expire(&mut conn, 1);
    let b_lease = claim(&mut conn, 1, &b);
    assert_eq!(b_lease.epoch, a_lease.epoch + 1);

    // `a` wakes up and commits what it had decided: only the moved shard's write is refused.
    let results = commit(
        &mut conn,
        &[
            charge(1, Some((1, 10, 101)), 5, 101, a_lease),
            charge(2, Some((1, 10, 101)), 5, 101, a_other),
        ],
    );
    assert_eq!(
        results,
        vec![
            WriteResult::Rejected(Rejection::NotOwner),
            WriteResult::Committed
        ]
    );
    let row = balance_row(&mut conn, 1).unwrap();
    assert_eq!(
        (row.balance, row.version),
        (10, 1),
        "buyer 1's row is unchanged"
    );
    assert_eq!(ledger(&mut conn, 1).len(), 1);

    // The owner's first write (on the row it read) commits first time.
    let results = commit(&mut conn, &[charge(1, Some((1, 10, 101)), 7, 202, b_lease)]);
    assert_eq!(results, vec![WriteResult::Committed]);
    assert_eq!(balance_row(&mut conn, 1).unwrap().balance, 17);
}

#[test]
fn a_takeover_waits_for_the_batch_holding_the_lease_and_the_old_owners_next_batch_writes_nothing() {
    let (db, mut conn) = migrated();
    let (a, b) = (holder("a", 11), holder("b", 22));
    let a_lease = claim(&mut conn, 3, &a);
    commit(&mut conn, &[charge(3, None, 10, 101, a_lease)]);
    expire(&mut conn, 3);

    // A batch of `a` in flight: its transaction has read the lease with a shared lock.
    let claim_started = std::sync::Arc::new(std::sync::Mutex::new(None));
    let started = std::sync::Arc::clone(&claim_started);
    let url = db.url();
    let outcome = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        // As the batch's fence does (db/writer/fence.rs).
        let held = diesel::sql_query(format!(
            "SELECT shard FROM shard_leases WHERE owner_token = {} AND shard = {} \
             AND epoch = {} LOCK IN SHARE MODE",
            a.token, a_lease.shard, a_lease.epoch
        ))
        .execute(conn)?;
        assert_eq!(held, 1, "the lease is still `a`'s");
        let takeover = std::thread::spawn(move || {
            let mut other = MysqlConnection::establish(&url).unwrap();
            *started.lock().unwrap() = Some(Instant::now());
            let epoch = leases::claim(&mut other, shard_of(3) as i32, &b, TTL_US).unwrap();
            (epoch, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(600));
        Ok(takeover)
    });
    let committed_at = Instant::now();
    let (claimed, claimed_at) = outcome.unwrap().join().unwrap();
    let waited = claimed_at - claim_started.lock().unwrap().unwrap();
    assert_eq!(claimed, Ok(a_lease.epoch + 1), "`b` got the lease");
    assert!(
        claimed_at >= committed_at && waited >= Duration::from_millis(400),
        "the claim waited for the batch: {waited:?}"
    );
    // `a`'s next batch writes nothing.
    let results = commit(&mut conn, &[charge(3, Some((1, 10, 101)), 5, 101, a_lease)]);
    assert_eq!(results, vec![WriteResult::Rejected(Rejection::NotOwner)]);
    assert_eq!(balance_row(&mut conn, 3).unwrap().version, 1);
}
