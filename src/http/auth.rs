//! Optional service tokens (`API_TOKENS`): the engine trusts its caller for buyer identity, so
//! it must only be reachable by that caller (the gateway that authenticates buyers). With
//! tokens configured, every route but the probes and `/metrics` needs
//! `Authorization: Bearer <token>`.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, OPEN_PATHS};

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let allowed = match req.app_data::<web::Data<AppState>>() {
        Some(state) if state.api_tokens.is_enabled() => {
            OPEN_PATHS.contains(&req.path())
                || bearer(&req)
                    .is_some_and(|presented| accepts(state.api_tokens.tokens(), presented))
        }
        _ => true,
    };
    if allowed {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let response = ApiError::Unauthorized.error_response();
    Ok(req.into_response(response).map_into_right_body())
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(req: &ServiceRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Compares against every token in constant time per token (no early exit on a match, so the
/// time does not tell which token matched; only lengths may differ in timing).
fn accepts(tokens: &[String], presented: &str) -> bool {
    tokens
        .iter()
        .fold(subtle::Choice::from(0), |matched, token| {
            matched | token.as_bytes().ct_eq(presented.as_bytes())
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_configured_token_and_nothing_else() {
        let tokens = vec!["a".repeat(16), "b".repeat(20)];
        assert!(accepts(&tokens, &"a".repeat(16)));
        assert!(accepts(&tokens, &"b".repeat(20)));
        assert!(!accepts(&tokens, &"a".repeat(15)));
        assert!(!accepts(&tokens, &"a".repeat(17)));
        assert!(!accepts(&tokens, ""));
        assert!(!accepts(&[], &"a".repeat(16)));
    }
}
