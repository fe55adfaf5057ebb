//! Hostile input, by hand, against the real engine: amounts and ids at and past the i64 range,
//! bodies too large, too deep or of the wrong type, and slow clients (slowloris) that the
//! server must cut off without making anyone else wait. The generated side is `hostile.rs`
//! (schemathesis) and the property tests in `src/http/tests.rs`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use payment_engine::domain::Points;
use serde_json::json;

use crate::helpers::{TestApp, balance_row, ledger_count, scalar, spawn_app, spawn_app_with};

const PAY: &str = "/orders/payment/kafka";

#[actix_web::test]
async fn charges_at_and_past_the_ends_of_i64_are_refused_with_400_and_move_nothing() {
    let app = spawn_app().await;

    for point in [
        i64::MAX.to_string(),
        i64::MIN.to_string(),
        "9223372036854775808".to_string(),
        "-9223372036854775809".to_string(),
        u64::MAX.to_string(),
        "18446744073709551616".to_string(),
        "-0".to_string(),
        "%2B5".to_string(),
        "5%205".to_string(),
        "%00".to_string(),
    ] {
        app.charge_raw("1", &format!("point={point}"), None)
            .await
            .expect_problem(400, "invalid_point");
    }
    app.charge_raw("1", "point=1&point=2", None)
        .await
        .expect_problem(400, "invalid_query");

    assert_eq!(app.balance_of(1).await, (0, 0));
    assert!(balance_row(&mut app.db_conn(), 1).is_none());
}

#[actix_web::test]
async fn concurrent_charges_past_the_maximum_balance_stop_exactly_at_it() {
    let app = spawn_app_with(|s| {
        s.buyers.max_balance = Points::new(1_000);
        s.buyers.max_charge = Points::new(1_000);
    })
    .await;

    let answers = futures::future::join_all((0..12).map(|_| app.charge(1, 100))).await;
    let accepted = answers.iter().filter(|a| a.status() == 200).count();
    for refused in answers.iter().filter(|a| a.status() != 200) {
        let body = refused.expect_problem(422, "balance_limit_exceeded");
        assert!(
            body["detail"].as_str().unwrap().contains("1000"),
            "the detail names the maximum: {body}"
        );
    }
    assert_eq!(accepted, 10, "exactly 10 × 100 fit under 1,000");
    assert_eq!(app.balance_of(1).await, (1_000, 10));
    assert_eq!(ledger_count(&mut app.db_conn(), 1), 10);
}

