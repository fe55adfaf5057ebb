//! The `payment-engine` command line: its commands, parsed with the [`Settings`], and what each
//! one runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use diesel::{Connection, MysqlConnection};

use crate::audit::{self, AuditArgs};
use crate::config::{self, Settings};
use crate::db::{DatabaseUrl, ensure_database, run_migrations};
use crate::events::admin;
use crate::seed::seed_demo_data;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "payment-engine",
    version,
    about = "Actor-based payment engine: points, orders, payments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve the HTTP API (the default).
    Serve {
        /// Also load the demo data (see `seed`) before serving.
        #[arg(long, env = "SEED_DEMO_DATA")]
        seed: bool,
    },
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
    /// Load demo data: buyers 1..7 with a starting balance and orders 1..107 spread over them.
    Seed,
    /// Events: tail the topics, list and re-drive dead events, write the event contract.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Check the books of a live database, read only: balances against ledgers, payments,
    /// orders and refunds against each other, every committed movement against its event.
    /// Exits 0 when clean, 1 with findings, 2 when it could not run.
    Audit(AuditArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// Print events from the topics as JSON lines (one per message), until Ctrl-C.
    Tail {
        /// Start from the oldest retained message instead of new ones.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many messages.
        #[arg(long)]
        max_messages: Option<u64>,
        /// Stop when no message arrived for this long.
        #[arg(
            id = "idle_timeout_s",
            value_name = "IDLE_TIMEOUT_S",
            long = "idle-timeout-s",
            value_parser = config::seconds
        )]
        idle_timeout: Option<Duration>,
    },
    /// List events parked as dead, with their last error.
    Dead {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put dead events back in line for publishing (all, or the given event ids).
    Redrive {
        #[arg(long, conflicts_with = "event_ids")]
        all: bool,
        event_ids: Vec<String>,
    },
    /// Write the JSON Schema of every event type this binary publishes (TYPE.vN.schema.json).
    Schema {
        /// Directory to write into (created if missing); other versions' files stay.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Runs the command; its exit code is the audit's (0, 1, 2), or 0 for the others, which
/// return their failure as an error instead.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve { seed: false }) {
        Command::Migrate => blocking(move || migrate(&settings.database.url)).await?,
        Command::Seed => blocking(move || migrate_and_seed(&settings.database.url)).await?,
        Command::Events { command } => events(settings, command).await?,
        Command::Audit(args) => {
            let (url, max_balance) = (settings.database.url, settings.buyers.max_balance.get());
            return tokio::task::spawn_blocking(move || {
                audit::run_command(&url, max_balance, &args)
            })
            .await
            .context("the audit task failed");
        }
        Command::Serve { seed: with_seed } => {
            if with_seed {
                let url = settings.database.url.clone();
                blocking(move || migrate_and_seed(&url)).await?;
            }
            serve(settings).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.http.bind_addr;
    let database = settings.database.url.clone();
    let app = Application::build(settings).await?;
    tracing::info!(
        address = %bind, port = app.port(), database = %database,
        "payment-engine listening; API docs at /docs/"
    );
    app.stop_on_signals()?;
    app.run_until_stopped().await?;
    tracing::info!("payment-engine stopped");
    Ok(())
}

async fn events(settings: Settings, command: EventsCommand) -> anyhow::Result<()> {
    let url = settings.database.url;
    match command {
        EventsCommand::Tail {
            from_beginning,
            max_messages,
            idle_timeout,
        } => admin::tail(&settings.kafka, from_beginning, max_messages, idle_timeout).await,
        EventsCommand::Dead { limit } => blocking(move || admin::dead(&url, limit)).await,
        EventsCommand::Redrive { all, event_ids } => {
            if !all && event_ids.is_empty() {
                anyhow::bail!("name event ids to re-drive, or pass --all");
            }
            blocking(move || admin::redrive(&url, (!all).then_some(event_ids))).await
        }
        EventsCommand::Schema { out } => {
            for path in crate::events::schema::write_all(&out)? {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

fn migrate(url: &DatabaseUrl) -> anyhow::Result<()> {
    ensure_database(url)?;
    run_migrations(url)?;
    tracing::info!(database = %url, "migrations applied");
    Ok(())
}

fn migrate_and_seed(url: &DatabaseUrl) -> anyhow::Result<()> {
    migrate(url)?;
    let mut conn = MysqlConnection::establish(url.expose_secret())
        .with_context(|| format!("cannot connect to {url}"))?;
    if seed_demo_data(&mut conn)? {
        tracing::info!("demo data loaded: buyers 1..7, orders 1..107");
    } else {
        tracing::info!(
            "demo data already present (buyers or orders 1..107 exist); nothing changed"
        );
    }
    Ok(())
}

/// Runs blocking work (Diesel, librdkafka's blocking calls) off the async threads.
async fn blocking<F>(f: F) -> anyhow::Result<()>
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task failed")?
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed_and_its_defaults_parse() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "payment-engine",
            "events",
            "tail",
            "--idle-timeout-s",
            "3",
            "--buyer-idle-timeout-s",
            "5",
        ])
        .expect("events tail parses");
        assert!(matches!(
            cli.command,
            Some(Command::Events {
                command: EventsCommand::Tail { idle_timeout: Some(t), .. }
            }) if t == Duration::from_secs(3)
        ));
        // Settings and command options are told apart (clap matches them by id).
        assert_eq!(cli.settings.buyers.idle_timeout, Duration::from_secs(5));
        let _ = Settings::defaults();
    }

    /// The README's configuration table, as (flag, environment variable) pairs.
    fn documented_settings() -> Vec<(String, String)> {
        include_str!("../README.md")
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(|cell| cell.trim().trim_matches('`'));
                let (_, flag, env) = (cells.next()?, cells.next()?, cells.next()?);
                let name = flag.strip_prefix("--")?;
                name.starts_with(|c: char| c.is_ascii_lowercase())
                    .then(|| (flag.to_owned(), env.to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_setting_has_the_flag_and_environment_variable_the_readme_documents() {
        let command = Cli::command();
        let settings: Vec<(String, String)> = command
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_str()?.to_owned();
                Some((format!("--{}", arg.get_long()?), env))
            })
            .collect();
        let documented = documented_settings();
        for setting in &settings {
            assert!(documented.contains(setting), "README lacks {setting:?}");
        }
        for row in &documented {
            assert!(
                settings.contains(row),
                "README documents {row:?}, unknown to clap"
            );
        }
    }
}
