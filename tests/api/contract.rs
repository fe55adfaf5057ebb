//! The published event contract (`contract/`), enforced: the committed JSON Schemas are what the
//! engine generates, and a change to them comes with a new schema version (`schemas`); the
//! AsyncAPI document is valid for the official parser and names the topics, messages and schema
//! files the engine really uses (`asyncapi`); and every message a real broker carries after a
//! mixed load validates against its committed schema, in per-buyer order (`broker`).

mod asyncapi;
mod broker;
mod schemas;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// Where the committed event schemas live, relative to the repository.
pub const EVENTS_DIR: &str = "contract/events";

/// The committed schemas: event type -> schema version -> schema.
pub type Committed = BTreeMap<String, BTreeMap<i32, Value>>;

fn events_dir() -> PathBuf {
    crate::observability::tools::repo_path(EVENTS_DIR)
}

/// `(event type, schema version)` of a file named `TYPE.vN.schema.json`.
fn parse_file_name(name: &str) -> Option<(String, i32)> {
    let (event_type, version) = name.strip_suffix(".schema.json")?.rsplit_once(".v")?;
    let version: i32 = version.parse().ok().filter(|v| *v >= 1)?;
    (!event_type.is_empty()).then(|| (event_type.to_string(), version))
}

/// Every schema under [`EVENTS_DIR`]; panics on a file that is not `TYPE.vN.schema.json` or not
/// JSON.
pub fn committed() -> Committed {
    let dir = events_dir();
    let mut committed = Committed::new();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let (event_type, version) = parse_file_name(&name).unwrap_or_else(|| {
            panic!("{EVENTS_DIR}/{name} is not named TYPE.vN.schema.json; remove it")
        });
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{EVENTS_DIR}/{name} is not JSON: {e}"));
        committed
            .entry(event_type)
            .or_default()
            .insert(version, schema);
    }
    committed
}

/// `schema` with `additionalProperties: false` on every object that lists its properties: what
/// the engine itself must emit (nothing undocumented), while the published schemas leave room
/// for the fields later versions add.
pub fn closed(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), closed(v))).collect();
            if map.contains_key("properties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(closed).collect()),
        other => other.clone(),
    }
}

/// A draft 2020-12 validator of `schema`, formats (uuid, date-time) included.
pub fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("not a valid draft 2020-12 schema ({e}): {schema}"))
}

/// Every reason `instance` fails `validator`, one per line; empty when it is valid.
pub fn violations(validator: &jsonschema::Validator, instance: &Value) -> String {
    validator
        .iter_errors(instance)
        .map(|error| format!("  at {}: {error}", error.instance_path()))
        .collect::<Vec<_>>()
        .join("\n")
}