#[actix_web::test]
async fn ids_and_totals_outside_the_i64_range_in_bodies_are_refused_with_400() {
    let app = spawn_app().await;
    app.charge_ok(1, 10_000).await;
    let order = app.new_order(1, 100).await;

    let bodies = [
        format!(r#"{{"buyerId": 9223372036854775808, "orderId": {order}}}"#),
        r#"{"buyerId": 1, "orderId": 18446744073709551616}"#.to_string(),
        format!(r#"{{"buyerId": {}, "orderId": {order}}}"#, i64::MIN),
        format!(r#"{{"buyerId": 1e3, "orderId": {order}}}"#),
        format!(r#"{{"buyerId": [1], "orderId": {order}}}"#),
        format!("[1, {order}]"),
    ];
    for body in &bodies {
        let response = app
            .post_raw(PAY, body.clone(), Some("application/json"))
            .await;
        assert_eq!(response.code().as_deref(), Some("invalid_body"), "{body}");
        response.expect_problem(400, "invalid_body");
    }
    for body in [
        r#"{"buyerId": 1, "totalPrice": 9223372036854775808}"#,
        r#"{"buyerId": 9223372036854775808, "totalPrice": 5}"#,
        r#"{"buyerId": 1, "totalPrice": 500.0}"#,
        "[1, 500]",
    ] {
        app.post_raw("/orders", body, Some("application/json"))
            .await
            .expect_problem(400, "invalid_body");
    }
    app.create_order(1, i64::MAX)
        .await
        .expect_problem(400, "invalid_amount");
    // The largest id is an id: an unknown order, not a malformed one.
    app.pay(1, i64::MAX)
        .await
        .expect_problem(404, "order_not_found");

    assert_eq!(app.balance_of(1).await, (10_000, 1));
    assert_eq!(app.get_order(order).await.ok()["status"], json!("PENDING"));
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        1
    );
}

#[actix_web::test]
async fn bodies_without_a_json_content_type_are_refused_with_415() {
    let app = spawn_app().await;
    app.charge_ok(1, 10_000).await;
    let order = app.new_order(1, 100).await;

    let pay = json!({ "buyerId": 1, "orderId": order }).to_string();
    let create = json!({ "buyerId": 1, "totalPrice": 100 }).to_string();
    for content_type in [None, Some("multipart/form-data; boundary=x"), Some("json")] {
        app.post_raw(PAY, pay.clone(), content_type)
            .await
            .expect_problem(415, "unsupported_media_type");
        app.post_raw("/orders", create.clone(), content_type)
            .await
            .expect_problem(415, "unsupported_media_type");
    }

    assert_eq!(app.balance_of(1).await, (10_000, 1));
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        1
    );
}

#[actix_web::test]
async fn a_chunked_body_past_the_limit_is_refused_with_413() {
    let app = spawn_app().await;
    // No Content-Length: the limit must hold while the body streams in.
    let chunk = " ".repeat(4096);
    let mut request = String::from(
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    let mut sent = 0;
    while sent <= app.settings.http.max_body_bytes {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
        sent += chunk.len();
    }
    request.push_str("0\r\n\r\n");

    let answer = exchange(&app, request.as_bytes(), Duration::from_secs(10));
    assert_status(&answer, 413, "payload_too_large");
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );
}

#[actix_web::test]
async fn a_hundred_thousand_nested_arrays_are_refused_and_the_engine_lives_on() {
    // Over the default limit such a body is merely too large.
    let app = spawn_app().await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    app.post_raw(PAY, nested.clone(), Some("application/json"))
        .await
        .expect_problem(413, "payload_too_large");

    // Under a limit that admits it, the parser's depth limit refuses it.
    let app = spawn_app_with(|s| s.http.max_body_bytes = 1 << 20).await;
    for body in [
        nested.clone(),
        "[".repeat(100_000),
        format!(r#"{{"buyerId": {nested}, "orderId": 1}}"#),
        format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000)),
    ] {
        app.post_raw(PAY, body.clone(), Some("application/json"))
            .await
            .expect_problem(400, "invalid_body");
        app.post_raw("/orders", body, Some("application/json"))
            .await
            .expect_problem(400, "invalid_body");
    }
    app.charge_ok(1, 10).await;
    assert_eq!(app.balance_of(1).await, (10, 1));
}

// ---------------------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------------------

const SLOW_CLIENT_TIMEOUT: Duration = Duration::from_millis(1_000);

async fn spawn_app_cutting_slow_clients() -> TestApp {
    spawn_app_with(|s| s.http.client_request_timeout = SLOW_CLIENT_TIMEOUT).await
}

/// What a raw connection received until the server closed it, and when it closed.
struct RawAnswer {
    text: String,
    closed_after: Duration,
}

fn connect(app: &TestApp, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", app.port)).expect("connecting");
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream
}

/// Reads until the server closes the connection (or `read_timeout` passes, which panics).
fn read_to_close(mut stream: TcpStream, started: Instant) -> RawAnswer {
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the server kept the connection open ({e}) after {:?}, having sent {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&received)
        ),
    }
    RawAnswer {
        text: String::from_utf8_lossy(&received).into_owned(),
        closed_after: started.elapsed(),
    }
}

/// Sends a whole request at once and reads the answer to the end.
fn exchange(app: &TestApp, request: &[u8], read_timeout: Duration) -> RawAnswer {
    let started = Instant::now();
    let mut stream = connect(app, read_timeout);
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request);
    read_to_close(stream, started)
}

