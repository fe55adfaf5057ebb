//! The Idempotency-Keys a buyer's state knows: those in flight and the recently committed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::request::{Fingerprint, KeyClaim, KeyRecord, Refusal, StoredResponse};

/// Most committed keys a buyer's state remembers (older ones are found in the database by the
/// HTTP layer, or by the writer's unique key).
pub const RECENT_KEYS_MAX: usize = 256;

/// A committed key: the request it was recorded for and its answer, until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CommittedKey {
    fingerprint: Fingerprint,
    answer: StoredResponse,
    expires_at: DateTime<Utc>,
}

/// What the state knows of a buyer's keys.
#[derive(Debug, Default, Clone)]
pub struct KeyBook {
    in_flight: HashMap<String, Fingerprint>,
    recent: HashMap<String, CommittedKey>,
}

impl KeyBook {
    /// `Ok(Some)`: the key committed with this request: its answer. `Ok(None)`: unknown here.
    pub fn check(
        &self,
        claim: &KeyClaim,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, Refusal> {
        if let Some(in_flight) = self.in_flight.get(claim.key.as_str()) {
            return Err(if *in_flight == claim.fingerprint {
                Refusal::IdempotencyKeyInFlight
            } else {
                Refusal::IdempotencyKeyMismatch
            });
        }
        match self.recent.get(claim.key.as_str()) {
            Some(committed) if committed.expires_at > now => {
                if committed.fingerprint != claim.fingerprint {
                    return Err(Refusal::IdempotencyKeyMismatch);
                }
                Ok(Some(committed.answer.clone()))
            }
            _ => Ok(None),
        }
    }

    pub fn start(&mut self, claim: &KeyClaim) {
        self.in_flight
            .insert(claim.key.as_str().to_owned(), claim.fingerprint.clone());
    }

    /// The key's write has settled; a committed one is remembered with its answer.
    pub fn finish(&mut self, record: &KeyRecord, committed: bool) {
        let key = record.claim.key.as_str();
        self.in_flight.remove(key);
        if !committed {
            return;
        }
        if self.recent.len() >= RECENT_KEYS_MAX {
            self.recent.clear();
        }
        self.recent.insert(
            key.to_owned(),
            CommittedKey {
                fingerprint: record.claim.fingerprint.clone(),
                answer: record.answer.clone(),
                expires_at: record.expires_at,
            },
        );
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}
