//! Where a buyer's money request is served: by the engine holding the buyer's shard.
//!
//! The router (HAProxy, `deploy/haproxy.cfg`) hashes the buyer's shard, so a request usually
//! arrives at the owner. When it does not (the router's view differs, a health check flipped, a
//! client bypasses the router), this engine forwards it one hop to the owner's advertised
//! address, marked with [`HOP_HEADER`], and passes the owner's answer back unchanged. A
//! forwarded request is never forwarded again: an engine that does not own its shard answers
//! it `not_owner` ([`NOT_OWNER_HEADER`]), and the forwarding engine routes it once more itself
//! (claiming the shard if it became free). A free or expired lease is claimed and served here.

use std::time::Duration;

use actix_web::http::header::{self, HeaderName};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};

use super::error::NOT_OWNER_HEADER;
use super::{ApiError, AppState};
use crate::actors::{BuyerError, Command, Receipt};
use crate::cluster::{Route, RouteError};
use crate::domain::buyer::Refusal;
use crate::domain::{BuyerId, IdempotencyKey};
use crate::metrics::ForwardOutcome;

/// Marks a request forwarded by another engine (its value: that engine's id).
pub const HOP_HEADER: &str = "x-payment-engine-hop";

/// Request headers the owner needs to answer as this engine would have.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::AUTHORIZATION,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("x-request-id"),
];

/// Largest answer taken from the owner (the API's answers are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// How long a forwarding connection may sit idle and still be used.
const FORWARD_KEEP_ALIVE: Duration = Duration::from_millis(1_000);

/// Most times a request is routed: a lease that moves while the request is being served
/// sends it once more.
const MAX_ROUTES: usize = 3;

/// The HTTP client forwarding requests, one per worker thread (`awc` clients are not `Send`).
pub struct Forwarder(pub awc::Client);

impl Forwarder {
    pub fn new(timeout: Duration) -> Forwarder {
        // A connection idle this long is not used again: shorter than the owner's drain
        // (SHUTDOWN_DRAIN_MS), during which each of its answers closes its connection, so no
        // connection the owner closes when it stops is ever picked for a request.
        let connector = awc::Connector::new()
            .timeout(timeout.min(Duration::from_secs(1)))
            .conn_keep_alive(FORWARD_KEEP_ALIVE);
        Forwarder(
            awc::Client::builder()
                .connector(connector)
                .timeout(timeout)
                .disable_redirects()
                .finish(),
        )
    }
}

/// A request as it can be sent on to another engine: the original, and its body as bytes.
pub(super) struct Onward<'a> {
    pub req: &'a HttpRequest,
    pub body: Bytes,
}

/// How forwarding a request ended.
enum Forwarded {
    Answer(HttpResponse),
    /// The engine said it does not own the shard (the lease moved).
    NotOwner,
    /// Nothing was sent: the engine could not be connected to.
    Unreachable,
    /// Sent, but no answer came back: the outcome is unknown.
    Failed,
}

