//! The simulation over a fixed set of seeds, as CI runs it.

use super::{Counts, run};

/// Seeds CI runs on every build; `examples/simulate.rs` explores many more.
const CI_SEEDS: std::ops::Range<u64> = 0..300;
const CI_STEPS: usize = 2_000;

#[test]
fn a_fixed_set_of_seeds_keeps_every_invariant_under_every_fault() {
    let mut total = Counts::default();
    for seed in CI_SEEDS {
        match run(seed, CI_STEPS) {
            Ok(counts) => total.add(&counts),
            Err(failure) => panic!("{failure}"),
        }
    }
    println!(
        "simulated {} seeds x {CI_STEPS} steps: {total}",
        CI_SEEDS.end - CI_SEEDS.start
    );
    assert_eq!(
        total.missing_faults(),
        Vec::<&str>::new(),
        "every fault kind is injected: {total}"
    );
    assert_eq!(
        total.missing_lifecycle(),
        Vec::<&str>::new(),
        "refunds and cancellations are both accepted and refused: {total}"
    );
}

/// Few seeds already meet every lifecycle answer: should the workload stop generating
/// refunds or cancellations (or the actor stop reading payments), this fails rather than the
/// invariants passing vacuously.
#[test]
fn a_few_seeds_accept_and_refuse_refunds_and_cancellations() {
    let mut total = Counts::default();
    for seed in 0..20 {
        total.add(&run(seed, CI_STEPS).unwrap_or_else(|failure| panic!("{failure}")));
    }
    assert_eq!(total.missing_lifecycle(), Vec::<&str>::new(), "{total}");
    assert!(
        total.refunds >= 50 && total.cancels >= 50,
        "refunds and cancellations commit often enough to matter: {total}"
    );
}

#[test]
fn the_same_seed_replays_exactly() {
    for seed in [3, 17, 4242] {
        assert_eq!(run(seed, 1_500), run(seed, 1_500));
    }
}
