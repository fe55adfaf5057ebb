//! A fully read HTTP response, with the assertions tests make on it and on its JSON fields.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A fully read response.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl ApiResponse {
    pub async fn read(response: reqwest::Response) -> ApiResponse {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("reading the response body");
        ApiResponse {
            status,
            headers,
            text,
        }
    }

    pub fn status(&self) -> u16 {
        self.status.as_u16()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header value is not ASCII"))
    }

    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    /// The body as JSON; panics showing the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {:?}",
                self.status, self.text
            )
        })
    }

    /// The problem `code`, when the body is a problem document.
    pub fn code(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.text)
            .ok()
            .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_string))
    }

    pub fn is_replay(&self) -> bool {
        self.header("idempotent-replayed")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status(),
            status,
            "expected status {status}, got {} with body {}",
            self.status,
            self.text
        );
        self.json()
    }

    #[track_caller]
    pub fn ok(&self) -> Value {
        self.expect(200)
    }

    /// Asserts an RFC 7807 problem with the given status and stable code; returns the body.
    #[track_caller]
    pub fn expect_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            (self.status(), self.code().as_deref()),
            (status, Some(code)),
            "expected {status} {code}, got {} with body {}",
            self.status,
            self.text
        );
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "a {status} {code} must be application/problem+json, got content type {:?}",
            self.header("content-type")
        );
        let body = self.json();
        for field in ["type", "title", "detail", "code"] {
            assert!(
                body.get(field).is_some_and(Value::is_string),
                "problem field {field:?} must be a string: {body}"
            );
        }
        assert_eq!(
            body["status"],
            json!(status),
            "problem status must match the HTTP status: {body}"
        );
        if status == 503 {
            let retry_after = self.header("retry-after").unwrap_or_else(|| {
                panic!("a 503 {code} must carry Retry-After: {:?}", self.headers)
            });
            assert!(
                retry_after.trim().parse::<u64>().is_ok(),
                "Retry-After must be a number of seconds, got {retry_after:?}"
            );
        }
        body
    }
}

// ---------------------------------------------------------------------------------------------
// Assertions on JSON values
// ---------------------------------------------------------------------------------------------

#[track_caller]
pub fn int(value: &Value, field: &str) -> i64 {
    value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("field {field:?} must be an integer: {value}"))
}

#[track_caller]
pub fn rfc3339(value: &Value, field: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = value[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field:?} must be a string: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("field {field:?} = {text:?} is not RFC 3339: {e}"))
}
