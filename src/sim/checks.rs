//! The invariants the simulation checks after every step, against the model database and what
//! the clients were answered.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::actor::{Request, RequestId, Response};
use super::model::ModelDb;
use crate::domain::buyer::{Command, KeyRecord, Receipt, StoredResponse};
use crate::domain::{BuyerId, OrderStatus};

/// What the clients sent and were answered.
#[derive(Debug, Default)]
pub struct Books {
    sent: BTreeMap<RequestId, (BuyerId, Request)>,
    answers: BTreeMap<RequestId, Response>,
    /// Acknowledged movements by (buyer, ledger version): which request, and its receipt.
    acked: BTreeMap<(i64, i64), (RequestId, Receipt)>,
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
            Receipt::OrderCreated(_) | Receipt::Cancelled(_) | Receipt::Replayed(_) => None,
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

/// The buyer's books in the database: versions 1..=n without gaps, balance == ledger sum,
/// within `0..=max_balance`; every acknowledged movement is the entry at its version; each
/// paid order has one payment entry, a pending one none.
pub fn check_buyer(
    db: &ModelDb,
    books: &Books,
    buyer: BuyerId,
    max_balance: i64,
) -> Result<(), String> {
    let id = buyer.get();
    let mut sum: i64 = 0;
    let mut payments: BTreeMap<i64, usize> = BTreeMap::new();
    for (index, entry) in db.ledger(id).enumerate() {
        let expected = i64::try_from(index).expect("small") + 1;
        if entry.version != expected {
            return Err(format!(
                "buyer {buyer}: version {} where {expected} was due",
                entry.version
            ));
        }
        sum = sum
            .checked_add(entry.amount)
            .ok_or("ledger sum overflows")?;
        if entry.balance_after != sum {
            return Err(format!(
                "buyer {buyer}: entry {expected} leaves {} not {sum}",
                entry.balance_after
            ));
        }
        if let Some(order) = entry.order_id {
            *payments.entry(order).or_default() += 1;
        }
    }
    let (balance, version) = db
        .balance(id)
        .map_or((0, 0), |row| (row.balance, row.version));
    let entries = i64::try_from(db.ledger(id).count()).expect("small");
    if balance != sum || version != entries {
        return Err(format!(
            "buyer {buyer}: balance {balance} v{version}, ledger {sum} v{entries}"
        ));
    }
    if !(0..=max_balance).contains(&balance) {
        return Err(format!(
            "buyer {buyer}: balance {balance} outside 0..={max_balance}"
        ));
    }
    check_acknowledged(db, books, buyer)?;
    for order in db.orders_of(id) {
        let paid = payments.remove(&order.id).unwrap_or(0);
        let expected = usize::from(order.status == OrderStatus::Paid);
        if paid != expected {
            return Err(format!(
                "order {} is {:?} with {paid} payments",
                order.id, order.status
            ));
        }
    }
    match payments.into_iter().next() {
        Some((order, _)) => Err(format!(
            "buyer {buyer} paid order {order}, not one of theirs"
        )),
        None => Ok(()),
    }
}

fn check_acknowledged(db: &ModelDb, books: &Books, buyer: BuyerId) -> Result<(), String> {
    let id = buyer.get();
    let mut entries = db.ledger(id);
    for ((_, version), (request, receipt)) in books.acked.range((id, i64::MIN)..=(id, i64::MAX)) {
        let entry = entries
            .by_ref()
            .find(|entry| entry.version == *version)
            .ok_or_else(|| format!("request {request}'s acknowledged version {version} of buyer {buyer} is not in the ledger"))?;
        let (amount, balance, order) = match receipt {
            Receipt::Charged(charge) => (charge.amount.get(), charge.balance, None),
            Receipt::Paid(payment) => (
                -payment.amount.get(),
                payment.balance,
                Some(payment.order_id.get()),
            ),
            _ => unreachable!("only movements are acknowledged by version"),
        };
        if entry.amount != amount || entry.balance_after != balance.get() || entry.order_id != order
        {
            return Err(format!(
                "request {request}'s receipt {receipt:?} does not match {entry:?}"
            ));
        }
    }
    Ok(())
}

/// The whole database at the end: every table's rows agree with each other.
pub fn check_all(db: &ModelDb) -> Result<(), String> {
    let rows = db.rows();
    let mut paid: BTreeMap<i64, i64> = BTreeMap::new();
    for payment in &rows.payments {
        if paid.insert(payment.order_id, payment.amount).is_some() {
            return Err(format!("order {} has two payments", payment.order_id));
        }
    }
    for order in &rows.orders {
        let paid = paid.get(&order.id).copied();
        let expected = (order.status == OrderStatus::Paid).then_some(order.total_price);
        if paid != expected {
            return Err(format!("order {order:?} has payment {paid:?}"));
        }
    }
    let payment_entries = rows
        .ledger_entries
        .iter()
        .filter(|e| e.payment_id.is_some())
        .count();
    let payment_events = rows.outbox_events.len();
    if payment_entries != rows.payments.len() || payment_events != rows.payments.len() {
        return Err(format!(
            "{} payments, {payment_entries} payment entries, {payment_events} events",
            rows.payments.len()
        ));
    }
    Ok(())
}
