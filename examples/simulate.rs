//! Explores seeds of the deterministic simulation (`payment_engine::sim`).
//!
//! ```sh
//! cargo run --release --example simulate -- --seeds 100000           # seeds 0..100000
//! cargo run --release --example simulate -- --seeds 1000 --from 5000 --steps 20000
//! cargo run --release --example simulate -- --seed 42                 # replay one seed
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use payment_engine::sim::{Counts, run};

#[derive(Parser)]
#[command(about = "Runs the deterministic simulation of the payment protocol over many seeds")]
struct Args {
    /// How many seeds to run.
    #[arg(long, default_value_t = 10_000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Replay this one seed (overrides --seeds and --from).
    #[arg(long)]
    seed: Option<u64>,
    /// Random steps per seed.
    #[arg(long, default_value_t = 2_000)]
    steps: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seeds = match args.seed {
        Some(seed) => seed..seed + 1,
        None => args.from..args.from.saturating_add(args.seeds),
    };
    let started = Instant::now();
    let mut total = Counts::default();
    for seed in seeds.clone() {
        match run(seed, args.steps) {
            Ok(counts) => total.add(&counts),
            Err(failure) => {
                eprintln!("{failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{} seeds x {} steps passed in {:.1} s: {total}",
        seeds.end - seeds.start,
        args.steps,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