/// Asserts a problem+json answer with `status` and `code` on a raw connection.
#[track_caller]
fn assert_status(answer: &RawAnswer, status: u16, code: &str) {
    let (head, body) = answer
        .text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", answer.text));
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status} ")),
        "expected {status}: {head}"
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/problem+json"),
        "a {status} must be problem+json: {head}"
    );
    let problem: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {body:?}"));
    assert_eq!(problem["code"], json!(code), "{problem}");
}

/// Trickles `bytes` one per `every`, until the server closes (or all are sent).
fn trickle(mut stream: TcpStream, bytes: &[u8], every: Duration) -> TcpStream {
    for byte in bytes {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(every);
    }
    stream
}

#[actix_web::test]
async fn a_client_trickling_its_request_head_is_cut_off_with_408() {
    let app = spawn_app_cutting_slow_clients().await;
    let started = Instant::now();
    let stream = connect(&app, Duration::from_secs(10));
    let writer = stream.try_clone().unwrap();
    let head = b"POST /points/1?point=5 HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let trickler = std::thread::spawn(move || {
        trickle(writer, head, Duration::from_millis(100));
    });

    let answer = read_to_close(stream, started);
    assert!(
        answer.text.starts_with("HTTP/1.1 408 "),
        "expected 408: {:?}",
        answer.text
    );
    assert_cut_off_in_time(&answer);
    trickler.join().unwrap();
    assert_eq!(app.balance_of(1).await, (0, 0), "the request never ran");
}

#[actix_web::test]
async fn a_client_that_connects_and_sends_nothing_is_disconnected() {
    let app = spawn_app_cutting_slow_clients().await;
    let started = Instant::now();
    let stream = connect(&app, Duration::from_secs(10));
    let answer = read_to_close(stream, started);
    assert_cut_off_in_time(&answer);
}

#[actix_web::test]
async fn a_client_that_never_finishes_its_body_is_answered_408_body_timeout() {
    let app = spawn_app_cutting_slow_clients().await;
    let started = Instant::now();
    let mut stream = connect(&app, Duration::from_secs(10));
    stream
        .write_all(
            b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"buyerId\": 1,",
        )
        .unwrap();

    let answer = read_to_close(stream, started);
    assert_status(&answer, 408, "body_timeout");
    assert_cut_off_in_time(&answer);
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );
}

#[actix_web::test]
async fn a_client_trickling_its_body_is_answered_408_body_timeout() {
    let app = spawn_app_cutting_slow_clients().await;
    let body = json!({ "buyerId": 1, "totalPrice": 100, "note": "z".repeat(40) }).to_string();
    let started = Instant::now();
    let mut stream = connect(&app, Duration::from_secs(10));
    write!(
        stream,
        "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let writer = stream.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        trickle(writer, body.as_bytes(), Duration::from_millis(100));
    });

    let answer = read_to_close(stream, started);
    assert_status(&answer, 408, "body_timeout");
    assert_cut_off_in_time(&answer);
    trickler.join().unwrap();
    assert_eq!(
        scalar(&mut app.db_conn(), "SELECT COUNT(*) AS n FROM orders"),
        0
    );
}

#[track_caller]
fn assert_cut_off_in_time(answer: &RawAnswer) {
    // The deadline, plus the disconnect grace and scheduling slack; far less than the
    // several seconds the trickling client would need.
    let limit = SLOW_CLIENT_TIMEOUT + Duration::from_millis(2_500);
    assert!(
        answer.closed_after >= SLOW_CLIENT_TIMEOUT * 9 / 10 && answer.closed_after <= limit,
        "cut off after {:?}, expected about {SLOW_CLIENT_TIMEOUT:?}: {:?}",
        answer.closed_after,
        answer.text
    );
}

