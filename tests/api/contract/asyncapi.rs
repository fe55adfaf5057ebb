//! `contract/asyncapi.yaml`: valid for the official AsyncAPI parser (run by
//! `scripts/asyncapi-validate`, which installs it once with npm), and naming the topics, event
//! types, schema files, key and headers the engine really uses.

use std::collections::BTreeSet;
use std::time::Duration;

use payment_engine::config::Settings;
use payment_engine::events::SCHEMA_VERSION;
use payment_engine::events::schema::{self, file_name};
use serde_json::Value;

use super::events_dir;
use crate::observability::tools::{Tool, output_text, read_yaml, repo_path, run};

const DOCUMENT: &str = "contract/asyncapi.yaml";

const NODE: Tool = Tool {
    name: "node",
    install: "apt-get install nodejs npm",
};

#[test]
fn the_asyncapi_document_is_valid_for_the_official_parser() {
    // A missing node fails loudly here (with the install command), never skips.
    let _ = NODE.path();
    let mut command = std::process::Command::new(repo_path("scripts/asyncapi-validate"));
    command.arg(repo_path(DOCUMENT));
    // The first run installs the parser (npm); later ones find it installed.
    let output = run(command, Duration::from_secs(600));
    let text = output_text(&output);
    assert!(
        output.status.success(),
        "{DOCUMENT} is not valid AsyncAPI:\n{text}"
    );
    assert!(
        text.contains("valid AsyncAPI 3.0.0"),
        "the parser's verdict:\n{text}"
    );
    let messages = schema::all()
        .iter()
        .map(|e| e.event_type)
        .collect::<Vec<_>>();
    for name in [
        "paymentCompleted",
        "paymentRefunded",
        "orderCancelled",
        "pointsCharged",
    ] {
        assert!(
            text.contains(name),
            "the parser found no message {name} ({messages:?}):\n{text}"
        );
    }
}

/// The channel whose topic carries messages named `event_type`.
fn channel_of<'a>(document: &'a Value, event_type: &str) -> Vec<&'a Value> {
    let channels = document["channels"].as_object().expect("channels");
    channels
        .values()
        .filter(|channel| {
            let messages = channel["messages"].as_object().into_iter().flatten();
            messages.into_iter().any(|(_, message)| {
                let name = message["$ref"].as_str().and_then(|r| r.rsplit('/').next());
                name.is_some_and(|name| {
                    document["components"]["messages"][name]["name"] == event_type
                })
            })
        })
        .collect()
}

#[test]
fn the_asyncapi_document_names_the_topics_schemas_key_and_headers_the_engine_uses() {
    let document = read_yaml(DOCUMENT);
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(
        document["info"]["version"],
        SCHEMA_VERSION.to_string(),
        "info.version"
    );
    let kafka = Settings::defaults().kafka;
    let messages = document["components"]["messages"]
        .as_object()
        .expect("messages");
    let mut named = BTreeSet::new();
    for event in schema::all() {
        let (name, message) = messages
            .iter()
            .find(|(_, m)| m["name"] == event.event_type)
            .unwrap_or_else(|| panic!("{DOCUMENT} has no message named {}", event.event_type));
        named.insert(event.event_type);
        let file = file_name(event.event_type, SCHEMA_VERSION);
        assert_eq!(
            message["payload"]["$ref"],
            format!("./events/{file}"),
            "{name}'s payload"
        );
        assert!(
            events_dir().join(&file).is_file(),
            "{name} refers to a missing {file}"
        );
        assert_eq!(
            message["traits"][0]["$ref"], "#/components/messageTraits/event",
            "{name}"
        );
        let channels = channel_of(&document, event.event_type);
        assert_eq!(
            channels.len(),
            1,
            "{} must be on exactly one channel",
            event.event_type
        );
        let topic = kafka.topic_for(event.event_type);
        assert_eq!(
            channels[0]["address"], topic,
            "the topic of {}",
            event.event_type
        );
        let binding = &channels[0]["bindings"]["kafka"];
        assert_eq!(binding["topic"], topic);
        assert_eq!(
            binding["partitions"], kafka.kafka_topic_partitions,
            "{topic}"
        );
        assert_eq!(
            binding["replicas"], kafka.kafka_topic_replication,
            "{topic}"
        );
    }
    assert_eq!(
        named.len(),
        messages.len(),
        "messages of no event type: {messages:?}"
    );
    assert_eq!(
        document["channels"].as_object().unwrap().len(),
        2,
        "one channel per topic"
    );

    let components = &document["components"];
    let trait_ = &components["messageTraits"]["event"];
    assert_eq!(trait_["contentType"], "application/json");
    assert_eq!(
        trait_["bindings"]["kafka"]["key"]["$ref"],
        "#/components/schemas/buyerKey"
    );
    let headers = &components["schemas"]["eventHeaders"];
    let mut required: Vec<&str> = headers["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    required.sort_unstable();
    assert_eq!(
        required,
        ["event-id", "event-type", "schema-version"],
        "the headers produced"
    );
    let description = document["info"]["description"].as_str().unwrap_or_default();
    for promise in [
        "At least once",
        "Dedupe on `eventId`",
        "Per-buyer order",
        "`data.version`",
    ] {
        assert!(
            description.contains(promise),
            "info.description must state {promise:?}"
        );
    }
    let outbox = &components["operationTraits"]["outbox"];
    assert_eq!(
        (
            outbox["x-delivery"].as_str(),
            outbox["x-deduplication"].as_str()
        ),
        (Some("at-least-once"), Some("eventId"))
    );
}

/// Keywords JSON Schema draft 07 (hence AsyncAPI's Schema Object) and draft 2020-12 read the
/// same way; `$defs`, `prefixItems` or `unevaluatedProperties`, say, would not be.
const PORTABLE_KEYWORDS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "const",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "enum",
];

fn keywords<'a>(schema: &'a Value, into: &mut BTreeSet<&'a str>) {
    for (keyword, value) in schema.as_object().into_iter().flatten() {
        into.insert(keyword);
        match keyword.as_str() {
            "properties" => value
                .as_object()
                .into_iter()
                .flatten()
                .for_each(|(_, s)| keywords(s, into)),
            "additionalProperties" => keywords(value, into),
            _ => {}
        }
    }
}

#[test]
fn the_committed_schemas_use_only_keywords_the_asyncapi_schema_format_reads_alike() {
    for (event_type, versions) in super::committed() {
        for (version, schema) in versions {
            let mut used = BTreeSet::new();
            keywords(&schema, &mut used);
            let foreign: Vec<&&str> = used
                .iter()
                .filter(|k| !PORTABLE_KEYWORDS.contains(k))
                .collect();
            assert!(
                foreign.is_empty(),
                "{event_type} v{version} uses {foreign:?}: declare its \
                schemaFormat in {DOCUMENT} (the parser then checks the payload less)"
            );
        }
    }
}
