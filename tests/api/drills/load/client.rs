//! One client of the load: its loop, the plain charge and create-and-pay iterations, and the
//! recording of every request it sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Ack, LoadSpec, Outcome, Request, Rng, Sample};

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    pub(super) spec: LoadSpec,
    pub(super) rng: Rng,
    started: Instant,
    pub(super) outcome: Outcome,
    /// Whether the last request got an answer (else the engine is gone or unreachable).
    answered: bool,
}

/// One request to send.
pub(super) struct Call {
    pub request: Request,
    pub buyer: i64,
    pub path: String,
    pub body: Option<Value>,
    /// The error answer (status, problem code) the state makes right, if any.
    pub refusal: Option<(u16, &'static str)>,
}

/// What came back.
#[derive(Debug)]
pub(super) enum Reply {
    /// No answer: connection refused or reset, or timed out.
    Silent,
    /// A 2xx, with its body.
    Success(Value),
    /// An error answer.
    Failure { status: u16, code: Option<String> },
}

impl Reply {
    /// No answer or a 5xx: whether the request took effect is not known.
    pub fn unknown(&self) -> bool {
        match self {
            Reply::Silent => true,
            Reply::Success(_) => false,
            Reply::Failure { status, .. } => *status >= 500,
        }
    }

    /// The error answer `status` with problem `code`.
    pub fn is_refusal(&self, status: u16, code: &str) -> bool {
        matches!(self, Reply::Failure { status: s, code: Some(c) } if *s == status && c == code)
    }
}

/// An answer as it came off the wire.
pub(super) struct Answer {
    status: u16,
    retry_after: bool,
    problem_json: bool,
    body: Option<Value>,
}

/// A sent request: when, how long it took, and its answer (or transport error).
pub(super) struct Sent {
    sent_at: Duration,
    latency: Duration,
    result: Result<Answer, reqwest::Error>,
}

impl Client {
    pub(super) fn new(
        http: reqwest::Client,
        base: &str,
        spec: &LoadSpec,
        rng: Rng,
        started: Instant,
    ) -> Client {
        Client {
            http,
            base: base.to_string(),
            spec: spec.clone(),
            rng,
            started,
            outcome: Outcome::default(),
            answered: true,
        }
    }