#[actix_web::test]
async fn many_slow_clients_do_not_delay_anyone_else() {
    let app = spawn_app_cutting_slow_clients().await;
    let port = app.port;
    let slow: Vec<_> = (0..64)
        .map(|i| {
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let started = Instant::now();
                let writer = stream.try_clone().unwrap();
                let trickler = std::thread::spawn(move || {
                    if i % 2 == 0 {
                        // The head, one byte at a time.
                        let head = b"GET /points/1 HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n";
                        trickle(writer, head, Duration::from_millis(100));
                    } else {
                        // The head at once, then a body that never ends.
                        let head = b"POST /orders HTTP/1.1\r\nHost: x\r\n\
                                     Content-Type: application/json\r\n\
                                     Content-Length: 1000\r\n\r\n{";
                        let mut writer = writer;
                        writer.write_all(head).unwrap();
                        trickle(writer, &[b' '; 40], Duration::from_millis(100));
                    }
                });
                let closed_after = read_to_close(stream, started).closed_after;
                trickler.join().unwrap();
                closed_after
            })
        })
        .collect();

    // Meanwhile, while every slow client holds its connection, others are served at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for points in 1..=10 {
        let started = Instant::now();
        app.charge_ok(2, points).await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a charge took {:?} beside the slow clients",
            started.elapsed()
        );
    }
    assert_eq!(app.balance_of(2).await, (55, 10));

    for client in slow {
        let closed_after = client.join().unwrap();
        assert!(
            closed_after < SLOW_CLIENT_TIMEOUT + Duration::from_millis(2_500),
            "a slow client was held {closed_after:?}"
        );
    }
}

/// Reads one answer (head and a Content-Length body) from a kept-alive connection.
fn read_answer(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).expect("reading an answer");
        assert!(
            n > 0,
            "the server closed the connection: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, value)| value.trim().parse::<usize>().unwrap());
            if body.len() >= length {
                return text.into_owned();
            }
        }
    }
}

/// An idle kept-alive connection stays open for `KEEP_ALIVE_S`, then the server closes it.
/// Closing idle connections sooner than the clients that pool them races a client's next
/// request on the connection, which then fails with no answer at all: under actix's default
/// of 5 s, the serialization probe saw 1 double payment in about 7,000 end in EOF.
#[actix_web::test]
async fn an_idle_kept_alive_connection_serves_until_the_keep_alive_then_closes() {
    let keep_alive = Duration::from_secs(2);
    let app = spawn_app_with(|s| s.http.keep_alive = keep_alive).await;
    let mut stream = connect(&app, Duration::from_secs(10));
    let request = b"GET /health/live HTTP/1.1\r\nHost: engine\r\n\r\n";
    stream.write_all(request).unwrap();
    let first = read_answer(&mut stream);
    assert!(first.starts_with("HTTP/1.1 200 "), "{first}");

    // Idle for most of the keep-alive: the connection still serves.
    std::thread::sleep(keep_alive * 3 / 4);
    stream.write_all(request).unwrap();
    let second = read_answer(&mut stream);
    assert!(second.starts_with("HTTP/1.1 200 "), "{second}");

    // Idle past it: the server closes the connection, having nothing to answer.
    let idle_since = Instant::now();
    let closed = read_to_close(stream, idle_since);
    assert!(
        closed.text.is_empty(),
        "unexpected bytes: {:?}",
        closed.text
    );
    assert!(
        closed.closed_after >= keep_alive - Duration::from_millis(200)
            && closed.closed_after < keep_alive + Duration::from_millis(1_500),
        "closed {:?} after the last answer, keep-alive {keep_alive:?}",
        closed.closed_after
    );
}

#[test]
fn the_default_keep_alive_outlasts_the_usual_load_balancer_idle_minute() {
    let defaults = payment_engine::config::Settings::defaults();
    assert!(
        defaults.http.keep_alive > Duration::from_secs(60),
        "KEEP_ALIVE_S defaults to {} s",
        defaults.http.keep_alive.as_secs()
    );
}
