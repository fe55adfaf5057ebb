//! The books of each buyer: the balance row against the ledger (sum, versions, bounds), and
//! every ledger entry against the one before it and its kind's shape.

use std::collections::BTreeMap;

use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::{Checked, Chunk, Finding, FindingKind, Findings};

#[derive(QueryableByName)]
struct BalanceSql {
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    balance: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// A buyer's ledger in aggregate.
#[derive(QueryableByName)]
struct LedgerSql {
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    entries: i64,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    first_version: i64,
    #[diesel(sql_type = BigInt)]
    last_version: i64,
    /// Entries that break a rule (`entry_flags!`).
    #[diesel(sql_type = BigInt)]
    bad_entries: i64,
    #[diesel(sql_type = BigInt)]
    payment_entries: i64,
    #[diesel(sql_type = BigInt)]
    refund_entries: i64,
}

/// Per buyer, how many PAYMENT and REFUND entries the ledger holds.
pub(super) type EntryKinds = BTreeMap<i64, [i64; 2]>;

/// A ledger entry that does not follow from the previous one, or is not shaped as its kind.
#[derive(QueryableByName)]
struct EntrySql {
    #[diesel(sql_type = BigInt)]
    buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = BigInt)]
    balance_after: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    previous: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    chain_broken: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    out_of_bounds: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    malformed: bool,
}

/// Checks the chunk's balance rows and ledgers; returns how many of each it read, and each
/// buyer's PAYMENT and REFUND entries.
pub(super) fn check(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    max_balance: i64,
    findings: &mut Findings,
) -> QueryResult<(Checked, EntryKinds)> {
    let balances: Vec<BalanceSql> = diesel::sql_query(
        "SELECT buyer_id, balance, version FROM balances WHERE buyer_id BETWEEN ? AND ? \
         ORDER BY buyer_id",
    )
    .bind::<BigInt, _>(chunk.first)
    .bind::<BigInt, _>(chunk.last)
    .load(conn)?;
    // One pass over the chunk's ledger: per-buyer aggregates, and how many entries break a
    // rule (read in detail only for the chunks that have any).
    let ledgers: BTreeMap<i64, LedgerSql> = diesel::sql_query(LEDGERS)
        .bind::<BigInt, _>(max_balance)
        .bind::<BigInt, _>(chunk.first)
        .bind::<BigInt, _>(chunk.last)
        .load::<LedgerSql>(conn)?
        .into_iter()
        .map(|ledger| (ledger.buyer_id, ledger))
        .collect();
    let checked = Checked {
        balances: balances.len() as u64,
        ledger_entries: ledgers.values().map(|l| l.entries as u64).sum(),
        ..Checked::default()
    };
    compare(&balances, &ledgers, max_balance, findings);
    if ledgers.values().any(|ledger| ledger.bad_entries > 0) {
        check_entries(conn, chunk, max_balance, findings)?;
    }
    let kinds = ledgers
        .values()
        .map(|l| (l.buyer_id, [l.payment_entries, l.refund_entries]))
        .collect();
    Ok((checked, kinds))
}

/// Each balance row against its buyer's ledger, and each ledger against its balance row.
fn compare(
    balances: &[BalanceSql],
    ledgers: &BTreeMap<i64, LedgerSql>,
    max_balance: i64,
    findings: &mut Findings,
) {
    for row in balances {
        let buyer = Some(row.buyer_id);
        if !(0..=max_balance).contains(&row.balance) {
            let detail = format!("balance {} outside 0..={max_balance}", row.balance);
            findings.push(Finding::new(FindingKind::BalanceOutOfBounds, buyer, detail));
        }
        let Some(ledger) = ledgers.get(&row.buyer_id) else {
            let detail = format!(
                "balance {} at version {} but no ledger entry",
                row.balance, row.version
            );
            findings.push(Finding::new(
                FindingKind::BalanceWithoutLedger,
                buyer,
                detail,
            ));
            continue;
        };
        compare_one(row, ledger, findings);
    }
    for ledger in ledgers.values() {
        if balances
            .binary_search_by_key(&ledger.buyer_id, |b| b.buyer_id)
            .is_err()
        {
            let detail = format!(
                "{} ledger entries summing to {} but no balance row",
                ledger.entries, ledger.total
            );
            let buyer = Some(ledger.buyer_id);
            findings.push(Finding::new(
                FindingKind::LedgerWithoutBalance,
                buyer,
                detail,
            ));
        }
    }
}

