//! Persistence: the generated schema, row structs, plain query functions taking
//! `&mut MysqlConnection`, and the group-commit writer.

mod database_url;
mod error;
pub mod ids;
pub mod leases;
pub mod lists;
pub mod models;
pub mod outbox;
pub mod pool;
pub mod queries;
pub mod schema;
mod types;
pub mod writer;

pub use database_url::DatabaseUrl;
pub use error::{DbError, ErrorClass};
pub use pool::{
    Db, DbPool, PoolSettings, build_pool, ensure_database, missing_migrations, run_migrations,
};
