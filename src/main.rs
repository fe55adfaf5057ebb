use clap::Parser;
use payment_engine::config::Cli;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    payment_engine::telemetry::init(cli.settings.log_format);
    payment_engine::cli::run(cli).await
}