impl AppState {
    /// Serves `buyer`'s money request where its shard is owned: the command (built by
    /// `command`, only when served here) goes to the buyer's actor, or the request to the
    /// owning engine.
    pub(super) async fn serve(
        &self,
        onward: Onward<'_>,
        buyer: BuyerId,
        key: Option<IdempotencyKey>,
        command: impl AsyncFn() -> Result<Command, ApiError>,
    ) -> Result<HttpResponse, ApiError> {
        let hop = onward.req.headers().contains_key(HOP_HEADER);
        // The owner this engine could not reach: not tried twice.
        let mut unreachable: Option<String> = None;
        for _ in 0..MAX_ROUTES {
            let route = self.cluster.route(buyer, !hop).await;
            match route.map_err(|error| route_error(error, hop))? {
                Route::Local(_) => {
                    match self.execute(buyer, command().await?, key.clone()).await {
                        // The lease moved under the request: nothing committed; route again.
                        Err(ApiError::NotOwner) => continue,
                        Err(error) => return Err(error),
                        Ok(receipt) => return self.answer(receipt).await,
                    }
                }
                Route::Forward(address) if unreachable.as_ref() == Some(&address) => {
                    tracing::info!(%address, "the owning engine stays unreachable");
                    break;
                }
                Route::Forward(address) => {
                    let forwarded = self.forward(&onward, &address).await;
                    // Sent, answer lost: sent again only with an Idempotency-Key (if it had
                    // committed, the key answers what it committed).
                    let unknown = matches!(forwarded, Forwarded::Failed);
                    match forwarded {
                        Forwarded::Answer(answer) => return Ok(answer),
                        // Moved: look again (claim it if it is free).
                        Forwarded::NotOwner => continue,
                        Forwarded::Failed if key.is_none() => {
                            tracing::info!(%address, "the forwarded request's answer was lost");
                            break;
                        }
                        // Stopped (or gone): wait for its release, then look again.
                        Forwarded::Unreachable | Forwarded::Failed => {
                            let waited = self.cluster.await_owner_change(buyer, &address).await;
                            waited.map_err(ApiError::from_db)?;
                            if !unknown {
                                unreachable = Some(address);
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(buyer = %buyer, "answering owner_unavailable");
        Err(ApiError::OwnerUnavailable { retry_after_s: 1 })
    }

    /// Hands a command to the buyer's actor and waits (bounded) for it to be durable. A write
    /// refused because another writer changed the buyer is decided once more, on the state read
    /// again, before the request is answered 503.
    pub(super) async fn execute(
        &self,
        buyer: BuyerId,
        command: Command,
        key: Option<IdempotencyKey>,
    ) -> Result<Receipt, ApiError> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let mut stale_retried = false;
        loop {
            let outcome = self.registry.dispatch(buyer, command.clone(), key.clone());
            match tokio::time::timeout_at(deadline, outcome).await {
                Ok(Err(BuyerError::Refused(Refusal::StaleState))) if !stale_retried => {
                    stale_retried = true;
                }
                Ok(outcome) => return outcome.map_err(ApiError::from),
                Err(_elapsed) => return Err(ApiError::Timeout),
            }
        }
    }

    async fn forward(&self, onward: &Onward<'_>, address: &str) -> Forwarded {
        let forwarded = match onward.req.app_data::<Forwarder>() {
            Some(Forwarder(client)) => {
                send(client, onward, address, self.cluster.engine_id()).await
            }
            None => Forwarded::Failed,
        };
        let outcome = match &forwarded {
            Forwarded::Answer(_) => ForwardOutcome::Answered,
            Forwarded::NotOwner => ForwardOutcome::NotOwner,
            Forwarded::Unreachable | Forwarded::Failed => ForwardOutcome::Failed,
        };
        self.metrics.cluster.forwarded(outcome);
        forwarded
    }
}

async fn send(client: &awc::Client, onward: &Onward<'_>, address: &str, me: &str) -> Forwarded {
    let req = onward.req;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut request = client
        .request(req.method().clone(), format!("http://{address}{path}"))
        .insert_header((HOP_HEADER, me));
    for name in &FORWARDED_REQUEST_HEADERS {
        if let Some(value) = req.headers().get(name) {
            request = request.insert_header((name.clone(), value.clone()));
        }
    }
    let mut response = match request.send_body(onward.body.clone()).await {
        Ok(response) => response,
        Err(awc::error::SendRequestError::Connect(error)) => {
            tracing::debug!(%address, error = %error, "the owning engine is unreachable");
            return Forwarded::Unreachable;
        }
        Err(error) => {
            tracing::warn!(%address, error = %error, "forwarding to the owning engine failed");
            return Forwarded::Failed;
        }
    };
    if response.headers().contains_key(NOT_OWNER_HEADER) {
        return Forwarded::NotOwner;
    }
    let body = match response.body().limit(MAX_ANSWER_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%address, error = %error, "reading the owning engine's answer failed");
            return Forwarded::Failed;
        }
    };
    let mut answer = HttpResponse::build(response.status());
    for (name, value) in response.headers() {
        if !is_hop_by_hop(name) {
            answer.append_header((name.clone(), value.clone()));
        }
    }
    Forwarded::Answer(answer.body(body))
}

/// Headers that describe one connection, not the answer (RFC 9110 §7.6.1), and the length,
/// which the body sets again.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
    ]
    .contains(name)
}

/// A request that can be served neither here nor at the owner. Only a forwarded request hears
/// `not_owner`: its forwarding engine routes it again; a client hears `owner_unavailable`.
fn route_error(error: RouteError, hop: bool) -> ApiError {
    match error {
        RouteError::NotOwner { .. } if hop => ApiError::NotOwner,
        RouteError::NotOwner { retry_after } | RouteError::OwnerUnavailable { retry_after } => {
            ApiError::OwnerUnavailable {
                retry_after_s: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            }
        }
        RouteError::Database(error) => ApiError::from_db(error),
    }
}