fn compare_one(row: &BalanceSql, ledger: &LedgerSql, findings: &mut Findings) {
    let buyer = Some(row.buyer_id);
    if row.balance != ledger.total {
        let detail = format!(
            "balance {} but the ledger sums to {}",
            row.balance, ledger.total
        );
        findings.push(Finding::new(FindingKind::BalanceMismatch, buyer, detail));
    }
    if row.version != ledger.entries {
        let detail = format!(
            "balance row at version {} but the ledger has {} entries",
            row.version, ledger.entries
        );
        findings.push(Finding::new(FindingKind::VersionMismatch, buyer, detail));
    }
    // Versions are unique per buyer (the primary key): n of them from 1 to n are exactly 1..n.
    if ledger.first_version != 1 || ledger.last_version != ledger.entries {
        let detail = format!(
            "{} ledger entries with versions {}..={}, not 1..={}",
            ledger.entries, ledger.first_version, ledger.last_version, ledger.entries
        );
        findings.push(Finding::new(FindingKind::VersionGap, buyer, detail));
    }
}

/// Every entry of a chunk with what it breaks: a balance_after that is not the previous entry's
/// plus its amount, out of bounds, or not shaped as its kind (a CHARGE adds and names nothing; a
/// PAYMENT takes and names its order and payment; a REFUND gives back and names its refund).
/// Binds the bound, then the chunk.
macro_rules! entry_flags {
    () => {
        "SELECT buyer_id, version, kind, amount, balance_after, previous, \
           COALESCE(balance_after <> COALESCE(previous, 0) + amount, 1) AS chain_broken, \
           (balance_after < 0 OR balance_after > ?) AS out_of_bounds, \
           NOT ((kind = 'CHARGE' AND amount > 0 AND order_id IS NULL AND payment_id IS NULL \
                 AND refund_id IS NULL) \
             OR (kind = 'PAYMENT' AND amount < 0 AND order_id IS NOT NULL \
                 AND payment_id IS NOT NULL AND refund_id IS NULL) \
             OR (kind = 'REFUND' AND amount > 0 AND refund_id IS NOT NULL)) AS malformed \
         FROM (SELECT buyer_id, version, kind, amount, balance_after, order_id, payment_id, \
                 refund_id, \
                 LAG(balance_after) OVER (PARTITION BY buyer_id ORDER BY version) AS previous \
               FROM ledger_entries WHERE buyer_id BETWEEN ? AND ?) entries"
    };
}

/// Each buyer's ledger in aggregate, with how many of its entries break a rule.
const LEDGERS: &str = concat!(
    "SELECT buyer_id, COUNT(*) AS entries, CAST(SUM(amount) AS SIGNED) AS total, \
     MIN(version) AS first_version, MAX(version) AS last_version, \
     CAST(SUM(chain_broken OR out_of_bounds OR malformed) AS SIGNED) AS bad_entries, \
     CAST(SUM(kind = 'PAYMENT') AS SIGNED) AS payment_entries, \
     CAST(SUM(kind = 'REFUND') AS SIGNED) AS refund_entries FROM (",
    entry_flags!(),
    ") flagged GROUP BY buyer_id"
);

/// The entries that break a rule.
const ENTRIES: &str = concat!(
    "SELECT * FROM (",
    entry_flags!(),
    ") flagged WHERE chain_broken OR out_of_bounds OR malformed"
);

fn check_entries(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    max_balance: i64,
    findings: &mut Findings,
) -> QueryResult<()> {
    let entries: Vec<EntrySql> = diesel::sql_query(ENTRIES)
        .bind::<BigInt, _>(max_balance)
        .bind::<BigInt, _>(chunk.first)
        .bind::<BigInt, _>(chunk.last)
        .load(conn)?;
    for entry in entries {
        let at = |kind: FindingKind, detail: String| {
            Finding::new(kind, Some(entry.buyer_id), detail).version(Some(entry.version))
        };
        if entry.chain_broken {
            let detail = format!(
                "{} of {} after {} leaves balance_after {}",
                entry.kind,
                entry.amount,
                entry.previous.unwrap_or(0),
                entry.balance_after
            );
            findings.push(at(FindingKind::LedgerChainBroken, detail));
        }
        if entry.out_of_bounds {
            let detail = format!("balance_after {} out of bounds", entry.balance_after);
            findings.push(at(FindingKind::BalanceOutOfBounds, detail));
        }
        if entry.malformed {
            let detail = format!(
                "a {} entry of {} is not shaped as its kind",
                entry.kind, entry.amount
            );
            findings.push(at(FindingKind::LedgerEntryMalformed, detail));
        }
    }
    Ok(())
}
