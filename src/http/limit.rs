//! The adaptive in-flight limit: how many requests the engine serves at once, following the
//! latency it measures (Netflix's concurrency-limits `Gradient2`, windowed).
//!
//! Each window (`IN_FLIGHT_WINDOW_MS`, at least [`MIN_WINDOW_SAMPLES`] answers) gives the mean
//! latency of the requests answered in it (the short RTT) and the most requests that were in
//! flight. A long-term exponential average of the short RTTs is the baseline (the long RTT).
//! When the short RTT rises above `tolerance` × the long one, requests are queueing, not being
//! served faster, and the limit shrinks by that gradient (at most by half, smoothed); when it
//! does not, the limit grows by √limit (smoothed) up to `MAX_IN_FLIGHT_REQUESTS`. A window that
//! used less than half the limit says nothing about it (the load, not the engine, set its
//! latency), so it leaves the limit alone.
//!
//! Two departures from `Gradient2`, both so that sustained overload cannot teach the baseline
//! the overload's own latency (which would let the limit creep back up, window by window):
//! after its warm-up the baseline learns only from windows in which nothing was shed, and it
//! never learns from a window slower than `tolerance` × itself (those are queueing). A baseline
//! that is too high still comes down: when it is more than twice the short RTT it decays 5 % a
//! window, as in `Gradient2`.
//!
//! The controller is pure (windows in, a limit out) so that its properties are tested without a
//! clock or a server; `admission::InFlight` feeds it.

use std::time::Duration;

/// Fewest answers a window needs before it updates the limit.
pub const MIN_WINDOW_SAMPLES: u64 = 10;
/// Windows the long RTT averages over, and the warm-up in which it learns from every window.
const LONG_WINDOWS: f64 = 100.0;
const WARM_UP_WINDOWS: u32 = 10;
/// How much of a new limit is taken each window (the rest stays the old one).
const SMOOTHING: f64 = 0.2;
/// The smallest gradient: one window at most halves the estimate before smoothing.
const MIN_GRADIENT: f64 = 0.5;

/// The controller's fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    pub min: usize,
    pub max: usize,
    /// How much slower than the baseline a window may be before the limit shrinks.
    pub tolerance: f64,
}

/// What one window measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Mean latency of the requests answered in the window.
    pub mean_rtt: Duration,
    /// Most requests in flight at once during it.
    pub max_in_flight: usize,
    /// Whether any request was shed during it.
    pub shed: bool,
}

/// The limit and what it has learnt.
#[derive(Debug, Clone)]
pub struct Gradient {
    settings: LimitSettings,
    estimate: f64,
    /// The long RTT, in seconds, once a window has been seen.
    baseline: Option<f64>,
    windows: u32,
}

impl Gradient {
    /// Starts at the maximum: a fresh engine sheds nothing until latency says it must.
    pub fn new(settings: LimitSettings) -> Gradient {
        assert!(
            1 <= settings.min && settings.min <= settings.max,
            "limits out of order"
        );
        assert!(settings.tolerance >= 1.0, "a tolerance below 1");
        Gradient {
            settings,
            estimate: settings.max as f64,
            baseline: None,
            windows: 0,
        }
    }

    pub fn limit(&self) -> usize {
        // The estimate stays within [min, max], so the cast neither saturates nor wraps.
        self.estimate.floor() as usize
    }

    /// The long RTT learnt so far.
    pub fn baseline(&self) -> Option<Duration> {
        self.baseline.map(Duration::from_secs_f64)
    }

