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
}

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

/// Checks the chunk's balance rows and ledgers; returns how many of each it read.
pub(super) fn check(
    conn: &mut MysqlConnection,
    chunk: Chunk,
    max_balance: i64,
    findings: &mut Findings,
) -> QueryResult<Checked> {
    let balances: Vec<BalanceSql> = diesel::sql_query(
        "SELECT buyer_id, balance, version FROM balances WHERE buyer_id BETWEEN ? AND ? \
         ORDER BY buyer_id",
    )
    .bind::<BigInt, _>(chunk.first)
    .bind::<BigInt, _>(chunk.last)
    .load(conn)?;
    let ledgers: BTreeMap<i64, LedgerSql> = diesel::sql_query(
        "SELECT buyer_id, COUNT(*) AS entries, CAST(SUM(amount) AS SIGNED) AS total, \
         MIN(version) AS first_version, MAX(version) AS last_version \
         FROM ledger_entries WHERE buyer_id BETWEEN ? AND ? GROUP BY buyer_id",
    )
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
    check_entries(conn, chunk, max_balance, findings)?;
    Ok(checked)
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

/// Entries whose balance_after is not the previous entry's plus their amount, out of bounds, or
/// not shaped as their kind: a CHARGE adds and names nothing; a PAYMENT takes and names its order
/// and payment; a REFUND gives back and names its refund.
const ENTRIES: &str = "\
    SELECT buyer_id, version, kind, amount, balance_after, previous, \
      COALESCE(balance_after <> COALESCE(previous, 0) + amount, 1) AS chain_broken, \
      (balance_after < 0 OR balance_after > ?) AS out_of_bounds, \
      NOT ((kind = 'CHARGE' AND amount > 0 AND order_id IS NULL AND payment_id IS NULL \
            AND refund_id IS NULL) \
        OR (kind = 'PAYMENT' AND amount < 0 AND order_id IS NOT NULL \
            AND payment_id IS NOT NULL AND refund_id IS NULL) \
        OR (kind = 'REFUND' AND amount > 0 AND refund_id IS NOT NULL)) AS malformed \
    FROM (SELECT l.*, LAG(balance_after) OVER (PARTITION BY buyer_id ORDER BY version) \
            AS previous \
          FROM ledger_entries l WHERE buyer_id BETWEEN ? AND ?) entries \
    HAVING chain_broken OR out_of_bounds OR malformed";

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
