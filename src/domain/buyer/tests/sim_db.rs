//! The model database of the property simulation: rows, keys and the writer's checks.

use super::*;
use std::collections::{HashMap, HashSet};

pub(super) const SIM_MAX_BALANCE: i64 = 300;
pub(super) const SIM_TTL_S: i64 = 60;
/// The token another engine writes the buyer's row with.
pub(super) const OTHER_ENGINE_TOKEN: i64 = 1;
/// Another buyer's order, and an id no order has.
pub(super) const FOREIGN_ORDER: i64 = 900;
pub(super) const MISSING_ORDER: i64 = 999;
pub(super) const KEYS: u8 = 3;

#[derive(Debug, Clone)]
pub(super) enum Step {
    Charge {
        amount: i64,
        key: Option<u8>,
    },
    /// Pays one of the orders created so far (newest first), or a foreign or missing one.
    Pay {
        order: usize,
        key: Option<u8>,
    },
    CreateOrder {
        price: i64,
        key: Option<u8>,
    },
    /// The writer takes the next `writes` accepted writes as one batch.
    Commit {
        writes: usize,
        fate: Fate,
    },
    /// The next `results` written results reach the state, in order.
    Settle {
        results: usize,
    },
    Wait {
        secs: i64,
    },
    OtherEnginePays {
        pick: usize,
    },
    OtherEngineCharges {
        amount: i64,
    },
    /// A client sends one of its earlier keyed requests again (newest first).
    Retry {
        back: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Commits,
    /// Nothing of the batch committed.
    Fails,
    /// COMMIT failed, so the writer reports a failure, but the batch did commit.
    CommitsUnreported,
}

pub(super) struct DbOrder {
    pub(super) buyer: BuyerId,
    pub(super) paid: bool,
    pub(super) total_price: Points,
}

pub(super) struct DbKey {
    pub(super) fingerprint: Fingerprint,
    pub(super) answer: StoredResponse,
    pub(super) expires_at: DateTime<Utc>,
}

/// A committed write of the state under test.
pub(super) struct Committed {
    pub(super) generation: Generation,
    pub(super) amount: i64,
    pub(super) paid: Option<OrderId>,
    pub(super) key: Option<(String, DateTime<Utc>)>,
    pub(super) at: DateTime<Utc>,
}

/// The buyer's rows, and a writer that checks what the real one checks, in its order:
/// the key, the order, then the fence.
#[derive(Default)]
pub(super) struct Db {
    pub(super) row: Option<StoredBalance>,
    pub(super) orders: HashMap<OrderId, DbOrder>,
    pub(super) keys: HashMap<String, DbKey>,
    pub(super) log: Vec<Committed>,
    /// Refusals of writes on a fresh fence that only the writer's second line (order
    /// status, key record) gives, but for orders the other engine paid: what the state
    /// knows of an order may predate its fence, and then the writer's check is the one
    /// that holds.
    pub(super) second_line_refusals: usize,
    pub(super) paid_elsewhere: HashSet<OrderId>,
    /// Every committed movement, this state's and the other engine's.
    pub(super) moved: i64,
}

impl Db {
    pub(super) fn known_order(&self, order_id: OrderId) -> KnownOrder {
        match self.orders.get(&order_id) {
            Some(order) if order.buyer == buyer() && !order.paid => {
                KnownOrder::Payable(order.total_price)
            }
            Some(order) if order.buyer == buyer() => KnownOrder::Paid,
            _ => KnownOrder::NotOurs,
        }
    }

    pub(super) fn live_key(&self, key: &str, now: DateTime<Utc>) -> Option<&DbKey> {
        self.keys.get(key).filter(|record| record.expires_at > now)
    }

