//! A deadline on reading the request body. actix's `client_request_timeout` covers only the
//! request head of a connection's first request: a client that sends its headers and then
//! trickles (or never finishes) the body would otherwise hold its connection and the handler
//! waiting on it for as long as it likes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures::Stream;
use tokio::time::{Instant, Sleep, sleep_until};

/// How long a request's body may take to arrive, counted from the end of its head. Registered
/// as app data; without it bodies have no deadline.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// The message of the I/O error a body past its deadline ends with (see `extract::json_config`).
pub(super) const BODY_TIMED_OUT: &str = "the request body did not arrive in time";

/// Middleware: wraps the request payload so that reading it fails once the deadline passes.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(BodyDeadline(timeout)) = req.app_data::<BodyDeadline>().copied() {
        let inner = req.take_payload();
        let deadline = Box::pin(sleep_until(Instant::now() + timeout));
        let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
            Box::pin(DeadlinePayload {
                inner,
                deadline,
                expired: false,
            });
        req.set_payload(Payload::from(stream));
    }
    next.call(req).await
}

struct DeadlinePayload {
    inner: Payload,
    deadline: Pin<Box<Sleep>>,
    expired: bool,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            let error = io::Error::new(io::ErrorKind::TimedOut, BODY_TIMED_OUT);
            return Poll::Ready(Some(Err(PayloadError::Io(error))));
        }
        Poll::Pending
    }
}

/// Whether a payload error is the deadline's.
pub(super) fn is_body_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}
