//! The drills' load: concurrent clients charging buyers and paying orders (each payment on an
//! order the client just created) against one engine, recording every response. A 200 (or the
//! 201 of an order) is an acknowledgement the drill later looks for in the database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What the load offers.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent clients, each sending its next request when the last one was answered.
    pub clients: usize,
    /// The buyers the clients pick from at random.
    pub buyers: Vec<i64>,
    /// Share of iterations that create and pay an order (the rest charge), in percent.
    pub pay_percent: u32,
    /// The client gives up on a request after this long (counted as a transport error).
    pub timeout: Duration,
    /// Behave as clients behind a load balancer: poll `/health/ready` every 50 ms and stop
    /// sending once it says not ready (the balancer routes them elsewhere). Without it the
    /// clients ignore readiness and keep sending to the end.
    pub follow_readiness: bool,
}

impl LoadSpec {
    pub fn describe(&self) -> String {
        format!(
            "{} clients, {} buyers, {}% payments",
            self.clients,
            self.buyers.len(),
            self.pay_percent
        )
    }
}

/// A request the engine acknowledged.
#[derive(Debug, Clone)]
pub enum Ack {
    Charge {
        buyer: i64,
        amount: i64,
        balance: i64,
        version: i64,
    },
    Order {
        buyer: i64,
        order: i64,
        total: i64,
    },
    Payment {
        buyer: i64,
        order: i64,
        payment: i64,
        balance: i64,
        version: i64,
    },
}

/// One answer (or failure) as the client saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The buyer the request was for.
    pub buyer: i64,
    /// When the request was sent, since the load started.
    pub sent_at: Duration,
    pub latency: Duration,
    /// The HTTP status; 0 when no answer came (connection refused or reset, timeout).
    pub status: u16,
    /// The problem `code` of an error answer.
    pub code: Option<String>,
    pub retry_after: bool,
    pub problem_json: bool,
    /// No answer because no connection was made (nothing listening): never accepted.
    pub refused: bool,
}

/// Everything the clients saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub acks: Vec<Ack>,
    pub samples: Vec<Sample>,
    /// A few transport errors, for failure messages.
    pub error_examples: Vec<String>,
    pub duration: Duration,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.acks.extend(other.acks);
        self.samples.extend(other.samples);
        if self.error_examples.len() < 5 {
            self.error_examples.extend(other.error_examples);
        }
        self.duration += other.duration;
    }

    /// Answers by status (0: no answer).
    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for sample in &self.samples {
            *counts.entry(sample.status).or_default() += 1;
        }
        counts
    }

    /// Acknowledged money movements (charges and payments; orders are not money).
    pub fn money_acks(&self) -> usize {
        self.acks
            .iter()
            .filter(|ack| !matches!(ack, Ack::Order { .. }))
            .count()
    }

    /// Samples sent in `[from, to)`.
    pub fn between(&self, from: Duration, to: Duration) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| s.sent_at >= from && s.sent_at < to)
    }

    /// Answered requests per second over the whole load.
    pub fn rate(&self) -> f64 {
        let answered = self.samples.iter().filter(|s| s.status != 0).count();
        answered as f64 / self.duration.as_secs_f64().max(0.001)
    }
}

/// The latency at quantile `q` (0..=1) of `samples`, or zero when there are none.
pub fn quantile<'a>(samples: impl Iterator<Item = &'a Sample>, q: f64) -> Duration {
    let mut latencies: Vec<Duration> = samples.map(|s| s.latency).collect();
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort();
    let index = ((latencies.len() - 1) as f64 * q).round() as usize;
    latencies[index]
}

/// A running load; [`Load::stop`] ends it and collects what the clients saw.
pub struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<actix_web::rt::task::JoinHandle<Outcome>>,
    started: Instant,
}

