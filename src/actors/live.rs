//! The live buyer actors as a set that can be sampled: how `MAX_LIVE_BUYERS` picks whom to
//! passivate, and how the idle ones are found.
//!
//! Each live actor has an [`Activity`]: when it last handled something and whether it has work
//! pending, published by the actor itself. The set keeps every actor's activity in one of
//! [`SHARDS`] vectors (a shard is locked only for a few reads, so spawns on different threads
//! rarely meet), which gives O(1) insertion, O(1) removal (each activity knows its position) and
//! O(1) random access. Redis' approximated LRU does the rest: [`LiveSet::pick_victim`] samples a
//! few entries at random and takes the least recently active idle one. What it returns is only a
//! candidate: the actor decides for itself whether it can stop (see `BuyerActor`'s `Passivate`),
//! since only it knows for sure that nothing is queued or in flight.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;

/// Shards of the set; a power of two well above the number of threads spawning actors.
pub const SHARDS: usize = 32;

/// Entries looked at per victim (Redis' `maxmemory-samples` is 5; 10 comes close to true LRU).
pub const SAMPLES: usize = 8;

/// An activity's position once it has left the set.
const REMOVED: usize = usize::MAX;

/// What one live actor publishes about itself, for the set to choose by. Hints only: the actor
/// decides for itself when asked to stop.
#[derive(Debug)]
pub struct Activity {
    shard: usize,
    /// Position in its shard; written under the shard's lock.
    index: AtomicUsize,
    /// Milliseconds since [`epoch`] at the start of the last message handled.
    last_active_ms: AtomicU64,
    /// Writes in flight or requests waiting on one (a new actor is busy until its first
    /// command has been handled: it must not be the victim of its own arrival).
    busy: AtomicBool,
    /// Asked to passivate and not answered yet: not a candidate meanwhile.
    evicting: AtomicBool,
}

impl Activity {
    fn new(shard: usize) -> Activity {
        Activity {
            shard,
            index: AtomicUsize::new(REMOVED),
            last_active_ms: AtomicU64::new(now_ms()),
            busy: AtomicBool::new(true),
            evicting: AtomicBool::new(false),
        }
    }

    /// The actor starts handling a message.
    pub fn touch(&self) {
        self.last_active_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The actor has finished a message, with work pending or not.
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// How long since the actor last started handling a message.
    pub fn idle_for(&self) -> Duration {
        let last = self.last_active_ms.load(Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(last))
    }

    /// The actor answered a request to passivate by staying: it may be chosen again.
    pub fn passivation_refused(&self) {
        self.evicting.store(false, Ordering::Release);
    }

    /// Whether the set may propose this actor now.
    fn candidate(&self) -> bool {
        !self.busy.load(Ordering::Relaxed) && !self.evicting.load(Ordering::Acquire)
    }
}

/// Milliseconds on a clock shared by every actor (monotonic, starting with the first call).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct Entry<T> {
    activity: Arc<Activity>,
    value: T,
}

/// The live actors: each with its [`Activity`] and a `T` to reach it by.
pub struct LiveSet<T> {
    shards: Vec<Mutex<Vec<Entry<T>>>>,
    live: AtomicUsize,
}

impl<T: Clone> Default for LiveSet<T> {
    fn default() -> Self {
        LiveSet {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            live: AtomicUsize::new(0),
        }
    }
}

impl<T: Clone> LiveSet<T> {
    /// Actors in the set.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The activity of a new actor, for the shard `hash` selects; busy until the actor says
    /// otherwise. Not in the set before [`LiveSet::insert`].
    pub fn new_activity(&self, hash: u64) -> Arc<Activity> {
        Arc::new(Activity::new((hash % SHARDS as u64) as usize))
    }

    /// Adds an actor, reached by `value`.
    pub fn insert(&self, activity: &Arc<Activity>, value: T) {
        let mut entries = self.lock(activity.shard);
        activity.index.store(entries.len(), Ordering::Relaxed);
        entries.push(Entry {
            activity: Arc::clone(activity),
            value,
        });
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes an actor out of the set; removing it again does nothing.
    pub fn remove(&self, activity: &Arc<Activity>) {
        let mut entries = self.lock(activity.shard);
        let index = activity.index.load(Ordering::Relaxed);
        let present = entries
            .get(index)
            .is_some_and(|entry| Arc::ptr_eq(&entry.activity, activity));
        if !present {
            return;
        }
        entries.swap_remove(index);
        if let Some(moved) = entries.get(index) {
            moved.activity.index.store(index, Ordering::Relaxed);
        }
        activity.index.store(REMOVED, Ordering::Relaxed);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// The least recently active of [`SAMPLES`] entries drawn at random among those that are
    /// idle and pass `available` (a check of what `T` knows, say an empty mailbox), marked as
    /// being evicted so no other caller proposes it too. `None`: none of the sample qualifies.
    pub fn pick_victim(
        &self,
        rng: &mut impl Rng,
        available: impl Fn(&T) -> bool,
    ) -> Option<(Arc<Activity>, T)> {
        let mut best: Option<(u64, Arc<Activity>, T)> = None;
        // One entry from each of the next non-empty shards from a random one: spread over
        // shards at scale, and every shard of a small set gets its turn.
        let mut cursor = rng.random_range(0..SHARDS);
        for _ in 0..SAMPLES {
            let (shard, entries) = (0..SHARDS)
                .map(|step| (cursor + step) % SHARDS)
                .map(|shard| (shard, self.lock(shard)))
                .find(|(_, entries)| !entries.is_empty())?;
            cursor = shard + 1;
            let entry = &entries[rng.random_range(0..entries.len())];
            let last = entry.activity.last_active_ms.load(Ordering::Relaxed);
            let older = best.as_ref().is_none_or(|(oldest, ..)| last < *oldest);
            if older && entry.activity.candidate() && available(&entry.value) {
                best = Some((last, Arc::clone(&entry.activity), entry.value.clone()));
            }
        }
        let (_, activity, value) = best?;
        let claimed = activity
            .evicting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        claimed.then_some((activity, value))
    }

    /// Every entry idle (by its hints) for at least `idle`, marked as being evicted; one shard
    /// locked at a time.
    pub fn idle_for_at_least(&self, idle: Duration) -> Vec<(Arc<Activity>, T)> {
        let mut found = Vec::new();
        for shard in 0..SHARDS {
            let entries = self.lock(shard);
            for entry in entries.iter() {
                let activity = &entry.activity;
                if activity.candidate()
                    && activity.idle_for() >= idle
                    && !activity.evicting.swap(true, Ordering::AcqRel)
                {
                    found.push((Arc::clone(activity), entry.value.clone()));
                }
            }
        }
        found
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Vec<Entry<T>>> {
        // A panic while a shard was locked left its entries consistent (every write is a
        // push, a swap_remove or an index store): carry on with them.
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests;
