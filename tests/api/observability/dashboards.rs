//! The Grafana dashboards in `grafana/dashboards/`: their panels, and each panel's PromQL with
//! Grafana's variables replaced by values Prometheus accepts, as Grafana would send it.

use std::fmt;

use serde_json::Value;

use super::tools::{read_json, repo_path};

/// Every dashboard Grafana provisions, as paths in the repository.
pub const DASHBOARD_FILES: [&str; 2] = [
    "grafana/dashboards/payment-engine.json",
    "grafana/dashboards/k6.json",
];

/// What Grafana's built-in interval variables become in the tests: a rate window spanning many
/// 1 s scrapes (Grafana's `$__rate_interval` is at least four scrape intervals).
const BUILT_INS: [(&str, &str); 6] = [
    ("__rate_interval", "30s"),
    ("__interval_ms", "5000"),
    ("__interval", "5s"),
    ("__range_ms", "300000"),
    ("__range_s", "300"),
    ("__range", "5m"),
];

pub struct Dashboard {
    pub file: &'static str,
    pub text: String,
    pub json: Value,
}

/// One query of one panel, variables substituted.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

impl fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} / \"{}\" ({}): {}",
            self.dashboard, self.panel, self.ref_id, self.expr
        )
    }
}

impl Dashboard {
    pub fn load(file: &'static str) -> Dashboard {
        let text = std::fs::read_to_string(repo_path(file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        Dashboard {
            file,
            text,
            json: read_json(file),
        }
    }

    pub fn all() -> Vec<Dashboard> {
        DASHBOARD_FILES.into_iter().map(Dashboard::load).collect()
    }

    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or("")
    }

    /// Every panel, those inside collapsed rows included, rows included.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for panel in self.json["panels"].as_array().into_iter().flatten() {
            out.push(panel);
            out.extend(panel["panels"].as_array().into_iter().flatten());
        }
        out
    }

    /// The panels that chart something (not rows).
    pub fn query_panels(&self) -> Vec<&Value> {
        self.panels()
            .into_iter()
            .filter(|p| p["type"] != "row")
            .collect()
    }

    /// The dashboard's template variables with the value "All" (or the current one) stands for.
    pub fn variables(&self) -> Vec<(String, String)> {
        let list = self.json["templating"]["list"].as_array();
        list.into_iter()
            .flatten()
            .map(|var| {
                let name = var["name"].as_str().unwrap_or_default().to_string();
                let current = match &var["current"]["value"] {
                    Value::Array(values) => values.first().cloned().unwrap_or(Value::Null),
                    value => value.clone(),
                };
                let value = match current.as_str() {
                    Some(v) if v != "$__all" => v.to_string(),
                    _ => var["allValue"].as_str().unwrap_or(".*").to_string(),
                };
                (name, value)
            })
            .collect()
    }

    /// Every query of every panel, variables substituted.
    pub fn queries(&self) -> Vec<PanelQuery> {
        let variables = self.variables();
        let mut out = Vec::new();
        for panel in self.query_panels() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                out.push(PanelQuery {
                    dashboard: self.title().to_string(),
                    panel: panel["title"].as_str().unwrap_or("(untitled)").to_string(),
                    ref_id: target["refId"].as_str().unwrap_or("?").to_string(),
                    expr: substitute(expr, &variables),
                });
            }
        }
        out
    }
}

/// Replaces Grafana's built-in interval variables and the dashboard's own, in each of the
/// forms Grafana accepts (`$name`, `${name}`, `[[name]]`); longer names first, so that
/// `$__interval_ms` is not read as `$__interval` followed by `_ms`.
pub fn substitute(expr: &str, variables: &[(String, String)]) -> String {
    let mut all: Vec<(String, String)> = BUILT_INS
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .chain(variables.iter().cloned())
        .collect();
    all.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_string();
    for (name, value) in &all {
        for form in [
            format!("${{{name}}}"),
            format!("[[{name}]]"),
            format!("${name}"),
        ] {
            out = out.replace(&form, value);
        }
    }
    out
}

/// Every `datasource` object in `value`, with the JSON path it was found at.
pub fn datasource_refs(value: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if key == "datasource" {
                    out.push((child_path.clone(), child.clone()));
                }
                datasource_refs(child, &child_path, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                datasource_refs(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn substitution_replaces_builtins_and_dashboard_variables_longest_name_first() {
    let variables = vec![("testid".to_string(), ".*".to_string())];
    assert_eq!(
        substitute(
            r#"rate(x{testid=~"$testid"}[$__rate_interval]) + y[${__interval}] + z[[[__range]]] + $__interval_ms"#,
            &variables
        ),
        r#"rate(x{testid=~".*"}[30s]) + y[5s] + z[5m] + 5000"#
    );
}
