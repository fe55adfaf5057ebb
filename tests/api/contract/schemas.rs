//! The committed JSON Schemas against the ones the engine generates: the current version's files
//! are exactly what `payment-engine events schema` writes, a changed schema needs a bumped
//! `SCHEMA_VERSION` (and the new files, the old ones kept), and each version is backward
//! compatible for consumers with the one before.

use std::collections::BTreeMap;

use payment_engine::events::SCHEMA_VERSION;
use payment_engine::events::schema::{self, EventSchema, file_name};
use serde_json::{Value, json};

use super::{Committed, EVENTS_DIR, closed, committed, validator};
use crate::observability::tools::{TempDir, output_text, run};

const REGENERATE: &str = "cargo run -- events schema --out contract/events";

/// Everything wrong with `committed` as the contract of the `generated` schemas: one line each,
/// saying what to do about it.
fn contract_problems(generated: &[EventSchema], committed: &Committed) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = BTreeMap::new();
    for event in generated {
        let (event_type, version) = (event.event_type, event.schema_version);
        let versions = committed.get(event_type).unwrap_or(&empty);
        let newest = versions.keys().max().copied();
        let file = file_name(event_type, version);
        match versions.get(&version) {
            Some(schema) if *schema == event.schema => {}
            Some(schema) if without_wording(schema) == without_wording(&event.schema) => problems
                .push(format!(
                    "{event_type}: the descriptions generated from the doc comments differ from \
                     {EVENTS_DIR}/{file}: run `{REGENERATE}` and commit it (wording only: no \
                     new version needed)"
                )),
            Some(_) => problems.push(format!(
                "{event_type}: the schema generated from the Rust types differs from \
                 {EVENTS_DIR}/{file}, yet SCHEMA_VERSION is still {version}: bump SCHEMA_VERSION \
                 in src/events/mod.rs to {}, run `{REGENERATE}` and commit the new files (keep \
                 the v{version} ones)",
                version + 1
            )),
            None if newest.is_some_and(|newest| newest > version) => problems.push(format!(
                "{event_type}: SCHEMA_VERSION {version} is older than the committed v{}",
                newest.unwrap_or_default()
            )),
            None => problems.push(format!(
                "{event_type}: SCHEMA_VERSION is {version} but {EVENTS_DIR}/{file} is missing: \
                 run `{REGENERATE}` and commit it"
            )),
        }
        let mut chain: BTreeMap<i32, &Value> = versions.iter().map(|(v, s)| (*v, s)).collect();
        chain.insert(version, &event.schema);
        problems.extend(history_problems(event_type, &chain));
    }
    problems
}

/// `schema` without `description` and `title`: what a message must look like.
fn without_wording(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, value)| {
                    !(matches!(key.as_str(), "description" | "title") && value.is_string())
                })
                .map(|(key, value)| (key.clone(), without_wording(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Old versions are kept (no gap between the first and the newest), and each version is
/// backward compatible with the one before.
fn history_problems(event_type: &str, chain: &BTreeMap<i32, &Value>) -> Vec<String> {
    let mut problems = Vec::new();
    let versions: Vec<i32> = chain.keys().copied().collect();
    for pair in versions.windows(2) {
        let (older, newer) = (pair[0], pair[1]);
        if newer != older + 1 {
            problems.push(format!(
                "{event_type}: versions {} to {} are missing from {EVENTS_DIR}: old versions' \
                 files stay (consumers of them still read messages)",
                older + 1,
                newer - 1
            ));
        }
        for change in breaking_changes(chain[&older], chain[&newer], "") {
            problems.push(format!(
                "{event_type}: v{newer} breaks consumers of v{older}: {change}; publish a new \
                 event type instead"
            ));
        }
    }
    problems
}

/// What in `new` a consumer written against `old` could not read: a property removed (or
/// renamed), no longer required, of another type or format, or a fixed value changed. The
/// schema version itself may change (consumers accept higher ones).
fn breaking_changes(old: &Value, new: &Value, at: &str) -> Vec<String> {
    let mut changes = Vec::new();
    let types = |schema: &Value| -> Vec<Value> {
        match &schema["type"] {
            Value::Array(types) => types.clone(),
            Value::Null => Vec::new(),
            one => vec![one.clone()],
        }
    };
    let (old_types, new_types) = (types(old), types(new));
    if !old_types.is_empty() && !new_types.iter().all(|t| old_types.contains(t)) {
        changes.push(format!("`{at}` is now {new_types:?}, was {old_types:?}"));
    }
    for keyword in ["format", "const"] {
        if !old[keyword].is_null() && old[keyword] != new[keyword] && at != "/schemaVersion" {
            changes.push(format!("`{at}` {keyword} changed to {}", new[keyword]));
        }
    }
    let required = |schema: &Value| schema["required"].as_array().cloned().unwrap_or_default();
    for name in required(old) {
        if !required(new).contains(&name) {
            changes.push(format!(
                "`{at}/{}` is no longer required",
                name.as_str().unwrap_or("?")
            ));
        }
    }
    for (name, property) in old["properties"].as_object().into_iter().flatten() {
        let path = format!("{at}/{name}");
        match new["properties"].get(name) {
            None => changes.push(format!("`{path}` was removed")),
            Some(next) => changes.extend(breaking_changes(property, next, &path)),
        }
    }
    changes
}

#[test]
fn the_committed_schemas_are_the_generated_ones_at_the_current_schema_version() {
    let problems = contract_problems(&schema::all(), &committed());
    assert!(
        problems.is_empty(),
        "the event contract in {EVENTS_DIR} does not match the engine:\n  {}",
        problems.join("\n  ")
    );
}

/// The check above is no rubber stamp: a schema changed in place fails it with the advice to
/// bump the version (new wording only, with the advice to rewrite the file), the same change
/// under a bumped version with its new file passes, and a breaking change fails even when
/// bumped.
#[test]
fn a_changed_schema_fails_the_contract_check_unless_its_version_is_bumped() {
    let current = schema::all();
    let committed: Committed = current
        .iter()
        .map(|e| {
            (
                e.event_type.to_string(),
                BTreeMap::from([(e.schema_version, e.schema.clone())]),
            )
        })
        .collect();
    assert_eq!(
        contract_problems(&current, &committed),
        Vec::<String>::new()
    );

    let mut reworded = current.clone();
    reworded[1].schema["properties"]["data"]["description"] = json!("Refunded.");
    let problems = contract_problems(&reworded, &committed);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("no new version needed"),
        "{problems:?}"
    );

    let mut changed = current.clone();
    changed[0].schema["properties"]["data"]["properties"]["currency"] = json!({"type": "string"});
    let problems = contract_problems(&changed, &committed);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("bump SCHEMA_VERSION"), "{problems:?}");

    let bump = |event: &mut EventSchema| {
        event.schema_version += 1;
        event.schema["properties"]["schemaVersion"]["const"] = json!(event.schema_version);
    };
    changed.iter_mut().for_each(bump);
    let missing = contract_problems(&changed, &committed);
    assert_eq!(
        missing.len(),
        current.len(),
        "one missing file per type: {missing:?}"
    );
    assert!(
        missing.iter().all(|p| p.contains("is missing")),
        "{missing:?}"
    );
    let mut with_new_files = committed.clone();
    for event in &changed {
        let versions = with_new_files.get_mut(event.event_type).unwrap();
        versions.insert(event.schema_version, event.schema.clone());
    }
    assert_eq!(
        contract_problems(&changed, &with_new_files),
        Vec::<String>::new()
    );

    let mut breaking = changed.clone();
    let data = &mut breaking[0].schema["properties"]["data"];
    data["properties"].as_object_mut().unwrap().remove("amount");
    data["required"]
        .as_array_mut()
        .unwrap()
        .retain(|name| name != "amount");
    data["properties"]["orderId"]["type"] = json!("string");
    let problems = contract_problems(&breaking, &committed);
    for expected in [
        "`/data/amount` was removed",
        "`/data/orderId` is now",
        "no longer required",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected}: {problems:?}"
        );
    }
}

