//! Service tokens (`API_TOKENS`): with tokens configured every route but the probes and
//! `/metrics` answers 401 problem+json without a valid `Authorization: Bearer` token; without
//! tokens nothing changes; tokens never appear in logs or `--help`.

use reqwest::Method;

use crate::helpers::{ApiResponse, TestApp, TestDatabase, spawn_app_with};
use crate::kafka::{EngineProcess, engine_command};
use payment_engine::http::auth::ApiTokens;

const ALPHA: &str = "alpha-token-0123456789";
const BETA: &str = "beta-token-abcdefghijk";

async fn app_with_tokens() -> TestApp {
    spawn_app_with(|s| s.http.api_tokens = ApiTokens::parse(&format!("{ALPHA}, {BETA}")).unwrap())
        .await
}

async fn with_authorization(
    app: &TestApp,
    method: Method,
    path: &str,
    value: Option<&str>,
) -> ApiResponse {
    let mut request = app.client.request(method, app.url(path));
    if let Some(value) = value {
        request = request.header("authorization", value);
    }
    ApiResponse::read(request.send().await.unwrap()).await
}

fn assert_unauthorized(response: &ApiResponse) {
    response.expect_problem(401, "unauthorized");
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn every_business_route_needs_a_valid_token() {
    let app = app_with_tokens().await;
    for (method, path) in [
        (Method::POST, "/points/1?point=10"),
        (Method::GET, "/points/1"),
        (Method::GET, "/points/history/1"),
        (Method::POST, "/orders"),
        (Method::GET, "/orders/1"),
        (Method::POST, "/orders/payment/kafka"),
        (Method::GET, "/payments/1"),
        (Method::GET, "/buyers/1/orders"),
        (Method::GET, "/buyers/1/payments"),
        (Method::GET, "/openapi.json"),
        (Method::GET, "/docs/"),
        (Method::GET, "/no/such/route"),
    ] {
        for value in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer wrong-token-0123456789"),
            Some(&format!("Bearer {}", &ALPHA[..ALPHA.len() - 1])),
            Some(&format!("Bearer {ALPHA}x")),
            Some(&format!("Basic {ALPHA}")),
            Some(ALPHA),
        ] {
            let response = with_authorization(&app, method.clone(), path, value).await;
            assert_unauthorized(&response);
        }
    }
    // Nothing moved: the refused charges never reached the engine.
    let (balance, version) = {
        let response = with_authorization(
            &app,
            Method::GET,
            "/points/1",
            Some(&format!("Bearer {ALPHA}")),
        )
        .await;
        let body = response.ok();
        (
            body["balance"].as_i64().unwrap(),
            body["version"].as_i64().unwrap(),
        )
    };
    assert_eq!((balance, version), (0, 0));
}

#[tokio::test]
async fn any_configured_token_is_accepted_and_the_scheme_is_case_insensitive() {
    let app = app_with_tokens().await;
    for value in [
        format!("Bearer {ALPHA}"),
        format!("bearer {BETA}"),
        format!("BEARER {ALPHA}"),
    ] {
        let response =
            with_authorization(&app, Method::POST, "/points/5?point=10", Some(&value)).await;
        response.ok();
    }
    let response = with_authorization(
        &app,
        Method::GET,
        "/openapi.json",
        Some(&format!("Bearer {BETA}")),
    )
    .await;
    let spec = response.ok();
    assert_eq!(
        spec["components"]["securitySchemes"]["service_token"]["scheme"],
        "bearer"
    );
    assert_eq!(spec["security"][0]["service_token"], serde_json::json!([]));
}

#[tokio::test]
async fn probes_and_metrics_need_no_token_and_refusals_are_counted() {
    let app = app_with_tokens().await;
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let response = with_authorization(&app, Method::GET, path, None).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_unauthorized(&with_authorization(&app, Method::POST, "/points/1?point=1", None).await);
    let metrics = with_authorization(&app, Method::GET, "/metrics", None)
        .await
        .text;
    assert!(
        metrics.contains(
            "payment_engine_http_requests_total{route=\"/points/{buyer_id}\",method=\"POST\",status=\"401\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_tokens_no_authorization_is_needed() {
    let app = spawn_app_with(|_| {}).await;
    app.charge(3, 10).await.ok();
    // A stray Authorization header is ignored, not validated.
    let response =
        with_authorization(&app, Method::GET, "/points/3", Some("Bearer anything")).await;
    assert_eq!(response.ok()["balance"], 10);
}

#[tokio::test]
async fn tokens_stay_out_of_logs_and_help() {
    let db = TestDatabase::new();
    let engine = EngineProcess::serve(
        &db,
        &[
            ("API_TOKENS", format!("{ALPHA},{BETA}")),
            ("RUST_LOG", "debug".to_string()),
        ],
    )
    .await;
    for value in [
        format!("Bearer {ALPHA}"),
        format!("Bearer {BETA}x"),
        ALPHA.to_string(),
    ] {
        engine
            .client
            .post(engine.url("/points/9?point=1"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
    }
    let log = engine.log_text();
    assert!(!log.is_empty());
    for secret in [ALPHA, BETA] {
        assert!(!log.contains(secret), "a token appears in the log:\n{log}");
    }

    let help = engine_command(&db)
        .arg("--help")
        .env("API_TOKENS", format!("{ALPHA},{BETA}"))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("API_TOKENS"), "{help}");
    assert!(!help.contains(ALPHA) && !help.contains(BETA), "{help}");
}

#[tokio::test]
async fn short_or_malformed_tokens_stop_the_engine_at_start_up() {
    let db = TestDatabase::new();
    for bad in [
        "short",
        "has a space in the token",
        "ok-token-0123456789,tiny",
    ] {
        let output = engine_command(&db)
            .arg("serve")
            .env("API_TOKENS", bad)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("API token"), "{stderr}");
        assert!(
            !stderr.contains(bad),
            "the rejected value is echoed: {stderr}"
        );
    }
}
