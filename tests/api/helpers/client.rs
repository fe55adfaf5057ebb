//! The HTTP client of a [`TestApp`]: one helper per route, plus raw requests for hostile input.

use serde_json::{Value, json};

use super::app::TestApp;
use super::response::ApiResponse;

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> ApiResponse {
        let response = request.send().await.expect("sending the request");
        ApiResponse::read(response).await
    }

    /// GET any path (query string included).
    pub async fn get(&self, path: &str) -> ApiResponse {
        self.send(self.client.get(self.url(path))).await
    }

    /// Any method, any path, optional body, content type and Idempotency-Key.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
        idempotency_key: Option<&[u8]>,
    ) -> ApiResponse {
        let mut request = self.client.request(method, self.url(path));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = idempotency_key {
            let value =
                reqwest::header::HeaderValue::from_bytes(key).expect("a sendable header value");
            request = request.header("idempotency-key", value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        self.send(request).await
    }

    /// POST a raw body to `path` with `content_type` (None: no Content-Type header).
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<Vec<u8>>,
        content_type: Option<&str>,
    ) -> ApiResponse {
        self.raw(
            reqwest::Method::POST,
            path,
            Some(body.into()),
            content_type,
            None,
        )
        .await
    }

    /// POST a JSON value to `path`.
    pub async fn post_json(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> ApiResponse {
        self.raw(
            reqwest::Method::POST,
            path,
            Some(serde_json::to_vec(body).unwrap()),
            Some("application/json"),
            idempotency_key.map(str::as_bytes),
        )
        .await
    }

    // --- points ---------------------------------------------------------------------------

    pub async fn charge(&self, buyer: i64, points: i64) -> ApiResponse {
        self.charge_raw(&buyer.to_string(), &format!("point={points}"), None)
            .await
    }

    pub async fn charge_with_key(&self, buyer: i64, points: i64, key: &str) -> ApiResponse {
        self.charge_raw(
            &buyer.to_string(),
            &format!("point={points}"),
            Some(key.as_bytes()),
        )
        .await
    }

    /// POST /points/{buyer}?{query} with the path segment and query exactly as given.
    pub async fn charge_raw(&self, buyer: &str, query: &str, key: Option<&[u8]>) -> ApiResponse {
        let path = if query.is_empty() {
            format!("/points/{buyer}")
        } else {
            format!("/points/{buyer}?{query}")
        };
        self.raw(reqwest::Method::POST, &path, None, None, key)
            .await
    }

    /// Charges and asserts 200; returns the body.
    pub async fn charge_ok(&self, buyer: i64, points: i64) -> Value {
        let response = self.charge(buyer, points).await;
        assert_eq!(
            response.status(),
            200,
            "charging {points} to buyer {buyer}: {}",
            response.text
        );
        response.json()
    }

    pub async fn balance(&self, buyer: i64) -> ApiResponse {
        self.get(&format!("/points/{buyer}")).await
    }

    /// `(balance, version)` from GET /points/{buyer}, asserting 200.
    pub async fn balance_of(&self, buyer: i64) -> (i64, i64) {
        let response = self.balance(buyer).await;
        let body = response.ok();
        assert_eq!(
            body["buyerId"],
            json!(buyer),
            "balance of buyer {buyer}: {body}"
        );
        (
            body["balance"]
                .as_i64()
                .unwrap_or_else(|| panic!("balance is not an integer: {body}")),
            body["version"]
                .as_i64()
                .unwrap_or_else(|| panic!("version is not an integer: {body}")),
        )
    }

    // --- history --------------------------------------------------------------------------

    pub async fn history(
        &self,
        buyer: i64,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> ApiResponse {
        let mut request = self
            .client
            .get(self.url(&format!("/points/history/{buyer}")));
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit.to_string())]);
        }
        if let Some(cursor) = cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        self.send(request).await
    }

    /// Every entry, newest first, following nextCursor until null with pages of `limit`.
    pub async fn full_history(&self, buyer: i64, limit: i64) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        for _page in 0..10_000 {
            let response = self.history(buyer, Some(limit), cursor.as_deref()).await;
            let body = response.ok();
            assert_eq!(body["buyerId"], json!(buyer), "history page: {body}");
            let page = body["entries"]
                .as_array()
                .unwrap_or_else(|| panic!("entries must be an array: {body}"))
                .clone();
            assert!(
                page.len() as i64 <= limit,
                "page longer than limit {limit}: {body}"
            );
            entries.extend(page);
            match &body["nextCursor"] {
                Value::Null => return entries,
                Value::String(next) => cursor = Some(next.clone()),
                other => panic!("nextCursor must be a string or null, got {other}"),
            }
        }
        panic!("history of buyer {buyer} did not end after 10000 pages")
    }

    // --- orders ---------------------------------------------------------------------------

    pub async fn create_order(&self, buyer: i64, total: i64) -> ApiResponse {
        self.post_json(
            "/orders",
            &json!({ "buyerId": buyer, "totalPrice": total }),
            None,
        )
        .await
    }

    /// Creates an order, asserts 201, returns its id.
    pub async fn new_order(&self, buyer: i64, total: i64) -> i64 {
        let response = self.create_order(buyer, total).await;
        let body = response.expect(201);
        body["orderId"]
            .as_i64()
            .unwrap_or_else(|| panic!("orderId is not an integer: {body}"))
    }

    pub async fn get_order(&self, order: i64) -> ApiResponse {
        self.get(&format!("/orders/{order}")).await
    }

    // --- payments -------------------------------------------------------------------------

    pub async fn pay(&self, buyer: i64, order: i64) -> ApiResponse {
        self.post_json(
            "/orders/payment/kafka",
            &json!({ "buyerId": buyer, "orderId": order }),
            None,
        )
        .await
    }

    pub async fn cancel(&self, buyer: i64, order: i64) -> ApiResponse {
        self.post_json(
            &format!("/orders/{order}/cancel"),
            &json!({ "buyerId": buyer }),
            None,
        )
        .await
    }

    /// POST /payments/{payment}/refunds with `body` (its buyerId, amount, reason).
    pub async fn refund(&self, payment: i64, body: Value, key: Option<&str>) -> ApiResponse {
        self.post_json(&format!("/payments/{payment}/refunds"), &body, key)
            .await
    }

    pub async fn pay_with_key(&self, buyer: i64, order: i64, key: &str) -> ApiResponse {
        self.post_json(
            "/orders/payment/kafka",
            &json!({ "buyerId": buyer, "orderId": order }),
            Some(key),
        )
        .await
    }
}

/// A fresh Idempotency-Key.
pub fn new_key() -> String {
    format!("key-{}", uuid::Uuid::new_v4())
}
