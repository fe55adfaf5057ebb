//! Test harness: a throwaway database and a real server on port 0 per test (`app`), an HTTP
//! client with one helper per route (`client`, `response`), direct SQL reads of the database
//! (`sql`), and the invariants of the books checked there (`invariants`).
//!
//! Tests import everything from `crate::helpers`; the files below are an internal layout.

mod app;
mod client;
mod invariants;
mod response;
mod sql;

pub use app::{
    TestApp, TestDatabase, admin_conn, server_url, server_url_as, spawn_app, spawn_app_on,
    spawn_app_on_with, spawn_app_with, startup_error, test_settings,
};
pub use client::new_key;
pub use invariants::{
    assert_all_invariants, assert_buyer_invariants, assert_entry_matches_ledger, audit_books,
};
pub use response::{ApiResponse, int, rfc3339};
pub use sql::{
    BalanceLock, LedgerEntry, PaymentSql, balance_row, ledger, ledger_count, ledger_summary,
    order_row, orders_of, payments_for_order, payments_of, refund_row, scalar,
};
