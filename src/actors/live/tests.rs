use super::*;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

/// An idle entry last active at `ms`.
fn idle(set: &LiveSet<u32>, hash: u64, value: u32, ms: u64) -> Arc<Activity> {
    let activity = set.new_activity(hash);
    set.insert(&activity, value);
    activity.last_active_ms.store(ms, Ordering::Relaxed);
    activity.set_busy(false);
    activity
}

#[test]
fn the_least_recently_active_idle_entry_of_a_small_set_is_the_victim() {
    let set = LiveSet::default();
    idle(&set, 1, 10, 300);
    idle(&set, 2, 20, 100);
    idle(&set, 3, 30, 200);
    let (_, victim) = set.pick_victim(&mut rng(), |_| true).unwrap();
    assert_eq!(victim, 20);
    // Claimed: the next pick proposes another one.
    let (_, next) = set.pick_victim(&mut rng(), |_| true).unwrap();
    assert_eq!(next, 30);
}

#[test]
fn a_busy_entry_or_one_its_value_rules_out_is_never_the_victim() {
    let set = LiveSet::default();
    let busy = idle(&set, 1, 10, 0);
    busy.set_busy(true);
    idle(&set, 2, 20, 1);
    idle(&set, 3, 30, 500);
    for _ in 0..20 {
        let (activity, victim) = set.pick_victim(&mut rng(), |value| *value != 20).unwrap();
        assert_eq!(victim, 30);
        activity.passivation_refused();
    }
    // A new entry is busy until its actor says otherwise.
    let fresh = LiveSet::default();
    fresh.insert(&fresh.new_activity(1), 1);
    assert!(fresh.pick_victim(&mut rng(), |_| true).is_none());
}

#[test]
fn an_entry_being_evicted_is_proposed_again_only_after_a_refusal() {
    let set = LiveSet::default();
    idle(&set, 1, 10, 0);
    let (activity, _) = set.pick_victim(&mut rng(), |_| true).unwrap();
    assert!(set.pick_victim(&mut rng(), |_| true).is_none());
    assert!(set.idle_for_at_least(Duration::ZERO).is_empty());
    activity.passivation_refused();
    assert_eq!(set.pick_victim(&mut rng(), |_| true).unwrap().1, 10);
}

#[test]
fn removal_keeps_every_other_entry_reachable_and_is_idempotent() {
    let set = LiveSet::default();
    // One shard, so removals move its entries around.
    let activities: Vec<_> = (0..5).map(|i| idle(&set, 0, i, u64::from(i))).collect();
    set.remove(&activities[1]);
    set.remove(&activities[1]);
    assert_eq!(set.len(), 4);
    set.remove(&activities[4]);
    set.remove(&activities[0]);
    assert_eq!(set.len(), 2);
    let mut left: Vec<u32> = set
        .idle_for_at_least(Duration::ZERO)
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    left.sort_unstable();
    assert_eq!(left, [2, 3]);
    set.remove(&activities[3]);
    set.remove(&activities[2]);
    assert!(set.is_empty());
    assert!(set.pick_victim(&mut rng(), |_| true).is_none());
}

#[test]
fn a_sample_of_a_large_set_finds_an_old_idle_entry() {
    let set = LiveSet::default();
    for i in 0..10_000u32 {
        idle(&set, u64::from(i), i, u64::from(i));
    }
    let mut rng = rng();
    // Sampling is approximate: the victim is old, not necessarily the oldest.
    let ages: Vec<u32> = (0..100)
        .map(|_| set.pick_victim(&mut rng, |_| true).unwrap().1)
        .collect();
    let mean = ages.iter().map(|&age| f64::from(age)).sum::<f64>() / 100.0;
    assert!(mean < 2_500.0, "mean victim position {mean} of 10,000");
}

#[test]
fn only_entries_idle_long_enough_are_found_idle() {
    let set = LiveSet::default();
    let old = idle(&set, 1, 10, 0);
    old.last_active_ms.store(0, Ordering::Relaxed);
    let recent = idle(&set, 2, 20, 0);
    recent.touch();
    let busy = idle(&set, 3, 30, 0);
    busy.set_busy(true);
    // The clock starts with the first call: make sure it has run past the threshold.
    std::thread::sleep(Duration::from_millis(60));
    recent.touch();
    let found = set.idle_for_at_least(Duration::from_millis(50));
    let values: Vec<u32> = found.iter().map(|(_, value)| *value).collect();
    assert_eq!(values, [10]);
}