impl Load {
    /// Starts `spec.clients` clients against the engine at `base` (`http://host:port`).
    pub fn start(base: &str, spec: &LoadSpec) -> Load {
        assert!(!spec.buyers.is_empty(), "a load needs buyers");
        let http = reqwest::Client::builder()
            .timeout(spec.timeout)
            .pool_max_idle_per_host(spec.clients)
            // Before the server's keep-alive (5 s) closes them; see helpers::spawn_app.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("reqwest client");
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        if spec.follow_readiness {
            let (http, url, stop) = (
                http.clone(),
                format!("{base}/health/ready"),
                Arc::clone(&stop),
            );
            actix_web::rt::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ready = http.get(&url).send().await.map(|r| r.status().as_u16());
                    if !matches!(ready, Ok(200)) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
        let clients = (0..spec.clients)
            .map(|i| {
                let client = Client {
                    http: http.clone(),
                    base: base.to_string(),
                    spec: spec.clone(),
                    rng: Rng::seeded(i as u64),
                    started,
                    outcome: Outcome::default(),
                };
                actix_web::rt::spawn(client.run(Arc::clone(&stop)))
            })
            .collect();
        Load {
            stop,
            clients,
            started,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks every client to stop after its current request and waits for them.
    pub async fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcome = Outcome::default();
        for client in self.clients {
            outcome.merge(client.await.expect("a load client panicked"));
        }
        outcome.duration = self.started.elapsed();
        outcome
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    spec: LoadSpec,
    rng: Rng,
    started: Instant,
    outcome: Outcome,
}

impl Client {
    async fn run(mut self, stop: Arc<AtomicBool>) -> Outcome {
        while !stop.load(Ordering::Relaxed) {
            let buyer = self.spec.buyers[self.rng.below(self.spec.buyers.len() as u64) as usize];
            let answered = if self.rng.below(100) < u64::from(self.spec.pay_percent) {
                self.create_and_pay(buyer).await
            } else {
                let amount = 1 + self.rng.below(1_000) as i64;
                self.charge(buyer, amount).await
            };
            if !answered {
                // The engine is gone or unreachable: do not spin on refused connections.
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.outcome
    }

    async fn charge(&mut self, buyer: i64, amount: i64) -> bool {
        let path = format!("/points/{buyer}?point={amount}");
        let Some(body) = self.post(buyer, &path, None).await else {
            return false;
        };
        if let Some(body) = body {
            self.outcome.acks.push(Ack::Charge {
                buyer,
                amount,
                balance: field(&body, "balance"),
                version: field(&body, "version"),
            });
        }
        true
    }

    async fn create_and_pay(&mut self, buyer: i64) -> bool {
        let total = 1 + self.rng.below(500) as i64;
        let order_body = json!({ "buyerId": buyer, "totalPrice": total });
        let Some(created) = self.post(buyer, "/orders", Some(order_body)).await else {
            return false;
        };
        let Some(created) = created else {
            return true;
        };
        let order = field(&created, "orderId");
        self.outcome.acks.push(Ack::Order {
            buyer,
            order,
            total,
        });
        let pay_body = json!({ "buyerId": buyer, "orderId": order });
        let Some(paid) = self
            .post(buyer, "/orders/payment/kafka", Some(pay_body))
            .await
        else {
            return false;
        };
        if let Some(paid) = paid {
            self.outcome.acks.push(Ack::Payment {
                buyer,
                order,
                payment: field(&paid, "paymentId"),
                balance: field(&paid, "balance"),
                version: field(&paid, "version"),
            });
        }
        true
    }

    /// Sends one POST and records it: `None` when no answer came, `Some(None)` for an error
    /// answer, `Some(Some(body))` for a success.
    async fn post(&mut self, buyer: i64, path: &str, body: Option<Value>) -> Option<Option<Value>> {
        let sent_at = self.started.elapsed();
        let start = Instant::now();
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let problem_json = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/problem+json"));
                match response.bytes().await {
                    Ok(bytes) => {
                        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
                        Ok((status, retry_after, problem_json, value))
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        };
        let latency = start.elapsed();
        match result {
            Ok((status, retry_after, problem_json, value)) => {
                let success = (200..300).contains(&status);
                let code = (!success)
                    .then(|| {
                        value
                            .as_ref()
                            .and_then(|v| v.get("code")?.as_str().map(str::to_string))
                    })
                    .flatten();
                self.outcome.samples.push(Sample {
                    buyer,
                    sent_at,
                    latency,
                    status,
                    code,
                    retry_after,
                    problem_json,
                    refused: false,
                });
                if success {
                    let value = value.unwrap_or_else(|| panic!("POST {path}: {status} not JSON"));
                    Some(Some(value))
                } else {
                    Some(None)
                }
            }
            Err(error) => {
                self.outcome.samples.push(Sample {
                    buyer,
                    sent_at,
                    latency,
                    status: 0,
                    code: None,
                    retry_after: false,
                    problem_json: false,
                    refused: error.is_connect(),
                });
                if self.outcome.error_examples.len() < 3 {
                    self.outcome.error_examples.push(format!(
                        "POST {path}: {}",
                        crate::kafka::error_chain(&error)
                    ));
                }
                None
            }
        }
    }
}

fn field(body: &Value, name: &str) -> i64 {
    body[name]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {name} in {body}"))
}

/// xorshift64*: enough randomness for picking buyers and amounts, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        let entropy = uuid::Uuid::new_v4().as_u64_pair().0;
        Rng((entropy ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