    pub(super) fn apply(&mut self, write: &PlannedWrite, now: DateTime<Utc>) -> WriteOutcome {
        if let WriteKind::CreateOrder {
            order_id,
            total_price,
        } = write.kind
        {
            // A creation records its key as the other writes do.
            if let Some(record) = &write.key {
                if let Some(used) = self.live_key(record.claim.key.as_str(), now) {
                    return WriteOutcome::Refused(WriteRefusal::KeyUsed {
                        fingerprint: used.fingerprint.clone(),
                        answer: used.answer.clone(),
                    });
                }
                let stored = DbKey {
                    fingerprint: record.claim.fingerprint.clone(),
                    answer: record.answer.clone(),
                    expires_at: record.expires_at,
                };
                self.keys
                    .insert(record.claim.key.as_str().to_owned(), stored);
            }
            let order = DbOrder {
                buyer: write.buyer,
                paid: false,
                total_price,
            };
            assert!(
                self.orders.insert(order_id, order).is_none(),
                "ids are fresh"
            );
            return WriteOutcome::Committed;
        }
        let change = change(write);
        let current = self.row.map(|row| Fence {
            version: row.version,
            token: row.fence_token,
        });
        // A write on a stale fence is refused anyway; only a fresh one leans on the checks
        // below.
        let fresh = change.expected == current;
        let used = write.key.as_ref().and_then(|record| {
            let used = self.live_key(record.claim.key.as_str(), now)?;
            Some(WriteRefusal::KeyUsed {
                fingerprint: used.fingerprint.clone(),
                answer: used.answer.clone(),
            })
        });
        if let Some(used) = used {
            self.second_line_refusals += usize::from(fresh);
            return WriteOutcome::Refused(used);
        }
        let paid = match write.kind {
            WriteKind::Pay { order_id, .. } => match self.known_order(order_id) {
                KnownOrder::Payable(_) => Some(order_id),
                KnownOrder::Paid => {
                    let elsewhere = self.paid_elsewhere.contains(&order_id);
                    self.second_line_refusals += usize::from(fresh && !elsewhere);
                    return WriteOutcome::Refused(WriteRefusal::OrderAlreadyPaid);
                }
                KnownOrder::NotOurs => {
                    return WriteOutcome::Refused(WriteRefusal::OrderNotFound);
                }
                KnownOrder::Cancelled => {
                    return WriteOutcome::Refused(WriteRefusal::OrderCancelled);
                }
            },
            _ => None,
        };
        if !fresh {
            return WriteOutcome::Refused(WriteRefusal::StaleFence);
        }
        let movement = change.movement;
        let before = self.row.map_or(BalanceState::EMPTY, |row| BalanceState {
            balance: row.balance,
            version: row.version,
        });
        assert_eq!(
            movement.balance_after.get(),
            before.balance.get() + movement.amount.get(),
            "a write that finds its fence moves the balance it was decided on"
        );
        assert_eq!(movement.version, before.version + 1);
        assert!(
            (0..=SIM_MAX_BALANCE).contains(&movement.balance_after.get()),
            "the stored balance stays in 0..=max: {movement:?}"
        );
        self.row = Some(StoredBalance {
            balance: movement.balance_after,
            version: movement.version,
            fence_token: change.token,
        });
        self.moved += movement.amount.get();
        if let Some(order_id) = paid {
            self.orders.get_mut(&order_id).expect("checked").paid = true;
        }
        if let Some(record) = &write.key {
            let key = record.claim.key.as_str().to_owned();
            let stored = DbKey {
                fingerprint: record.claim.fingerprint.clone(),
                answer: record.answer.clone(),
                expires_at: record.expires_at,
            };
            self.keys.insert(key, stored);
        }
        self.log.push(Committed {
            generation: write.generation,
            amount: movement.amount.get(),
            paid,
            key: write
                .key
                .as_ref()
                .map(|record| (record.claim.key.as_str().to_owned(), record.expires_at)),
            at: now,
        });
        WriteOutcome::Committed
    }

    /// Another engine (its own token) pays one of the buyer's pending orders, if the
    /// balance covers it.
    pub(super) fn other_engine_pays(&mut self, pick: usize) -> bool {
        let mut pending: Vec<(OrderId, Points)> = (self.orders.iter())
            .filter(|(_, order)| order.buyer == buyer() && !order.paid)
            .map(|(id, order)| (*id, order.total_price))
            .collect();
        pending.sort();
        let Some(&(order_id, price)) = pending.get(pick % pending.len().max(1)) else {
            return false;
        };
        let Some(row) = self.row.filter(|row| row.balance >= price) else {
            return false;
        };
        self.row = Some(StoredBalance {
            balance: points(row.balance.get() - price.get()),
            version: row.version + 1,
            fence_token: OTHER_ENGINE_TOKEN,
        });
        self.orders.get_mut(&order_id).expect("listed").paid = true;
        self.paid_elsewhere.insert(order_id);
        self.moved -= price.get();
        true
    }

    /// Another engine (its own token) charges the buyer, if the limit allows.
    pub(super) fn other_engine_charges(&mut self, amount: i64) -> bool {
        let before = self
            .row
            .map_or((0, 0), |row| (row.balance.get(), row.version));
        if before.0 + amount > SIM_MAX_BALANCE {
            return false;
        }
        self.row = Some(StoredBalance {
            balance: points(before.0 + amount),
            version: before.1 + 1,
            fence_token: OTHER_ENGINE_TOKEN,
        });
        self.moved += amount;
        true
    }
}
