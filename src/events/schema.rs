//! The published event contract: one JSON Schema (draft 2020-12) per event type, describing the
//! whole value of its Kafka messages (envelope and `data`), generated from the types in
//! [`crate::events`] so that it cannot drift from what the engine serializes.
//!
//! The repository keeps every version's files under `contract/events/`
//! (`TYPE.vN.schema.json`); `payment-engine events schema --out DIR` writes the running binary's
//! version, and the contract test (`tests/api/contract/`) refuses a changed schema whose
//! [`SCHEMA_VERSION`] was not bumped.

use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use super::{
    Envelope, ORDER_CANCELLED, OrderCancelled, PAYMENT_COMPLETED, PAYMENT_REFUNDED, POINTS_CHARGED,
    PaymentCompleted, PaymentRefunded, PointsCharged, SCHEMA_VERSION,
};

/// The schema of one event type's messages at one schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSchema {
    pub event_type: &'static str,
    pub schema_version: i32,
    pub schema: Value,
}

impl EventSchema {
    /// `TYPE.vN.schema.json`, the name it is published under.
    pub fn file_name(&self) -> String {
        file_name(self.event_type, self.schema_version)
    }

    /// The file's content: pretty-printed JSON and a final newline.
    pub fn to_file_text(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(&self.schema).expect("a JSON value prints as JSON");
        text.push('\n');
        text
    }
}

/// `TYPE.vN.schema.json`
pub fn file_name(event_type: &str, schema_version: i32) -> String {
    format!("{event_type}.v{schema_version}.schema.json")
}

/// The schemas of every event type the engine publishes, at [`SCHEMA_VERSION`].
pub fn all() -> Vec<EventSchema> {
    vec![
        event_schema::<PaymentCompleted>(PAYMENT_COMPLETED),
        event_schema::<PaymentRefunded>(PAYMENT_REFUNDED),
        event_schema::<OrderCancelled>(ORDER_CANCELLED),
        event_schema::<PointsCharged>(POINTS_CHARGED),
    ]
}

/// The schema of `Envelope<T>` with `type` and `schemaVersion` fixed to this event type's.
fn event_schema<T: JsonSchema>(event_type: &'static str) -> EventSchema {
    // What the engine serializes (an `Option` field is present, as null), inlined: each file
    // stands alone, with no `$defs` for a consumer's tooling to resolve.
    let generator = SchemaSettings::draft2020_12()
        .for_serialize()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Envelope<T>>().to_value();
    // The root says what the event means (the data type's doc), then what the envelope is.
    let event_description = schemars::schema_for!(T).get("description").cloned();
    let envelope_description = schema.get("description").cloned();
    let description = [event_description, envelope_description]
        .into_iter()
        .flatten()
        .filter_map(|text| text.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n\n");
    let root = schema
        .as_object_mut()
        .expect("a struct's schema is an object");
    root.insert("description".into(), json!(description));
    root.insert(
        "title".into(),
        json!(format!("{event_type} (schemaVersion {SCHEMA_VERSION})")),
    );
    let properties = &mut schema["properties"];
    properties["type"]["const"] = json!(event_type);
    properties["schemaVersion"]["const"] = json!(SCHEMA_VERSION);
    unwrap_descriptions(&mut schema);
    EventSchema {
        event_type,
        schema_version: SCHEMA_VERSION,
        schema,
    }
}

/// Joins the lines of each paragraph of every `description`: doc comments are wrapped at 100
/// columns, which says nothing to a reader of the schema.
fn unwrap_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if key == "description" => {
                        let paragraphs: Vec<String> = text
                            .split("\n\n")
                            .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
                            .collect();
                        *text = paragraphs.join("\n\n");
                    }
                    other => unwrap_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// Writes [`all`] into `dir` (created if missing) and returns the paths written. Files of other
/// versions in `dir` are left alone.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    all()
        .iter()
        .map(|event| {
            let path = dir.join(event.file_name());
            std::fs::write(&path, event.to_file_text())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_fixes_its_type_and_version_and_requires_every_field() {
        for event in all() {
            let properties = &event.schema["properties"];
            assert_eq!(properties["type"]["const"], json!(event.event_type));
            assert_eq!(properties["schemaVersion"]["const"], json!(SCHEMA_VERSION));
            let data = &properties["data"];
            let required = data["required"]
                .as_array()
                .expect("data has required fields");
            let fields = data["properties"].as_object().expect("data has properties");
            assert_eq!(required.len(), fields.len(), "{}: {data}", event.event_type);
            for schema in [&event.schema, data] {
                assert_eq!(schema["additionalProperties"], json!(true));
                assert!(schema["description"].is_string(), "{schema}");
            }
        }
    }
}
