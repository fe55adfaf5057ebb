//! The observability files, checked with the real tools: compose.yaml (check-jsonschema) and the
//! Dockerfile here; Prometheus' configuration and the Grafana provisioning and dashboards
//! (promtool) in `config`; and, end to end, every dashboard panel's query answered by a real
//! Prometheus scraping a test engine and fed by a short k6 run, in `end_to_end`.

mod config;
mod dashboards;
mod end_to_end;
mod prometheus;
pub mod tools;

use std::path::PathBuf;
use std::time::Duration;

use payment_engine::config::Settings;
use serde_json::Value;

use tools::{CHECK_JSONSCHEMA, output_text, read_yaml, repo_path, run};

/// The longest a tool (check-jsonschema, promtool) may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn compose() -> Value {
    read_yaml("compose.yaml")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(service.is_object(), "compose.yaml has no service {name:?}");
    service
}

/// A service's bind mounts as (host path as written, container path); named volumes left out.
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    let mut mounts = Vec::new();
    for volume in service["volumes"].as_array().into_iter().flatten() {
        match volume {
            Value::String(short) => {
                let mut parts = short.split(':');
                let host = parts.next().unwrap_or_default();
                let container = parts.next().unwrap_or_default();
                if host.starts_with(['.', '/', '~']) {
                    mounts.push((host.to_string(), container.to_string()));
                }
            }
            long if long["type"] == "bind" => mounts.push((
                long["source"].as_str().unwrap_or_default().to_string(),
                long["target"].as_str().unwrap_or_default().to_string(),
            )),
            _ => {}
        }
    }
    mounts
}

/// The repository path a service sees at `container_path`, through its bind mounts.
fn host_path(service: &Value, container_path: &str) -> Option<PathBuf> {
    bind_mounts(service)
        .into_iter()
        .filter_map(|(host, target)| {
            let rest = container_path.strip_prefix(target.trim_end_matches('/'))?;
            (rest.is_empty() || rest.starts_with('/')).then(|| {
                (
                    target.len(),
                    repo_path(&host).join(rest.trim_start_matches('/')),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, path)| path)
}

/// The value of `--flag=VALUE` in a service's command.
fn command_flag(service: &Value, flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    service["command"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|arg| arg.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn compose_file_is_valid_against_the_compose_spec() {
    let mut command = CHECK_JSONSCHEMA.command();
    command
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(repo_path("compose.yaml"));
    let output = run(command, TOOL_TIMEOUT);
    assert!(
        output.status.success(),
        "compose.yaml does not validate against the compose spec:\n{}",
        output_text(&output)
    );
    assert!(
        compose().get("version").is_none(),
        "the Compose spec has no `version:`"
    );
}

#[test]
fn every_host_path_compose_mounts_or_builds_from_exists_in_the_repository() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let mut missing = Vec::new();
    for (name, service) in services {
        for (host, _) in bind_mounts(service) {
            assert!(
                host.starts_with("./"),
                "{name} mounts {host}, a path outside the repository"
            );
            if !repo_path(&host).exists() {
                missing.push(format!("{name}: volume {host}"));
            }
        }
        let (context, dockerfile) = match &service["build"] {
            Value::Null => continue,
            Value::String(context) => (context.clone(), "Dockerfile".to_string()),
            build => (
                build["context"].as_str().unwrap_or(".").to_string(),
                build["dockerfile"]
                    .as_str()
                    .unwrap_or("Dockerfile")
                    .to_string(),
            ),
        };
        let context = repo_path(&context);
        if !context.is_dir() {
            missing.push(format!("{name}: build context {}", context.display()));
        }
        if !context.join(&dockerfile).is_file() {
            missing.push(format!("{name}: {dockerfile} in {}", context.display()));
        }
    }
    assert!(missing.is_empty(), "missing in the repository: {missing:?}");
}

/// The sources of the Dockerfile's `COPY`s from the build context (not `--from` a stage).
fn dockerfile_copy_sources() -> Vec<String> {
    let text = std::fs::read_to_string(repo_path("Dockerfile")).expect("reading the Dockerfile");
    let joined = text.replace("\\\n", " ");
    let mut sources = Vec::new();
    for line in joined.lines().map(str::trim) {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let words: Vec<&str> = args.split_whitespace().collect();
        if words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let paths: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
        sources.extend(paths[..paths.len() - 1].iter().map(|s| s.to_string()));
    }
    sources
}

/// Whether a top-level `.dockerignore` pattern (`dir/`, `name`, `*.ext`) excludes `path`.
fn dockerignored(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
    let path = path.trim_start_matches("./").trim_end_matches('/');
    match pattern.strip_prefix('*') {
        Some(suffix) => !path.contains('/') && path.ends_with(suffix),
        None => path == pattern || path.starts_with(&format!("{pattern}/")),
    }
}

#[test]
fn the_dockerfile_copies_only_files_that_exist_and_the_build_context_keeps() {
    let ignore = std::fs::read_to_string(repo_path(".dockerignore")).expect(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let sources = dockerfile_copy_sources();
    for required in ["Cargo.toml", "Cargo.lock", "src", "migrations"] {
        assert!(
            sources.iter().any(|s| s == required),
            "the Dockerfile must COPY {required}; it copies {sources:?}"
        );
    }
    for source in &sources {
        assert!(
            repo_path(source).exists(),
            "the Dockerfile copies {source}, which does not exist"
        );
        let excluded: Vec<&&str> = patterns
            .iter()
            .filter(|p| dockerignored(p, source))
            .collect();
        assert!(
            excluded.is_empty(),
            "the Dockerfile copies {source}, but .dockerignore excludes it ({excluded:?})"
        );
    }
    assert!(
        patterns.iter().any(|p| dockerignored(p, "target")),
        ".dockerignore must keep target/ out of the build context"
    );
}

#[test]
fn kafka_init_creates_the_topics_the_engine_publishes_to() {
    let compose = compose();
    let init = service(&compose, "kafka-init").to_string();
    let kafka = Settings::defaults().kafka;
    for topic in [&kafka.kafka_payment_topic, &kafka.kafka_charge_topic] {
        assert!(
            init.contains(topic.as_str()),
            "kafka-init does not create {topic}: {init}"
        );
    }
    let engine_env = &service(&compose, "engine")["environment"];
    for name in ["KAFKA_PAYMENT_TOPIC", "KAFKA_CHARGE_TOPIC"] {
        assert!(
            engine_env.get(name).is_none(),
            "kafka-init creates the default topics; the engine must not be pointed elsewhere \
             ({name} is set)"
        );
    }
}
