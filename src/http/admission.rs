//! Load shedding: at most `MAX_IN_FLIGHT_REQUESTS` requests are served at once. Beyond it a
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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use super::{ApiError, AppState};
use crate::actors::OverloadReason;

/// Requests being served, against their limit.
#[derive(Debug)]
pub struct InFlight {
    current: AtomicUsize,
    limit: usize,
}

impl InFlight {
    pub fn new(limit: usize) -> InFlight {
        InFlight {
            current: AtomicUsize::new(0),
            limit,
        }
    }

    /// A slot, held until the guard drops; `None` when all `limit` slots are taken.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        let taken = self.current.fetch_add(1, Ordering::AcqRel);
        if taken >= self.limit {
            self.current.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(self))
    }

    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }
}

pub struct Slot<'a>(&'a InFlight);

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
        self.0.current.fetch_sub(1, Ordering::AcqRel);
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
        let in_flight = InFlight::new(2);
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
}
