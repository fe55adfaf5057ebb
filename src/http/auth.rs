//! Optional service tokens (`API_TOKENS`): the engine trusts its caller for buyer identity, so
//! it must only be reachable by that caller (the gateway that authenticates buyers). With
//! tokens configured, every route but the probes and `/metrics` needs
//! `Authorization: Bearer <token>`.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, OPEN_PATHS};

/// The accepted service tokens. Never printed: `Debug` shows only how many there are, and a
/// malformed value is reported at start-up without echoing it (clap would).
#[derive(Clone, Default)]
pub struct ApiTokens {
    tokens: Vec<SecretString>,
    /// What is wrong with the configured value, if anything.
    problem: Option<String>,
}

impl ApiTokens {
    /// Shortest token accepted: a guessable token is worse than none, as it looks like security.
    pub const MIN_LEN: usize = 16;

    /// For clap: never fails, so the value never appears in an argument error; [`check`]
    /// reports what is wrong with it.
    ///
    /// [`check`]: ApiTokens::check
    pub fn from_flag(raw: &str) -> Result<ApiTokens, std::convert::Infallible> {
        Ok(ApiTokens::parse(raw).unwrap_or_else(|problem| ApiTokens {
            tokens: Vec::new(),
            problem: Some(problem),
        }))
    }

    /// Whether the configured value was valid.
    pub fn check(&self) -> Result<(), String> {
        match &self.problem {
            Some(problem) => Err(format!("API_TOKENS: {problem}")),
            None => Ok(()),
        }
    }

    /// Comma-separated tokens; blanks around them and empty entries are ignored.
    pub fn parse(raw: &str) -> Result<ApiTokens, String> {
        let tokens: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .collect();
        if let Some(short) = tokens.iter().find(|token| token.len() < Self::MIN_LEN) {
            return Err(format!(
                "every API token needs at least {} characters (one has {})",
                Self::MIN_LEN,
                short.len()
            ));
        }
        if let Some(bad) = tokens
            .iter()
            .find(|token| !token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "API tokens must be printable ASCII without spaces (one of {} characters is not)",
                bad.len()
            ));
        }
        Ok(ApiTokens {
            tokens: tokens.into_iter().map(SecretString::from).collect(),
            problem: None,
        })
    }

    /// Tokens are required (a malformed value requires them too: it never opens the API).
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty() || self.problem.is_some()
    }
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiTokens({} configured)", self.tokens.len())
    }
}

pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let allowed = match req.app_data::<web::Data<AppState>>() {
        Some(state) if state.api_tokens.is_enabled() => {
            OPEN_PATHS.contains(&req.path())
                || bearer(&req)
                    .is_some_and(|presented| accepts(&state.api_tokens.tokens, presented))
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
fn accepts(tokens: &[SecretString], presented: &str) -> bool {
    tokens
        .iter()
        .fold(subtle::Choice::from(0), |matched, token| {
            matched | token.expose_secret().as_bytes().ct_eq(presented.as_bytes())
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_configured_token_and_nothing_else() {
        let tokens = ["a".repeat(16), "b".repeat(20)].map(SecretString::from);
        assert!(accepts(&tokens, &"a".repeat(16)));
        assert!(accepts(&tokens, &"b".repeat(20)));
        assert!(!accepts(&tokens, &"a".repeat(15)));
        assert!(!accepts(&tokens, &"a".repeat(17)));
        assert!(!accepts(&tokens, ""));
        assert!(!accepts(&[], &"a".repeat(16)));
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let tokens = ApiTokens::parse("alpha-token-0123456789, beta-token-abcdefghijk").unwrap();
        let shown = format!("{tokens:?}");
        assert_eq!(shown, "ApiTokens(2 configured)");
        let rejected = ApiTokens::from_flag("short-secret").unwrap();
        assert!(
            rejected.is_enabled(),
            "a malformed value never opens the API"
        );
        assert!(!rejected.check().unwrap_err().contains("short-secret"));
    }
}
