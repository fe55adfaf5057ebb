//! HTTP-level tests of the payment engine: each test gets its own throwaway MariaDB database and
//! its own server on a free port (see `helpers`).

mod helpers;
mod kafka;

mod audit;
mod auth;
mod cluster;
mod concurrency;
mod contract;
mod db_errors;
mod drills;
mod durability;
mod errors;
mod events;
mod health;
mod history;
mod hostile;
mod hostile_inputs;
mod idempotency;
mod lanes;
mod layout;
mod lifecycle;
mod lists;
mod live_buyers;
mod metrics;
mod model;
mod observability;
mod orders;
mod payments;
mod points;
mod seed;
mod writer_model;