    /// Takes one window's measurements; returns the new limit.
    pub fn observe(&mut self, window: Window) -> usize {
        let short = window.mean_rtt.as_secs_f64();
        if short <= 0.0 || !short.is_finite() {
            return self.limit();
        }
        let tolerance = self.settings.tolerance;
        self.windows = self.windows.saturating_add(1);
        let long = match self.baseline {
            None => short,
            Some(long) if self.windows <= WARM_UP_WINDOWS => {
                long + (short - long) / f64::from(self.windows)
            }
            Some(long) if !window.shed && short <= tolerance * long => {
                long + (short - long) / LONG_WINDOWS
            }
            Some(long) => long,
        };
        let long = if long > 2.0 * short {
            long * 0.95
        } else {
            long
        };
        self.baseline = Some(long);

        if (window.max_in_flight as f64) < self.estimate / 2.0 {
            return self.limit();
        }
        let gradient = (tolerance * long / short).clamp(MIN_GRADIENT, 1.0);
        let wanted = self.estimate * gradient + self.estimate.sqrt();
        let smoothed = self.estimate * (1.0 - SMOOTHING) + wanted * SMOOTHING;
        self.estimate = smoothed.clamp(self.settings.min as f64, self.settings.max as f64);
        self.limit()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SETTINGS: LimitSettings = LimitSettings {
        min: 16,
        max: 512,
        tolerance: 2.0,
    };

    fn window(rtt_ms: f64, max_in_flight: usize, shed: bool) -> Window {
        Window {
            mean_rtt: Duration::from_secs_f64(rtt_ms / 1e3),
            max_in_flight,
            shed,
        }
    }

    /// A server of `capacity` requests/s whose latency is `base_ms` until requests queue, offered
    /// `offered` requests in flight (an open load larger than the limit keeps the limit full):
    /// the window the controller would see.
    fn served(limit: usize, offered: usize, capacity: f64, base_ms: f64) -> Window {
        let in_flight = offered.min(limit);
        let queueing_ms = in_flight as f64 / capacity * 1e3;
        window(base_ms.max(queueing_ms), in_flight, offered > limit)
    }

    proptest! {
        #[test]
        fn the_limit_stays_within_its_bounds(
            windows in prop::collection::vec((0.0f64..10_000.0, 0usize..2_000, any::<bool>()), 1..200),
            min in 1usize..64,
            spread in 0usize..1_000,
            tolerance in 1.0f64..4.0,
        ) {
            let settings = LimitSettings { min, max: min + spread, tolerance };
            let mut gradient = Gradient::new(settings);
            for (rtt_ms, in_flight, shed) in windows {
                let limit = gradient.observe(window(rtt_ms, in_flight, shed));
                prop_assert!((settings.min..=settings.max).contains(&limit));
            }
        }

        #[test]
        fn a_window_using_less_than_half_the_limit_leaves_it_alone(
            warm in prop::collection::vec((0.1f64..50.0, 0usize..600), 0..50),
            rtt_ms in 0.01f64..10_000.0,
        ) {
            let mut gradient = Gradient::new(SETTINGS);
            for (rtt_ms, in_flight) in warm {
                gradient.observe(window(rtt_ms, in_flight, false));
            }
            let before = gradient.limit();
            let after = gradient.observe(window(rtt_ms, before / 2 - 1, false));
            prop_assert_eq!(before, after);
        }

        #[test]
        fn latency_within_the_tolerance_never_shrinks_the_limit(
            base_ms in 0.1f64..100.0,
            jitter in prop::collection::vec(1.0f64..2.0, 1..300),
        ) {
            let mut gradient = Gradient::new(SETTINGS);
            let mut limit = gradient.limit();
            for factor in jitter {
                // Every window within the tolerance of the first one (the baseline's start).
                let next = gradient.observe(window(base_ms * factor, limit, false));
                prop_assert!(next >= limit, "{limit} → {next}");
                limit = next;
            }
        }

        #[test]
        fn under_sustained_overload_latency_settles_within_the_tolerance(
            capacity in 1_000.0f64..50_000.0,
            base_ms in 0.5f64..5.0,
            overload in 2usize..20,
        ) {
            // Learn the baseline at a closed load well inside capacity, then offer `overload`
            // times the maximum in flight for a minute of 100 ms windows.
            let mut gradient = Gradient::new(SETTINGS);
            for _ in 0..50 {
                let closed = (capacity * base_ms / 1e3).ceil() as usize;
                gradient.observe(served(gradient.limit(), closed, capacity, base_ms));
            }
            let learnt_ms = gradient.baseline().unwrap().as_secs_f64() * 1e3;
            let mut last = window(0.0, 0, false);
            for _ in 0..600 {
                last = served(gradient.limit(), overload * SETTINGS.max, capacity, base_ms);
                gradient.observe(last);
            }
            let settled_ms = last.mean_rtt.as_secs_f64() * 1e3;
            // At equilibrium the gradient is 1 - 1/√limit: the latency settles at
            // tolerance × baseline ÷ (1 - 1/√limit), or at the minimum limit's queueing.
            let slack = 1.0 / (1.0 - 1.0 / (SETTINGS.min as f64).sqrt());
            let bound_ms = SETTINGS.tolerance * slack * 1.01 * learnt_ms;
            let floor_ms = SETTINGS.min as f64 / capacity * 1e3;
            prop_assert!(
                settled_ms <= bound_ms.max(floor_ms * 1.01),
                "latency {settled_ms:.2} ms against a baseline of {learnt_ms} ms (limit {})",
                gradient.limit()
            );
        }

        #[test]
        fn after_overload_the_limit_grows_back_to_the_maximum(
            capacity in 1_000.0f64..50_000.0,
            base_ms in 0.5f64..5.0,
        ) {
            let mut gradient = Gradient::new(SETTINGS);
            for _ in 0..300 {
                gradient.observe(served(gradient.limit(), 10 * SETTINGS.max, capacity, base_ms));
            }
            // The engine now has capacity to spare: latency stays at its base whatever the limit.
            for _ in 0..300 {
                gradient.observe(served(gradient.limit(), SETTINGS.max, f64::INFINITY, base_ms));
            }
            prop_assert_eq!(gradient.limit(), SETTINGS.max);
        }
    }

    #[test]
    fn starts_at_the_maximum() {
        assert_eq!(Gradient::new(SETTINGS).limit(), 512);
    }

    #[test]
    fn a_queueing_window_does_not_teach_the_baseline() {
        let mut gradient = Gradient::new(SETTINGS);
        for _ in 0..WARM_UP_WINDOWS {
            gradient.observe(window(2.0, 512, false));
        }
        let learnt = gradient.baseline().unwrap();
        for _ in 0..1_000 {
            gradient.observe(window(50.0, gradient.limit(), true));
        }
        assert_eq!(gradient.baseline().unwrap(), learnt);
        assert_eq!(
            gradient.limit(),
            SETTINGS.min,
            "50 ms against a 2 ms baseline"
        );
    }

    #[test]
    fn a_baseline_far_above_the_latency_decays() {
        let mut gradient = Gradient::new(SETTINGS);
        for _ in 0..WARM_UP_WINDOWS {
            gradient.observe(window(40.0, 512, true));
        }
        for _ in 0..200 {
            gradient.observe(window(2.0, 512, false));
        }
        let baseline = gradient.baseline().unwrap();
        assert!(baseline < Duration::from_millis(5), "{baseline:?}");
    }
}
