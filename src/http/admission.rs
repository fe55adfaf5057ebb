//! Load shedding: at most a limit of requests are served at once, a limit that follows their
//! latency between `MIN_IN_FLIGHT_REQUESTS` and `MAX_IN_FLIGHT_REQUESTS` (`limit`). Beyond it a
//! request answers 503 `overloaded` with Retry-After at once, before it takes a mailbox slot, a
//! database connection or a place in a commit, so that under overload the excess is refused
//! quickly and the accepted requests keep a latency bounded by the limit over the throughput
//! (Little's law) instead of queueing without end. The probes and `/metrics` are never shed.
//!
//! Draining: after SIGTERM the engine keeps serving for `SHUTDOWN_DRAIN_MS` while
//! `/health/ready` says 503 and every answer closes its connection (`Connection: close`), so
//! that load balancers stop sending and clients leave their kept-alive connections, before it
//! stops accepting connections (a request sent on an idle kept-alive connection just as the
//! server closes it is lost on the wire, unanswered).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use super::limit::{Gradient, LimitSettings, MIN_WINDOW_SAMPLES, Window};
use super::{ApiError, AppState};
use crate::actors::OverloadReason;

/// How long a window of the adaptive limit lasts (it also waits for
/// [`MIN_WINDOW_SAMPLES`] answers).
const WINDOW: Duration = Duration::from_millis(100);

/// Requests being served, against a limit that follows their latency ([`limit`](super::limit)).
#[derive(Debug)]
pub struct InFlight {
    current: AtomicUsize,
    limit: AtomicUsize,
    /// The window being measured: answers, their summed latency, the most in flight, whether
    /// any request was shed, and when it began (nanoseconds since `origin`).
    samples: AtomicU64,
    rtt_nanos: AtomicU64,
    peak: AtomicUsize,
    shed: AtomicBool,
    window_start: AtomicU64,
    origin: Instant,
    window: Duration,
    /// False for a fixed limit (floor = ceiling): answers are then not timed at all.
    adaptive: bool,
    controller: Mutex<Gradient>,
}

impl InFlight {
    pub fn new(settings: LimitSettings) -> InFlight {
        InFlight::with_window(settings, WINDOW)
    }

    fn with_window(settings: LimitSettings, window: Duration) -> InFlight {
        let controller = Gradient::new(settings);
        InFlight {
            current: AtomicUsize::new(0),
            limit: AtomicUsize::new(controller.limit()),
            samples: AtomicU64::new(0),
            rtt_nanos: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
            shed: AtomicBool::new(false),
            window_start: AtomicU64::new(0),
            origin: Instant::now(),
            window,
            adaptive: settings.min < settings.max,
            controller: Mutex::new(controller),
        }
    }

    #[cfg(test)]
    fn fixed(limit: usize) -> InFlight {
        InFlight::new(LimitSettings {
            min: limit,
            max: limit,
            tolerance: 1.0,
        })
    }

    /// A slot, held until the guard drops; `None` when all slots are taken.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        let taken = self.current.fetch_add(1, Ordering::AcqRel);
        if taken >= self.limit.load(Ordering::Relaxed) {
            self.current.fetch_sub(1, Ordering::AcqRel);
            self.shed.store(true, Ordering::Relaxed);
            return None;
        }
        self.peak.fetch_max(taken + 1, Ordering::Relaxed);
        Some(Slot {
            in_flight: self,
            started_at: Instant::now(),
        })
    }

    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Counts one answer; the answer that ends a window updates the limit.
    fn answered(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.rtt_nanos.fetch_add(nanos, Ordering::Relaxed);
        let samples = self.samples.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let started = self.window_start.load(Ordering::Relaxed);
        if samples < MIN_WINDOW_SAMPLES
            || now.saturating_sub(started) < self.window.as_nanos() as u64
        {
            return;
        }
        // One answer closes the window; the others go on (never wait on the controller).
        let Ok(mut controller) = self.controller.try_lock() else {
            return;
        };
        if self.window_start.load(Ordering::Relaxed) != started {
            return;
        }
        let samples = self.samples.swap(0, Ordering::Relaxed).max(1);
        let rtt_nanos = self.rtt_nanos.swap(0, Ordering::Relaxed);
        let window = Window {
            mean_rtt: Duration::from_nanos(rtt_nanos / samples),
            max_in_flight: self.peak.swap(self.current(), Ordering::Relaxed),
            shed: self.shed.swap(false, Ordering::Relaxed),
        };
        self.window_start.store(now, Ordering::Relaxed);
        self.limit
            .store(controller.observe(window), Ordering::Relaxed);
    }
}

/// A request being served: its place in the limit, and when it took it.
pub struct Slot<'a> {
    in_flight: &'a InFlight,
    started_at: Instant,
}

/// Set once a stop was requested: the engine is draining.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.in_flight.current.fetch_sub(1, Ordering::AcqRel);
        if self.in_flight.adaptive {
            self.in_flight.answered(self.started_at.elapsed());
        }
    }
}

pub async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let mut response = if super::OPEN_PATHS.contains(&req.path()) {
        next.call(req).await?.map_into_left_body()
    } else {
        match state.in_flight.try_acquire() {
            Some(_slot) => next.call(req).await?.map_into_left_body(),
            None => {
                let response = ApiError::Overloaded(OverloadReason::InFlight).error_response();
                req.into_response(response).map_into_right_body()
            }
        }
    };
    if state.draining.is_draining() {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_at_most_limit_slots_and_takes_them_back_when_dropped() {
        let in_flight = InFlight::fixed(2);
        let a = in_flight.try_acquire().expect("first slot");
        let b = in_flight.try_acquire().expect("second slot");
        assert!(
            in_flight.try_acquire().is_none(),
            "a third slot over the limit"
        );
        assert_eq!(in_flight.current(), 2, "a refused request holds no slot");
        drop(a);
        let c = in_flight
            .try_acquire()
            .expect("a slot freed by a finished request");
        drop((b, c));
        assert_eq!(in_flight.current(), 0);
    }

    #[test]
    fn latency_far_above_the_one_learnt_lowers_the_limit() {
        let settings = LimitSettings {
            min: 4,
            max: 64,
            tolerance: 2.0,
        };
        // Every tenth answer closes a window.
        let in_flight = InFlight::with_window(settings, Duration::ZERO);
        let full_load = |rtt: Duration| {
            let slots: Vec<_> = (0..in_flight.limit())
                .map(|_| in_flight.try_acquire().expect("a slot under the limit"))
                .collect();
            for mut slot in slots {
                slot.started_at = Instant::now() - rtt;
                drop(slot);
            }
        };
        for _ in 0..20 {
            full_load(Duration::from_millis(1));
        }
        assert_eq!(in_flight.limit(), 64, "steady latency keeps the maximum");
        for _ in 0..20 {
            full_load(Duration::from_millis(50));
        }
        assert!(in_flight.limit() < 16, "limit {}", in_flight.limit());
    }
}
