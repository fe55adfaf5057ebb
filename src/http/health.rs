use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, AppState, Problem};
use crate::db::queries;

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", security(()), responses((status = 200, description = "Alive")))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "up" }))
}

/// The engine can serve: the database answers and it is not shutting down (after SIGTERM it
/// answers 503 `shutting_down` while it drains, so that load balancers stop sending). Also
/// reports the broker (`up`, `down`, `unknown`, `disabled`) without failing on it: payments go
/// on while Kafka is away.
#[utoipa::path(
    get, path = "/health/ready", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "Database unavailable, or shutting down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    state
        .db
        .run(queries::ping)
        .await
        .map_err(ApiError::from_db)?;
    let broker = state.publisher.broker_state().as_str();
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "database": "up", "broker": broker })))
}
