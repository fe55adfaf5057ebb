use clap::Parser;
use payment_engine::cli::Cli;

/// Buyer actors come and go by the hundred thousand (started on a first request, stopped when
/// idle): with glibc's allocator the freed memory stayed with the process (BENCHMARKS.md,
/// Memory); mimalloc hands it back to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    payment_engine::telemetry::init(cli.settings.log_format);
    payment_engine::cli::run(cli).await
}
