//! Every setting: a flag, an environment variable and a default (`payment-engine --help`), one
//! settings type per component, composed here into [`Settings`].
//!
//! This module sits above the components: it names their types (`ApiTokens`, `DatabaseUrl`,
//! `Points`, `KafkaSettings`) and none of them imports it. `startup` hands each component its
//! part; the `cli` parses it.
//!
//! An argument whose field is not named after its flag (`url`, `idle_timeout`) has its flat name
//! (its environment variable in lower case) as `id` and value name: clap tells arguments apart
//! by id across every component and command (`events tail`'s own `idle_timeout` would shadow
//! the buyers'), and `--help` names its value in the unit it is given in.

mod buyers;
mod cluster;
mod coordinator;
mod database;
mod http;

use std::num::ParseIntError;
use std::time::Duration;

use clap::{Args, Parser};

pub use buyers::BuyerSettings;
pub use cluster::ClusterSettings;
pub use coordinator::CoordinatorSettings;
pub use database::DatabaseSettings;
pub use http::HttpSettings;

use crate::events::kafka::KafkaSettings;
use crate::telemetry::LogFormat;

#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpSettings,

    #[command(flatten)]
    pub database: DatabaseSettings,

    #[command(flatten)]
    pub buyers: BuyerSettings,

    #[command(flatten)]
    pub coordinator: CoordinatorSettings,

    #[command(flatten)]
    pub cluster: ClusterSettings,

    /// The publisher's and the `events` commands' own settings type (`events::kafka`), as the
    /// publisher takes it whole.
    #[command(flatten)]
    pub kafka: KafkaSettings,

    /// Log output format (filter with RUST_LOG).
    #[arg(long, env = "LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl Settings {
    /// The defaults, as `payment-engine` with no flags and no environment would use.
    pub fn defaults() -> Settings {
        Defaults::parse_from(["payment-engine"]).settings
    }
}

/// The settings alone, without the commands of the `payment-engine` binary (`cli`).
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    settings: Settings,
}

/// For clap: a duration given in whole seconds (the `_S` settings).
pub fn seconds(raw: &str) -> Result<Duration, ParseIntError> {
    raw.parse().map(Duration::from_secs)
}

/// For clap: a duration given in milliseconds (the `_MS` settings).
pub fn millis(raw: &str) -> Result<Duration, ParseIntError> {
    raw.parse().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_the_unit_their_name_says() {
        assert_eq!(seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(millis("2"), Ok(Duration::from_millis(2)));
        assert!(seconds("2s").is_err() && millis("-1").is_err());
    }
}
