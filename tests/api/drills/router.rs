//! The router in front of several engines: the shipped `deploy/haproxy.cfg`, run by HAProxy
//! (Debian's 2.6) on free ports, with the engines' addresses filled in.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::kafka::free_port;

/// A running HAProxy; killed when dropped.
pub struct Router {
    /// `http://127.0.0.1:port`: where clients send requests.
    pub address: String,
    stats: String,
    child: Child,
    log: PathBuf,
    http: reqwest::Client,
}

impl Router {
    /// HAProxy with `deploy/haproxy.cfg` in front of the engines on `ports` (1 to 3; the
    /// servers without an engine stay down).
    pub fn start(ports: &[u16]) -> Router {
        assert!(
            (1..=3).contains(&ports.len()),
            "the configuration has three servers"
        );
        let (port, stats_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("pe-router-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("haproxy.log");
        let file = std::fs::File::create(&log).unwrap();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.cfg");
        let mut command = Command::new("haproxy");
        command
            .args(["-db", "-f", config])
            .env("ROUTER_BIND", format!("127.0.0.1:{port}"))
            .env("STATS_BIND", format!("127.0.0.1:{stats_port}"))
            .env("HAPROXY_SOCKET", dir.join("admin.sock"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for index in 0..3 {
            // A server without an engine points at a port nothing listens on.
            let engine = ports.get(index).copied().unwrap_or_else(free_port);
            command.env(
                format!("ENGINE_{}_ADDR", index + 1),
                format!("127.0.0.1:{engine}"),
            );
        }
        let child = command
            .spawn()
            .expect("starting haproxy (apt-get install haproxy; scripts/test installs it)");
        Router {
            address: format!("http://127.0.0.1:{port}"),
            stats: format!("http://127.0.0.1:{stats_port}/stats;csv"),
            child,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
        }
    }

    /// The status HAProxy gives each engine server (`UP`, `DOWN`, `MAINT`, ...), in order.
    pub async fn servers(&self) -> Vec<String> {
        let Ok(response) = self.http.get(&self.stats).send().await else {
            return Vec::new();
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| line.starts_with("engines,engine-"))
            .map(|line| line.split(',').nth(17).unwrap_or("").to_string())
            .collect()
    }

    /// Waits until exactly the servers `up` (1-based) are UP; panics after `timeout`.
    pub async fn wait_for(&self, up: &[usize], timeout: Duration) {
        let start = Instant::now();
        loop {
            let servers = self.servers().await;
            let now_up: Vec<usize> = servers
                .iter()
                .enumerate()
                .filter(|(_, status)| status.starts_with("UP"))
                .map(|(i, _)| i + 1)
                .collect();
            if now_up == up {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "servers {servers:?}, wanted {up:?} up, after {timeout:?}:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
