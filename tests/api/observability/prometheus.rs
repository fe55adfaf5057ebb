//! A real Prometheus of the test's own (Debian's `prometheus`, on a free port, storage in a
//! temporary directory) scraping a test engine every second and accepting k6's remote writes;
//! and k6 itself, run against the engine with its results written to that Prometheus.

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::tools::{K6, PROMETHEUS, TempDir, output_text, run};
use crate::kafka::free_port;

/// How often the test Prometheus scrapes the engine.
pub const SCRAPE_INTERVAL_S: u64 = 1;

/// A Prometheus process; killed (by its own handle) and its storage removed when dropped.
pub struct TestPrometheus {
    pub port: u16,
    client: reqwest::Client,
    child: Option<Child>,
    log: PathBuf,
    // Held for its `Drop`, last: the directory goes after the process that writes in it.
    _dir: TempDir,
}

impl TestPrometheus {
    /// Starts Prometheus scraping `target` (`host:port`) as job `payment-engine`, the job the
    /// dashboards select, and waits until it is ready.
    pub async fn start(target: &str) -> TestPrometheus {
        let bin = PROMETHEUS.path();
        let dir = TempDir::new("pe-prometheus");
        let config = dir.join("prometheus.yml");
        // JSON is YAML: no YAML writer needed.
        let config_json = json!({
            "global": {
                "scrape_interval": format!("{SCRAPE_INTERVAL_S}s"),
                "evaluation_interval": format!("{SCRAPE_INTERVAL_S}s"),
            },
            "scrape_configs": [{
                "job_name": "payment-engine",
                "metrics_path": "/metrics",
                "static_configs": [{ "targets": [target] }],
            }],
        });
        std::fs::write(&config, config_json.to_string()).expect("writing prometheus.yml");
        let log = dir.join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("creating the Prometheus log");
        let port = free_port();
        let child = std::process::Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            // loadtests/run sends k6 trends as native histograms; accept them too.
            .arg("--enable-feature=native-histograms")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("cloning the log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut prometheus = TestPrometheus {
            port,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("reqwest client"),
            child: Some(child),
            log,
            _dir: dir,
        };
        prometheus.wait_until_ready().await;
        prometheus
    }

    async fn wait_until_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(response) = self.client.get(self.url("/-/ready")).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!("prometheus exited with {status}:\n{}", self.log_tail());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prometheus on port {} was not ready within 30 s:\n{}",
                self.port,
                self.log_tail()
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Where k6 (`-o experimental-prometheus-rw`) writes.
    pub fn remote_write_url(&self) -> String {
        self.url("/api/v1/write")
    }

    /// The series an instant query returns now.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let url = reqwest::Url::parse_with_params(&self.url("/api/v1/query"), &[("query", expr)])
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{status}: {}", body["error"]));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Each scrape target's health and last error: what to look at when nothing arrives.
    pub async fn targets(&self) -> String {
        let response = match self.client.get(self.url("/api/v1/targets")).send().await {
            Ok(response) => response,
            Err(e) => return format!("cannot read the targets: {e}"),
        };
        let body: Value = response.json().await.unwrap_or_default();
        let targets = body["data"]["activeTargets"].as_array().cloned();
        targets
            .unwrap_or_default()
            .iter()
            .map(|t| {
                format!(
                    "{} {} (last error: {:?})",
                    t["scrapeUrl"].as_str().unwrap_or("?"),
                    t["health"].as_str().unwrap_or("?"),
                    t["lastError"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the k6 `script` (source text) against `base_url`, writing its metrics to
/// `remote_write_url` tagged `testid`, with p95/p99/avg/max trend series as compose.yaml
/// configures, pushed every second (a run of a few seconds then leaves several samples, which
/// `rate()` needs). Returns when k6 exits (killed after 60 s).
pub async fn run_k6(script: &str, base_url: &str, remote_write_url: &str, testid: &str) -> Output {
    let dir = TempDir::new("pe-k6");
    let path = dir.join("script.js");
    std::fs::write(&path, script).expect("writing the k6 script");
    let mut command = K6.command();
    command
        .args(["run", "--quiet", "--no-color"])
        .args(["--tag", &format!("testid={testid}")])
        .args(["-o", "experimental-prometheus-rw"])
        .arg(&path)
        .env("BASE_URL", base_url)
        .env("K6_PROMETHEUS_RW_SERVER_URL", remote_write_url)
        .env("K6_PROMETHEUS_RW_TREND_STATS", "p(95),p(99),avg,max")
        .env("K6_PROMETHEUS_RW_PUSH_INTERVAL", "1s")
        .env("K6_NO_USAGE_REPORT", "true")
        .current_dir(&dir.0);
    let output = actix_web::rt::task::spawn_blocking(move || {
        let output = run(command, Duration::from_secs(60));
        drop(dir);
        output
    })
    .await
    .expect("the k6 task panicked");
    assert!(
        output.status.success(),
        "k6 failed ({}):\n{}",
        output.status,
        output_text(&output)
    );
    output
}
