//! The `payment-engine audit` command: its flags, the connection, and the exit code.

use std::process::ExitCode;

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};

use super::output::ProgressDisplay;
use super::{
    AuditOptions, ChargeEvents, DEFAULT_CHUNK_BUYERS, DEFAULT_JOBS, DEFAULT_MAX_FINDINGS, Report,
    audit_with_jobs,
};
use crate::db::{DatabaseUrl, missing_migrations};

/// No finding.
pub const EXIT_CLEAN: u8 = 0;
/// At least one finding.
pub const EXIT_FINDINGS: u8 = 1;
/// The audit could not run: bad URL, database unreachable, migrations missing, a query failed.
pub const EXIT_COULD_NOT_RUN: u8 = 2;

/// The audit's own flags (the database URL and MAX_BALANCE_POINTS are the engine's settings).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Write the report as one JSON document on stdout (its shape: README, `audit`).
    #[arg(long)]
    pub json: bool,
    /// Audit only this buyer (their events included).
    #[arg(long, value_name = "BUYER_ID")]
    pub buyer: Option<i64>,
    /// Buyers per chunk; each chunk is read in one consistent snapshot.
    #[arg(
        long,
        value_name = "BUYERS",
        default_value_t = DEFAULT_CHUNK_BUYERS,
        value_parser = clap::value_parser!(i64).range(1..=1_000_000)
    )]
    pub chunk_buyers: i64,
    /// Whether charges must have `points.charged` events: `auto` requires them once the
    /// database holds (or pruned) any.
    #[arg(long, value_enum, default_value_t = ChargeEvents::Auto)]
    pub charge_events: ChargeEvents,
    /// Most findings listed (every finding is counted).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FINDINGS)]
    pub max_findings: usize,
    /// Chunks audited at once, each on its own connection (and in its own snapshots): at most
    /// this many of the database's cores go to the audit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_JOBS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64)
    )]
    pub jobs: usize,
}

impl AuditArgs {
    pub fn options(&self, max_balance: i64) -> AuditOptions {
        AuditOptions {
            max_balance,
            chunk_buyers: self.chunk_buyers,
            buyer: self.buyer,
            charge_events: self.charge_events,
            max_findings: self.max_findings,
            jobs: self.jobs,
        }
    }
}

/// Runs the audit against `url` and prints its report (stdout) and progress (stderr). Blocking.
pub fn run_command(url: &DatabaseUrl, max_balance: i64, args: &AuditArgs) -> ExitCode {
    let options = args.options(max_balance);
    match connect_and_audit(url, &options) {
        Ok(report) => {
            let database = url.redacted();
            if args.json {
                match serde_json::to_string_pretty(&report.to_json(database, &options)) {
                    Ok(json) => println!("{json}"),
                    Err(error) => return could_not_run(&format!("writing the report: {error}")),
                }
            } else {
                print!("{}", report.summary(&database));
            }
            ExitCode::from(if report.is_clean() {
                EXIT_CLEAN
            } else {
                EXIT_FINDINGS
            })
        }
        Err(error) => could_not_run(&format!("{error:#}")),
    }
}

fn could_not_run(why: &str) -> ExitCode {
    eprintln!("payment-engine audit could not run: {why}");
    ExitCode::from(EXIT_COULD_NOT_RUN)
}

fn connect_and_audit(url: &DatabaseUrl, options: &AuditOptions) -> anyhow::Result<Report> {
    let mut conn = connect(url)?;
    let missing = missing_migrations(&mut conn)?;
    if !missing.is_empty() {
        anyhow::bail!(
            "{url} lacks migrations {} (run `payment-engine migrate`, or start the engine)",
            missing.join(", ")
        );
    }
    let mut display = ProgressDisplay::new();
    let report = audit_with_jobs(&mut conn, || connect(url), options, &mut |progress| {
        display.update(progress)
    });
    display.finish();
    report
}

/// A read-only session on `url`, for the audit's first connection and each further worker's.
fn connect(url: &DatabaseUrl) -> anyhow::Result<MysqlConnection> {
    // Diesel's error may quote the URL: say only which (redacted) URL failed, and why in words.
    let mut conn = MysqlConnection::establish(url.expose_secret())
        .map_err(|error| anyhow::anyhow!("cannot connect to {url}: {}", redact_error(&error)))?;
    // Belt and braces: every chunk's transaction is READ ONLY, and so is the whole session.
    conn.batch_execute("SET SESSION TRANSACTION READ ONLY")?;
    Ok(conn)
}

/// A connection error's text without any URL in it.
fn redact_error(error: &diesel::ConnectionError) -> String {
    let text = error.to_string();
    if text.contains("mysql://") {
        "the database URL is malformed".to_owned()
    } else {
        text
    }
}
