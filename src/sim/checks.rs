//! The invariants the simulation checks after every step, against the model database and what
//! the clients were answered: what was answered ([`Books`]), each buyer's books with every
//! acknowledged answer in them (`buyer`), and at the end the whole database's tables against
//! each other and the outbox (`all`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::actor::{Request, RequestId, Response};
use crate::domain::BuyerId;
use crate::domain::buyer::{Command, KeyRecord, Receipt, StoredResponse};

mod all;
mod buyer;

pub use all::check_all;
pub use buyer::check_buyer;

/// What the clients sent and were answered.
#[derive(Debug, Default)]
pub struct Books {
    sent: BTreeMap<RequestId, (BuyerId, Request)>,
    answers: BTreeMap<RequestId, Response>,
    /// Acknowledged movements by (buyer, ledger version): which request, and its receipt.
    acked: BTreeMap<(i64, i64), (RequestId, Receipt)>,
    /// Acknowledged cancellations (200) by (buyer, order): which request.
    cancelled: BTreeMap<(i64, i64), RequestId>,
    /// The answers each key's committed writes stored.
    key_answers: BTreeMap<String, Vec<StoredResponse>>,
    /// Until when each key's last committed record holds.
    key_until: BTreeMap<String, DateTime<Utc>>,
}

impl Books {
    pub fn sent(&mut self, buyer: BuyerId, request: &Request) {
        self.sent.insert(request.id, (buyer, request.clone()));
    }

    pub fn answer(&self, id: RequestId) -> Option<&Response> {
        self.answers.get(&id)
    }

    /// What request `id` asked for.
    pub fn command(&self, id: RequestId) -> Option<&Command> {
        self.sent.get(&id).map(|(_, request)| &request.command)
    }

    /// Records an answer; every request is answered once, acknowledged movements never
    /// contradict each other, and a replay answers what its key committed.
    pub fn answered(&mut self, id: RequestId, response: Response) -> Result<(), String> {
        let (buyer, request) = self.sent.get(&id).cloned().ok_or("an unknown request")?;
        if let Some(earlier) = self.answers.get(&id) {
            return Err(format!(
                "request {id} answered twice: {earlier:?}, then {response:?}"
            ));
        }
        if let Response::Receipt(receipt) = &response {
            self.acknowledged(buyer, &request, receipt)?;
        }
        self.answers.insert(id, response);
        Ok(())
    }

    fn acknowledged(
        &mut self,
        buyer: BuyerId,
        request: &Request,
        receipt: &Receipt,
    ) -> Result<(), String> {
        let version = match receipt {
            Receipt::Charged(charge) => Some(charge.version),
            Receipt::Paid(payment) => Some(payment.version),
            Receipt::Refunded(refund) => Some(refund.version),
            Receipt::Cancelled(order_id) => {
                self.cancelled
                    .entry((buyer.get(), order_id.get()))
                    .or_insert(request.id);
                None
            }
            Receipt::OrderCreated(_) | Receipt::Replayed(_) => None,
        };
        if let Some(version) = version {
            let at = (buyer.get(), version);
            if let Some((other, _)) = self.acked.insert(at, (request.id, receipt.clone())) {
                return Err(format!(
                    "requests {other} and {} both acknowledged version {version} of buyer {buyer}",
                    request.id
                ));
            }
        }
        // Orders are not keyed: their key is checked, never recorded.
        let Some(key) = request.key.as_ref().filter(|_| !is_order(&request.command)) else {
            return Ok(());
        };
        if let Receipt::Replayed(answer) = receipt {
            let committed = self.key_answers.get(key.as_str());
            if !committed.is_some_and(|answers| answers.contains(answer)) {
                return Err(format!(
                    "key {key} replayed {answer:?}, which it never committed"
                ));
            }
        }
        Ok(())
    }

    /// A write with `record` committed at `now` (whether or not its answer reached the client):
    /// a key moves money at most once while its record holds.
    pub fn key_committed(&mut self, record: &KeyRecord, now: DateTime<Utc>) -> Result<(), String> {
        let key = record.claim.key.as_str().to_owned();
        if let Some(until) = self.key_until.insert(key.clone(), record.expires_at) {
            if now < until {
                return Err(format!(
                    "key {key} committed twice before its record expired"
                ));
            }
        }
        self.key_answers
            .entry(key)
            .or_default()
            .push(record.answer.clone());
        Ok(())
    }

    /// Requests sent and never answered.
    pub fn unanswered(&self) -> Vec<RequestId> {
        self.sent
            .keys()
            .filter(|id| !self.answers.contains_key(id))
            .copied()
            .collect()
    }
}

fn is_order(command: &Command) -> bool {
    matches!(command, Command::CreateOrder { .. })
}
