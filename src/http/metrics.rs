//! `GET /metrics` and the middleware that counts every request.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use super::AppState;
use crate::db::outbox;
use crate::domain::RejectionReason;
use crate::metrics::{Metrics, method_label};

/// How long a scrape waits for the outbox backlog count before reporting the last one.
const BACKLOG_QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// A 503's reason, left in the response's extensions for the middleware to count.
#[derive(Debug, Clone, Copy)]
pub struct Rejection(pub RejectionReason);

/// Prometheus metrics, OpenMetrics text format.
#[utoipa::path(
    get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Metrics in OpenMetrics text format", content_type = "application/openmetrics-text"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (live, deepest) = state.registry.population();
    state.metrics.set_buyer_population(live, deepest);
    state
        .metrics
        .set_in_flight(state.in_flight.current(), state.in_flight.limit());
    let backlog = tokio::time::timeout(BACKLOG_QUERY_TIMEOUT, state.db.run(outbox::backlog)).await;
    match backlog {
        Ok(Ok(events)) => state.metrics.set_outbox_backlog(events),
        Ok(Err(error)) => tracing::debug!(error = %error, "outbox backlog not counted"),
        Err(_elapsed) => tracing::debug!("outbox backlog count timed out"),
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// Counts the request by route template (never the raw path: ids would make the label
/// unbounded), method and status, and times it.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started_at = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| std::sync::Arc::clone(&state.metrics));
    let method = method_label(req.method());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        record(&metrics, &response, method, started_at.elapsed());
    }
    Ok(response)
}

fn record<B>(
    metrics: &Metrics,
    response: &ServiceResponse<B>,
    method: &'static str,
    took: Duration,
) {
    let route = response.request().match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    metrics.http_request(route, method, response.status().as_u16(), took);
    if let Some(Rejection(reason)) = response.response().extensions().get::<Rejection>() {
        metrics.rejection(*reason);
    }
}
