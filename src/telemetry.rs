//! The one tracing subscriber: RUST_LOG filter, pretty or JSON output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The request logger reports every error response at WARN or ERROR, including the expected
/// 4xx answers (unknown order, already paid, ...) that make up most of some workloads. Unless
/// RUST_LOG says otherwise, only its 5xx (ERROR) lines are kept; handlers log real failures
/// themselves.
const REQUEST_LOGGER_DEFAULT: &str = "tracing_actix_web::middleware=error";

/// Installs the global subscriber (once per process; later calls are ignored).
pub fn init(format: LogFormat) {
    let configured = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(if configured.is_empty() {
        "info"
    } else {
        &configured
    })
    .unwrap_or_else(|_| EnvFilter::new("info"));
    if !configured.contains("tracing_actix_web") {
        if let Ok(directive) = REQUEST_LOGGER_DEFAULT.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
