//! The drills' load: concurrent clients charging buyers and paying orders (each payment on an
//! order the client just created) against one engine, recording every response; a share of the
//! orders go on through their lifecycle (`lifecycle`): cancelled, or paid and refunded, or paid
//! and cancelled at once. A 2xx is an acknowledgement the drill later looks for in the database.

mod client;
mod lifecycle;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use client::Client;

/// What the load offers.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent clients, each sending its next request when the last one was answered.
    pub clients: usize,
    /// The buyers the clients pick from at random.
    pub buyers: Vec<i64>,
    /// Share of iterations that create and pay an order (the rest charge), in percent.
    pub pay_percent: u32,
    /// Share of those orders, in percent, that instead go through their lifecycle: cancelled;
    /// or paid, then refunded in one to three parts; or paid and cancelled concurrently.
    pub lifecycle_percent: u32,
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
            "{} clients, {} buyers, {}% orders ({}% of them cancelled or refunded)",
            self.clients,
            self.buyers.len(),
            self.pay_percent,
            self.lifecycle_percent
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
    Refund {
        buyer: i64,
        payment: i64,
        refund: i64,
        amount: i64,
        balance: i64,
        version: i64,
    },
    Cancel {
        buyer: i64,
        order: i64,
    },
}

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Charge,
    Order,
    Pay,
    Cancel,
    Refund,
}

/// One answer (or failure) as the client saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub request: Request,
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
    /// An error answer the state made right, not a failure: the losing side of a pay racing a
    /// cancel (409), a refund of more than is left of its payment (422).
    pub refusal_expected: bool,
}

/// Everything the clients saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub acks: Vec<Ack>,
    pub samples: Vec<Sample>,
    /// A few transport errors, for failure messages.
    pub error_examples: Vec<String>,
    /// Answers the state the client knew made wrong (e.g. a 409 cancelling a pending order,
    /// a refund of another amount than asked, both sides of a race winning).
    pub unexpected: Vec<String>,
    pub duration: Duration,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.acks.extend(other.acks);
        self.samples.extend(other.samples);
        if self.error_examples.len() < 5 {
            self.error_examples.extend(other.error_examples);
        }
        self.unexpected.extend(other.unexpected);
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

    /// Acknowledged money movements (charges, payments, refunds; orders and cancels are not
    /// money).
    pub fn money_acks(&self) -> usize {
        self.acks
            .iter()
            .filter(|ack| !matches!(ack, Ack::Order { .. } | Ack::Cancel { .. }))
            .count()
    }

    /// What the lifecycle iterations got acknowledged: `N refunds, N cancels, N refused as
    /// their state said (race losers, over-refunds)`.
    pub fn lifecycle_summary(&self) -> String {
        let count = |f: fn(&Ack) -> bool| self.acks.iter().filter(|a| f(a)).count();
        let refunds = count(|a| matches!(a, Ack::Refund { .. }));
        let cancels = count(|a| matches!(a, Ack::Cancel { .. }));
        let refused = self.samples.iter().filter(|s| s.refusal_expected).count();
        format!("{refunds} refunds, {cancels} cancels, {refused} refused as their state said")
    }

    /// Panics unless the load got refunds and cancels acknowledged (it was meant to).
    #[track_caller]
    pub fn assert_lifecycle_ran(&self) {
        let ran = |f: fn(&Ack) -> bool| self.acks.iter().any(f);
        assert!(
            ran(|a| matches!(a, Ack::Refund { .. })) && ran(|a| matches!(a, Ack::Cancel { .. })),
            "the load's lifecycle got no refund or no cancel acknowledged: {}",
            self.lifecycle_summary()
        );
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
                let client = Client::new(http.clone(), base, spec, Rng::seeded(i as u64), started);
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
