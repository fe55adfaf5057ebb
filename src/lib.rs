//! payment-engine: an actor-based payment engine. Buyers charge points and pay orders; each
//! buyer's requests are serialized by a BuyerActor, writes are group-committed to MySQL/MariaDB
//! by the PaymentCoordinator. See ARCHITECTURE.md.

pub mod actors;
pub mod audit;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod http;
pub mod metrics;
pub mod seed;
pub mod sim;
pub mod startup;
pub mod telemetry;
