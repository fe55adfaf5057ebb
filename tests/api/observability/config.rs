//! Prometheus' configuration, the Grafana provisioning and the dashboards: promtool accepts
//! them, compose mounts them where the services look, and every panel queries the provisioned
//! datasource with PromQL that parses.

use std::collections::BTreeSet;

use payment_engine::config::Settings;
use serde_json::{Value, json};

use super::dashboards::{self, Dashboard, datasource_refs};
use super::tools::{PROMTOOL, TempDir, output_text, read_yaml, repo_path, run};
use super::{TOOL_TIMEOUT, command_flag, compose, host_path, service};

const ENGINE_PANELS: [&str; 22] = [
    "Throughput by route",
    "Payments, refunds and cancels per second",
    "Latency p50 / p95 / p99",
    "Errors by status (4xx / 5xx)",
    "Mailbox depth by actor kind",
    "Queue wait p99 by actor kind",
    "Handling time p99 by actor kind",
    "Deepest buyer mailbox",
    "Live buyer actors",
    "Actor messages by outcome",
    "Batch size (writes per commit)",
    "Commit latency p50 / p99",
    "Commits and failed commits",
    "Outbox backlog",
    "Publish rate by stage",
    "Delivery latency p50 / p99 (commit to broker ack)",
    "Rejections by reason",
    "Actor restarts",
    "Memory (RSS)",
    "Shards owned by engine",
    "Lease claims, losses, releases, hand-backs",
    "Forwarded requests and not_owner refusals",
];

const K6_PANELS: [&str; 6] = [
    "Virtual users",
    "Request rate by scenario",
    "Request duration p95 by scenario",
    "Failed checks",
    "Unexpected responses by status",
    "Iterations",
];

#[test]
fn prometheus_config_passes_promtool_and_scrapes_the_engine() {
    let mut command = PROMTOOL.command();
    command
        .args(["check", "config"])
        .arg(repo_path("prometheus/prometheus.yml"));
    let output = run(command, TOOL_TIMEOUT);
    assert!(
        output.status.success(),
        "promtool check config failed:\n{}",
        output_text(&output)
    );

    let config = read_yaml("prometheus/prometheus.yml");
    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"] == "payment-engine")
        .unwrap_or_else(|| panic!("no scrape job payment-engine: {jobs:?}"));
    let engine_port = Settings::defaults().http.bind_addr.port();
    let target = format!("engine:{engine_port}");
    assert_eq!(
        job["static_configs"][0]["targets"],
        json!([target]),
        "the job must scrape the compose service `engine` on the engine's port"
    );
    let compose = compose();
    service(&compose, "engine");
    let prometheus = service(&compose, "prometheus");
    let flags = prometheus["command"].to_string();
    assert!(
        flags.contains("--web.enable-remote-write-receiver"),
        "compose must start Prometheus with the remote-write receiver for k6: {flags}"
    );
    let config_path =
        command_flag(prometheus, "--config.file").expect("prometheus --config.file flag");
    assert_eq!(
        host_path(prometheus, &config_path),
        Some(repo_path("./prometheus/prometheus.yml")),
        "compose must mount prometheus/prometheus.yml where --config.file points"
    );
}

/// The uid of the datasource Grafana provisions.
fn provisioned_datasource_uid() -> String {
    let provisioning = read_yaml("grafana/provisioning/datasources/prometheus.yaml");
    let sources = provisioning["datasources"].as_array().expect("datasources");
    assert_eq!(sources.len(), 1, "one datasource: {sources:?}");
    assert_eq!(sources[0]["type"], "prometheus");
    assert_eq!(sources[0]["isDefault"], true);
    sources[0]["uid"]
        .as_str()
        .expect("the datasource has a fixed uid")
        .to_string()
}

#[test]
fn grafana_loads_the_dashboards_compose_mounts_and_opens_the_engine_one() {
    let compose = compose();
    let grafana = service(&compose, "grafana");
    let provider = read_yaml("grafana/provisioning/dashboards/dashboards.yaml");
    let folder = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("the dashboard provider's options.path");
    assert_eq!(
        host_path(grafana, folder),
        Some(repo_path("./grafana/dashboards")),
        "the dashboard provider reads {folder}, which compose must mount from grafana/dashboards"
    );
    assert_eq!(
        host_path(grafana, "/etc/grafana/provisioning"),
        Some(repo_path("./grafana/provisioning")),
    );
    let env = &grafana["environment"];
    let home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("a default home dashboard");
    assert_eq!(
        host_path(grafana, home),
        Some(repo_path("./grafana/dashboards/payment-engine.json"))
    );
    assert_eq!(env["GF_AUTH_ANONYMOUS_ENABLED"], "true");
    assert_eq!(env["GF_AUTH_DISABLE_LOGIN_FORM"], "true");
}

