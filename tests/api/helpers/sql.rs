//! Direct reads of the test database, bypassing the engine, and a row lock that holds engine
//! writes in flight.

use std::time::Duration;

use diesel::mysql::MysqlConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use payment_engine::db::models::RefundRow;
use payment_engine::db::schema::refunds;

use super::app::{TestDatabase, admin_conn};

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LedgerEntry {
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = BigInt)]
    pub balance_after: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub order_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub payment_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub refund_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct BalanceSql {
    #[diesel(sql_type = BigInt)]
    pub balance: i64,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LedgerSummary {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub min_version: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub max_version: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub sum: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct OrderSql {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    pub total_price: i64,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub has_paid_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PaymentSql {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub order_id: i64,
    #[diesel(sql_type = BigInt)]
    pub buyer_id: i64,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = BigInt)]
    pub balance_after: i64,
    #[diesel(sql_type = BigInt)]
    pub ledger_version: i64,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `SELECT ... AS n` returning one integer.
pub fn scalar(conn: &mut MysqlConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// The buyer's ledger entries by version ascending.
pub fn ledger(conn: &mut MysqlConnection, buyer: i64) -> Vec<LedgerEntry> {
    diesel::sql_query(
        "SELECT version, kind, amount, balance_after, order_id, payment_id, refund_id \
         FROM ledger_entries WHERE buyer_id = ? ORDER BY version",
    )
    .bind::<BigInt, _>(buyer)
    .load(conn)
    .expect("reading ledger_entries")
}

pub fn ledger_summary(conn: &mut MysqlConnection, buyer: i64) -> LedgerSummary {
    diesel::sql_query(
        "SELECT COUNT(*) AS count, MIN(version) AS min_version, MAX(version) AS max_version, \
         CAST(COALESCE(SUM(amount), 0) AS SIGNED) AS sum FROM ledger_entries WHERE buyer_id = ?",
    )
    .bind::<BigInt, _>(buyer)
    .get_result(conn)
    .expect("summarizing ledger_entries")
}

pub fn ledger_count(conn: &mut MysqlConnection, buyer: i64) -> i64 {
    ledger_summary(conn, buyer).count
}

/// The buyer's balances row, if any.
pub fn balance_row(conn: &mut MysqlConnection, buyer: i64) -> Option<BalanceSql> {
    diesel::sql_query("SELECT balance, version FROM balances WHERE buyer_id = ?")
        .bind::<BigInt, _>(buyer)
        .get_result(conn)
        .optional()
        .expect("reading balances")
}

const ORDER_COLUMNS: &str =
    "id, buyer_id, total_price, status, CAST(paid_at IS NOT NULL AS SIGNED) AS has_paid_at";

pub fn order_row(conn: &mut MysqlConnection, order: i64) -> Option<OrderSql> {
    diesel::sql_query(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
        .bind::<BigInt, _>(order)
        .get_result(conn)
        .optional()
        .expect("reading orders")
}

pub fn orders_of(conn: &mut MysqlConnection, buyer: i64) -> Vec<OrderSql> {
    diesel::sql_query(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE buyer_id = ? ORDER BY id"
    ))
    .bind::<BigInt, _>(buyer)
    .load(conn)
    .expect("reading orders")
}

/// The columns `PaymentSql` reads.
const PAYMENT_COLUMNS: &str = "id, order_id, buyer_id, amount, balance_after, ledger_version";

pub fn payments_of(conn: &mut MysqlConnection, buyer: i64) -> Vec<PaymentSql> {
    diesel::sql_query(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE buyer_id = ? ORDER BY id"
    ))
    .bind::<BigInt, _>(buyer)
    .load(conn)
    .expect("reading payments")
}

pub fn payments_for_order(conn: &mut MysqlConnection, order: i64) -> Vec<PaymentSql> {
    diesel::sql_query(format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = ? ORDER BY id"
    ))
    .bind::<BigInt, _>(order)
    .load(conn)
    .expect("reading payments")
}

/// The refunds row `refund`, if any.
pub fn refund_row(conn: &mut MysqlConnection, refund: i64) -> Option<RefundRow> {
    refunds::table
        .find(refund)
        .select(RefundRow::as_select())
        .first(conn)
        .optional()
        .expect("reading refunds")
}

/// Holds an exclusive lock on a buyer's `balances` row, in an open transaction, until released
/// or dropped: every engine write touching that buyer waits, so the test can observe a request
/// while it is in flight.
pub struct BalanceLock {
    conn: Option<MysqlConnection>,
    db_name: String,
}

impl BalanceLock {
    pub fn acquire(db: &TestDatabase, buyer: i64) -> BalanceLock {
        use diesel::connection::SimpleConnection;
        let mut conn = db.connect();
        conn.batch_execute("START TRANSACTION")
            .expect("starting the locking transaction");
        let locked: Vec<BalanceSql> = diesel::sql_query(
            "SELECT balance, version FROM balances WHERE buyer_id = ? FOR UPDATE",
        )
        .bind::<BigInt, _>(buyer)
        .load(&mut conn)
        .expect("locking the balances row");
        assert_eq!(
            locked.len(),
            1,
            "buyer {buyer} needs a balances row to lock"
        );
        BalanceLock {
            conn: Some(conn),
            db_name: db.name().to_string(),
        }
    }

    /// Waits until an engine write to `balances` is blocked on the lock (at most 10 s).
    pub async fn wait_for_a_waiter(&self) {
        let mut conn = admin_conn();
        // (MariaDB does not always list the waiting transaction in INNODB_TRX; the statement
        // itself shows in the process list for as long as it waits.)
        let sql = format!(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST \
             WHERE DB = '{}' AND INFO LIKE 'UPDATE%balances%'",
            self.db_name
        );
        let start = std::time::Instant::now();
        while scalar(&mut conn, &sql) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no engine write started waiting for the locked row"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn release(mut self) {
        self.rollback();
    }

    fn rollback(&mut self) {
        use diesel::connection::SimpleConnection;
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.batch_execute("ROLLBACK");
        }
    }
}

impl Drop for BalanceLock {
    fn drop(&mut self) {
        self.rollback();
    }
}
