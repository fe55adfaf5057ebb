//! The commands of the `payment-engine` binary.

use anyhow::Context;
use diesel::{Connection, MysqlConnection};

use crate::config::{Cli, Command, Settings};
use crate::db::{ensure_database, run_migrations};
use crate::seed::seed_demo_data;
use crate::startup::Application;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve { seed: false }) {
        Command::Migrate => blocking(move || migrate(&settings)).await,
        Command::Seed => {
            blocking(move || {
                migrate(&settings)?;
                seed(&settings)
            })
            .await
        }
        Command::Events { command } => crate::events::cli::run(settings, command).await,
        Command::Serve { seed: with_seed } => {
            if with_seed {
                let seed_settings = settings.clone();
                blocking(move || {
                    migrate(&seed_settings)?;
                    seed(&seed_settings)
                })
                .await?;
            }
            serve(settings).await
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind_addr;
    let app = Application::build(settings.clone()).await?;
    tracing::info!(
        address = %bind, port = app.port(), database = %settings.database_url,
        "payment-engine listening; API docs at /docs/"
    );
    app.stop_on_signals()?;
    app.run_until_stopped().await?;
    tracing::info!("payment-engine stopped");
    Ok(())
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    ensure_database(&settings.database_url)?;
    run_migrations(&settings.database_url)?;
    tracing::info!(database = %settings.database_url, "migrations applied");
    Ok(())
}

fn seed(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = MysqlConnection::establish(settings.database_url.expose_secret())
        .with_context(|| format!("cannot connect to {}", settings.database_url))?;
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
pub(crate) async fn blocking<F>(f: F) -> anyhow::Result<()>
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task failed")?
}