#[test]
fn dashboards_are_json_with_fixed_uids_and_the_expected_panels() {
    for (file, uid, expected) in [
        (
            dashboards::DASHBOARD_FILES[0],
            "payment-engine",
            &ENGINE_PANELS[..],
        ),
        (dashboards::DASHBOARD_FILES[1], "k6", &K6_PANELS[..]),
    ] {
        let dashboard = Dashboard::load(file);
        assert_eq!(dashboard.json["uid"], uid, "{file}");
        let titles: Vec<&str> = dashboard
            .query_panels()
            .iter()
            .filter_map(|p| p["title"].as_str())
            .collect();
        let missing: Vec<&&str> = expected.iter().filter(|t| !titles.contains(t)).collect();
        assert!(
            missing.is_empty(),
            "{file} lacks panels {missing:?}; it has {titles:?}"
        );
        let mut ids = BTreeSet::new();
        for panel in dashboard.panels() {
            assert!(
                ids.insert(panel["id"].to_string()),
                "{file}: duplicate panel id {}",
                panel["id"]
            );
        }
    }
    assert_eq!(
        Dashboard::load(dashboards::DASHBOARD_FILES[0]).title(),
        "payment-engine"
    );
}

#[test]
fn every_dashboard_query_uses_the_provisioned_datasource() {
    let uid = provisioned_datasource_uid();
    let expected = json!({ "type": "prometheus", "uid": uid });
    for dashboard in Dashboard::all() {
        let file = dashboard.file;
        assert!(
            !dashboard.text.contains("${DS_"),
            "{file} has a ${{DS_...}} input"
        );
        assert!(
            dashboard.json.get("__inputs").is_none(),
            "{file} has __inputs"
        );
        for panel in dashboard.query_panels() {
            let title = &panel["title"];
            assert_eq!(panel["datasource"], expected, "{file}: panel {title}");
            for target in panel["targets"].as_array().into_iter().flatten() {
                assert_eq!(
                    target["datasource"], expected,
                    "{file}: a target of {title}"
                );
            }
        }
        let mut refs = Vec::new();
        datasource_refs(&dashboard.json, "", &mut refs);
        for (path, datasource) in refs {
            // Grafana's own annotation source is the one other datasource allowed.
            if path.starts_with(".annotations") && datasource["type"] == "grafana" {
                continue;
            }
            assert_eq!(datasource, expected, "{file}: datasource at {path}");
        }
    }
}

#[test]
fn every_dashboard_panel_has_promql_that_promtool_parses() {
    let mut queries = Vec::new();
    for dashboard in Dashboard::all() {
        for panel in dashboard.query_panels() {
            let exprs: Vec<&str> = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .filter(|e| !e.trim().is_empty())
                .collect();
            assert!(
                !exprs.is_empty(),
                "{}: panel {} has no PromQL expression",
                dashboard.file,
                panel["title"]
            );
        }
        queries.extend(dashboard.queries());
    }
    for query in &queries {
        assert!(
            !query.expr.contains('$'),
            "a variable the tests do not know: {query}"
        );
    }
    // promtool parses PromQL when it checks recording rules: one rule per query.
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| json!({ "record": format!("dashboard:query_{i}"), "expr": q.expr }))
        .collect();
    let dir = TempDir::new("pe-dashboard-rules");
    let file = dir.join("rules.yml");
    let groups = json!({ "groups": [{ "name": "dashboards", "rules": rules }] });
    std::fs::write(&file, groups.to_string()).expect("writing the rules file");
    let mut command = PROMTOOL.command();
    command.args(["check", "rules"]).arg(&file);
    let output = run(command, TOOL_TIMEOUT);
    let index: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| format!("dashboard:query_{i} = {q}"))
        .collect();
    assert!(
        output.status.success(),
        "promtool rejects dashboard queries:\n{}\n{}",
        output_text(&output),
        index.join("\n")
    );
}