#[test]
fn the_events_schema_command_writes_the_committed_schemas_of_its_version() {
    let out = TempDir::new("pe-schema");
    let mut command = std::process::Command::new(crate::kafka::engine_bin());
    command
        .env_clear()
        .args(["events", "schema", "--out"])
        .arg(&out.0);
    let output = run(command, std::time::Duration::from_secs(60));
    assert!(
        output.status.success(),
        "events schema failed:\n{}",
        output_text(&output)
    );
    let committed = committed();
    let written: Vec<_> = std::fs::read_dir(&out.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        written.len(),
        schema::all().len(),
        "one file per event type: {written:?}"
    );
    for event in schema::all() {
        let path = out.join(&event.file_name());
        let text = std::fs::read_to_string(&path).expect("the command wrote the file");
        assert_eq!(text, event.to_file_text(), "{}", path.display());
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            Some(&value),
            committed
                .get(event.event_type)
                .and_then(|v| v.get(&SCHEMA_VERSION)),
            "{} as written by the binary vs {EVENTS_DIR}",
            event.file_name()
        );
        assert!(
            output_text(&output).contains(&path.display().to_string()),
            "the command prints what it wrote:\n{}",
            output_text(&output)
        );
    }
}

/// Every committed schema is itself a valid draft 2020-12 schema, open to fields added later,
/// and its closed form (what the engine must emit) accepts the documented example.
#[test]
fn every_committed_schema_is_valid_draft_2020_12_and_accepts_the_readme_example() {
    for (event_type, versions) in committed() {
        for (version, schema) in versions {
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{event_type} v{version}"
            );
            assert_eq!(
                schema["additionalProperties"],
                json!(true),
                "{event_type} v{version}"
            );
            validator(&closed(&schema));
        }
    }
    let example = json!({
        "eventId": "01a2130c-ff43-720e-9209-3813920d0ac2", "type": "payment.completed",
        "schemaVersion": 1, "occurredAt": "2026-11-25T14:12:28.611066Z",
        "data": {"paymentId": 1, "orderId": 1, "buyerId": 1, "amount": 1100,
                 "balanceAfter": 998900, "version": 2, "paidAt": "2026-11-25T14:12:28.611066Z"}
    });
    let schema = &committed()["payment.completed"][&1];
    let strict = validator(&closed(schema));
    assert_eq!(
        super::violations(&strict, &example),
        "",
        "the README's example"
    );
    let mut extra = example.clone();
    extra["data"]["currency"] = json!("PTS");
    assert!(
        validator(schema).is_valid(&extra),
        "the published schema tolerates new fields"
    );
    assert!(
        !strict.is_valid(&extra),
        "the closed form refuses undocumented fields"
    );
}
