//! Label values and label sets. Every value is drawn from a closed set, so no label can grow
//! without bound (the route is a template, never a raw path).

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::domain::RejectionReason;

/// The kinds of actor, the `actor` label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ActorKind {
    Buyer,
    Coordinator,
    Publisher,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Buyer => "buyer",
            ActorKind::Coordinator => "coordinator",
            ActorKind::Publisher => "publisher",
        }
    }
}

/// How handling a message ended, the `outcome` label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Done (a command accepted, a write committed, events delivered).
    Ok,
    /// Answered with a refusal the caller caused (a money rule, an unknown order).
    Refused,
    /// Failed for reasons of the engine or its dependencies.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

impl EncodeLabelValue for ActorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for RejectionReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ActorLabels {
    pub(super) actor: ActorKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ActorOutcomeLabels {
    pub(super) actor: ActorKind,
    pub(super) outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRouteLabels {
    pub route: String,
    pub method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pub(super) reason: RejectionReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CommitLabels {
    pub(super) outcome: &'static str,
}

/// A commit lane of the coordinator (0-based).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LaneLabels {
    pub(super) lane: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StageLabels {
    pub(super) stage: &'static str,
}
