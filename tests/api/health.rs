//! Health probes, the API documents, unknown routes, and behaviour while the database is away.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::Value;

use crate::helpers::{
    TestApp, TestDatabase, admin_conn, assert_all_invariants, server_url_as, spawn_app,
    spawn_app_on_with,
};

#[actix_web::test]
async fn liveness_answers_200() {
    let app = spawn_app().await;

    let response = app.get("/health/live").await;
    assert_eq!(response.status(), 200, "{}", response.text);
}

#[actix_web::test]
async fn readiness_answers_200_when_the_database_answers() {
    let app = spawn_app().await;

    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 200, "{}", response.text);
}

#[actix_web::test]
async fn an_unknown_route_is_404_not_found_problem_json() {
    let app = spawn_app().await;

    app.get("/nope").await.expect_problem(404, "not_found");
    app.get("/points").await.expect_problem(404, "not_found");
    app.get("/points/1/extra")
        .await
        .expect_problem(404, "not_found");
    app.post_raw("/no/such/route", "{}", Some("application/json"))
        .await
        .expect_problem(404, "not_found");
}

fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[actix_web::test]
async fn the_openapi_document_lists_every_route() {
    let app = spawn_app().await;

    let doc = app.get("/openapi.json").await.ok();
    let version = doc["openapi"]
        .as_str()
        .unwrap_or_else(|| panic!("no openapi version: {doc}"));
    assert!(
        version.starts_with("3."),
        "OpenAPI 3 expected, got {version}"
    );
    let paths = doc["paths"].as_object().expect("paths object");
    let documented: Vec<(String, &Value)> =
        paths.iter().map(|(p, item)| (normalize(p), item)).collect();

    let expected = [
        ("/points/{}", "post"),
        ("/points/{}", "get"),
        ("/points/history/{}", "get"),
        ("/orders", "post"),
        ("/orders/{}", "get"),
        ("/orders/payment/kafka", "post"),
        ("/payments/{}", "get"),
        ("/buyers/{}/orders", "get"),
        ("/buyers/{}/payments", "get"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
    ];
    for (path, method) in expected {
        let found = documented
            .iter()
            .any(|(p, item)| p == path && item.get(method).is_some());
        assert!(
            found,
            "{method} {path} is missing from the OpenAPI paths: {:?}",
            paths.keys()
        );
    }

    // Tools link operations by operationId (schemathesis resolves the links it infers with it):
    // two operations with one id make one of them unreachable, or linked to the other's data.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation.get("operationId")?.as_str())
        .collect();
    ids.sort_unstable();
    let repeated: Vec<&str> = ids
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    assert!(repeated.is_empty(), "operationIds used twice: {repeated:?}");
}

#[actix_web::test]
async fn swagger_ui_is_served_at_docs() {
    let app = spawn_app().await;

    let response = app.get("/docs/").await;
    assert_eq!(response.status(), 200, "{}", response.text);
    assert!(
        response.content_type().starts_with("text/html"),
        "{:?}",
        response.headers
    );
    assert!(
        response.text.to_lowercase().contains("swagger"),
        "not the Swagger UI page"
    );
}

// --- database outage ----------------------------------------------------------------------------

/// A database account used by one engine only, so the test can cut that engine off the database
/// (drop the account and kill its connections) without touching anything else.
struct DbUser {
    name: String,
    db_name: String,
}

impl DbUser {
    fn create(db: &TestDatabase) -> DbUser {
        let user = DbUser {
            name: format!("pe_u_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            db_name: db.name().to_string(),
        };
        user.grant();
        user
    }

    fn grant(&self) {
        let mut conn = admin_conn();
        for sql in [
            format!("CREATE USER IF NOT EXISTS '{}'@'%'", self.name),
            format!(
                "GRANT ALL PRIVILEGES ON `{}`.* TO '{}'@'%'",
                self.db_name, self.name
            ),
        ] {
            diesel::sql_query(&sql)
                .execute(&mut conn)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// Drops the account and kills every connection it holds.
    fn cut_off(&self) {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let mut conn = admin_conn();
        diesel::sql_query(format!("DROP USER '{}'@'%'", self.name))
            .execute(&mut conn)
            .expect("dropping the engine's database user");
        let ids: Vec<Id> = diesel::sql_query(
            "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST WHERE USER = ?",
        )
        .bind::<diesel::sql_types::Text, _>(&self.name)
        .load(&mut conn)
        .expect("listing the engine's connections");
        for Id { id } in ids {
            let _ = diesel::sql_query(format!("KILL CONNECTION {id}")).execute(&mut conn);
        }
    }
}

impl Drop for DbUser {
    fn drop(&mut self) {
        if let Ok(mut conn) = MysqlConnection::establish(&crate::helpers::server_url()) {
            let _ = diesel::sql_query(format!("DROP USER IF EXISTS '{}'@'%'", self.name))
                .execute(&mut conn);
        }
    }
}

/// Polls `GET path` until it answers `status`; returns whether it did within `timeout`.
async fn eventually_status(app: &TestApp, path: &str, status: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        if app.get(path).await.status() == status {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn charge_until_ok(app: &TestApp, buyer: i64, amount: i64) -> Value {
    let start = Instant::now();
    loop {
        let response = app.charge(buyer, amount).await;
        if response.status() == 200 {
            return response.json();
        }
        response.expect_problem(503, "database_unavailable");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "charging buyer {buyer} did not recover: {}",
            response.text
        );
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    }
}

#[actix_web::test]
async fn while_the_database_is_unreachable_requests_answer_503_database_unavailable_then_recover() {
    let db = TestDatabase::new();
    let user = DbUser::create(&db);
    let url = format!("{}/{}", server_url_as(&user.name), db.name());
    let app = spawn_app_on_with(&db, |s| {
        s.database.url = url.into();
        s.database.checkout_timeout = Duration::from_millis(500);
    })
    .await;
    app.charge_ok(1, 100).await;
    assert_eq!(app.get("/health/ready").await.status(), 200);

    user.cut_off();

    assert!(
        eventually_status(&app, "/health/ready", 503, Duration::from_secs(10)).await,
        "readiness must answer 503 while the database is unreachable"
    );
    assert_eq!(
        app.get("/health/live").await.status(),
        200,
        "liveness does not depend on the database"
    );
    app.charge(2, 50)
        .await
        .expect_problem(503, "database_unavailable");
    app.balance(3)
        .await
        .expect_problem(503, "database_unavailable");
    app.history(1, None, None)
        .await
        .expect_problem(503, "database_unavailable");
    app.get_order(1)
        .await
        .expect_problem(503, "database_unavailable");
    for path in ["/payments/1", "/buyers/1/orders", "/buyers/1/payments"] {
        app.get(path)
            .await
            .expect_problem(503, "database_unavailable");
    }

    user.grant();

    assert!(
        eventually_status(&app, "/health/ready", 200, Duration::from_secs(15)).await,
        "readiness must recover once the database is back"
    );
    // Writes recover too, for a new buyer and for one the engine held in memory.
    let two = charge_until_ok(&app, 2, 50).await;
    assert_eq!(
        (two["balance"].as_i64(), two["version"].as_i64()),
        (Some(50), Some(1))
    );
    let one = charge_until_ok(&app, 1, 1).await;
    assert_eq!(
        (one["balance"].as_i64(), one["version"].as_i64()),
        (Some(101), Some(2))
    );
    assert_all_invariants(&mut db.connect());
}

#[actix_web::test]
async fn a_method_a_route_does_not_serve_gets_405_naming_those_it_does() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/points/1", "GET, POST"),
        (reqwest::Method::PUT, "/points/history/1", "GET"),
        (reqwest::Method::GET, "/orders/payment/kafka", "POST"),
        (reqwest::Method::PATCH, "/orders", "POST"),
        (reqwest::Method::POST, "/orders/1", "GET"),
        (reqwest::Method::TRACE, "/health/live", "GET"),
        (reqwest::Method::POST, "/health/ready", "GET"),
        (reqwest::Method::DELETE, "/metrics", "GET"),
    ] {
        let response = app.raw(method.clone(), path, None, None, None).await;
        response.expect_problem(405, "method_not_allowed");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
    }
}

#[actix_web::test]
async fn the_openapi_document_states_the_limits_and_asks_no_token_unless_required() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await.ok();
    assert!(
        doc.get("security").is_none(),
        "no API_TOKENS, yet the document requires a token: {}",
        doc["security"]
    );
    let charge = &doc["paths"]["/points/{buyerId}"]["post"]["parameters"];
    let param = |name: &str| {
        charge
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}: {charge}"))
            .clone()
    };
    assert_eq!(param("buyerId")["schema"]["minimum"], 1);
    assert_eq!(param("point")["required"], true);
    assert_eq!(param("point")["schema"]["minimum"], 1);
    let order = &doc["components"]["schemas"]["CreateOrderRequest"]["properties"];
    assert_eq!(order["buyerId"]["minimum"], 1);
    assert_eq!(order["totalPrice"]["minimum"], 1);
}