    pub(super) async fn run(mut self, stop: Arc<AtomicBool>) -> Outcome {
        while !stop.load(Ordering::Relaxed) {
            let buyer = self.spec.buyers[self.rng.below(self.spec.buyers.len() as u64) as usize];
            if self.rng.below(100) < u64::from(self.spec.pay_percent) {
                self.order(buyer).await;
            } else {
                let amount = 1 + self.rng.below(1_000) as i64;
                self.charge(buyer, amount).await;
            }
            if !self.answered {
                // The engine is gone or unreachable: do not spin on refused connections.
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.outcome
    }

    async fn charge(&mut self, buyer: i64, amount: i64) {
        let path = format!("/points/{buyer}?point={amount}");
        let call = Call::new(Request::Charge, buyer, path, None);
        if let Reply::Success(body) = self.post(call).await {
            self.outcome.acks.push(Ack::Charge {
                buyer,
                amount,
                balance: field(&body, "balance"),
                version: field(&body, "version"),
            });
        }
    }

    /// Creates an order, then pays it, or (`lifecycle_percent` of them) takes it through its
    /// lifecycle.
    async fn order(&mut self, buyer: i64) {
        let total = 1 + self.rng.below(500) as i64;
        let body = json!({ "buyerId": buyer, "totalPrice": total });
        let call = Call::new(Request::Order, buyer, "/orders".to_string(), Some(body));
        let Reply::Success(created) = self.post(call).await else {
            return;
        };
        let order = field(&created, "orderId");
        self.outcome.acks.push(Ack::Order {
            buyer,
            order,
            total,
        });
        if self.rng.below(100) < u64::from(self.spec.lifecycle_percent) {
            self.lifecycle(buyer, order, total).await;
        } else {
            let paid = self.post(Call::pay(buyer, order)).await;
            self.paid(buyer, order, &paid);
        }
    }

    /// Records the payment `reply` acknowledged, if it did; returns its payment id.
    pub(super) fn paid(&mut self, buyer: i64, order: i64, reply: &Reply) -> Option<i64> {
        let Reply::Success(paid) = reply else {
            return None;
        };
        let payment = field(paid, "paymentId");
        self.outcome.acks.push(Ack::Payment {
            buyer,
            order,
            payment,
            balance: field(paid, "balance"),
            version: field(paid, "version"),
        });
        Some(payment)
    }

    /// Sends `call` and records it.
    pub(super) async fn post(&mut self, call: Call) -> Reply {
        let sent = self.send(&call).await;
        self.record(&call, sent)
    }

    /// Sends `call` without recording it (so that two can be in flight at once).
    pub(super) async fn send(&self, call: &Call) -> Sent {
        let sent_at = self.started.elapsed();
        let start = Instant::now();
        let mut request = self.http.post(format!("{}{}", self.base, call.path));
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let result: Result<Answer, reqwest::Error> = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let problem_json = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/problem+json"));
            let bytes = response.bytes().await?;
            Ok(Answer {
                status,
                retry_after,
                problem_json,
                body: serde_json::from_slice(&bytes).ok(),
            })
        }
        .await;
        Sent {
            sent_at,
            latency: start.elapsed(),
            result,
        }
    }

    /// Records what `call` got as a sample, and says what it was.
    pub(super) fn record(&mut self, call: &Call, sent: Sent) -> Reply {
        self.answered = sent.result.is_ok();
        let mut sample = Sample {
            request: call.request,
            buyer: call.buyer,
            sent_at: sent.sent_at,
            latency: sent.latency,
            status: 0,
            code: None,
            retry_after: false,
            problem_json: false,
            refused: false,
            refusal_expected: false,
        };
        let reply = match sent.result {
            Ok(answer) => {
                sample.status = answer.status;
                sample.retry_after = answer.retry_after;
                sample.problem_json = answer.problem_json;
                if (200..300).contains(&answer.status) {
                    let path = &call.path;
                    let status = answer.status;
                    let body = answer.body;
                    Reply::Success(body.unwrap_or_else(|| panic!("POST {path}: {status} not JSON")))
                } else {
                    let code = answer.body.as_ref().and_then(|v| v.get("code")?.as_str());
                    sample.code = code.map(str::to_string);
                    let (status, code) = (answer.status, sample.code.clone());
                    Reply::Failure { status, code }
                }
            }
            Err(error) => {
                sample.refused = error.is_connect();
                if self.outcome.error_examples.len() < 3 {
                    let chain = crate::kafka::error_chain(&error);
                    let example = format!("POST {}: {chain}", call.path);
                    self.outcome.error_examples.push(example);
                }
                Reply::Silent
            }
        };
        sample.refusal_expected = call
            .refusal
            .is_some_and(|(status, code)| reply.is_refusal(status, code));
        self.outcome.samples.push(sample);
        reply
    }

    /// Notes an answer the known state made wrong.
    pub(super) fn unexpected(&mut self, what: String) {
        self.outcome.unexpected.push(what);
    }
}

impl Call {
    pub fn new(request: Request, buyer: i64, path: String, body: Option<Value>) -> Call {
        Call {
            request,
            buyer,
            path,
            body,
            refusal: None,
        }
    }

    pub fn pay(buyer: i64, order: i64) -> Call {
        let body = json!({ "buyerId": buyer, "orderId": order });
        let path = "/orders/payment/kafka".to_string();
        Call::new(Request::Pay, buyer, path, Some(body))
    }

    /// The same call, with `status` and problem `code` as the answer the state makes right.
    pub fn refusal(self, status: u16, code: &'static str) -> Call {
        Call {
            refusal: Some((status, code)),
            ..self
        }
    }
}

pub(super) fn field(body: &Value, name: &str) -> i64 {
    body[name]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {name} in {body}"))
}
