//! What a buyer asks for, and what the buyer's rules answer before anything is written.

use chrono::{DateTime, Utc};

use sha2::{Digest, Sha256};

use super::super::{
    BuyerId, ChargeReceipt, DomainError, IdempotencyKey, Movement, OrderId, OrderView, PaymentId,
    PaymentReceipt, Points, RefundId, RefundReceipt,
};
use super::{Fence, Generation};

/// What a buyer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Charge {
        amount: Points,
    },
    Pay {
        order_id: OrderId,
        payment_id: PaymentId,
    },
    CreateOrder {
        order_id: OrderId,
        total_price: Points,
    },
    /// A PENDING order will never be paid.
    Cancel {
        order_id: OrderId,
    },
    /// Gives part (`amount`) or all (`None`: what is left) of a payment back to the balance.
    Refund {
        payment_id: PaymentId,
        refund_id: RefundId,
        amount: Option<Points>,
        reason: Option<String>,
    },
}

impl Command {
    /// What an Idempotency-Key record compares: the same key must come with the same request.
    /// Ids the engine allocates for the request (order, payment, refund) are no part of it.
    pub fn fingerprint(&self, buyer: BuyerId) -> Fingerprint {
        Fingerprint(match self {
            Command::Charge { amount } => format!("charge:{buyer}:{amount}"),
            Command::Pay { order_id, .. } => format!("pay:{buyer}:{order_id}"),
            Command::CreateOrder { total_price, .. } => format!("order:{buyer}:{total_price}"),
            Command::Cancel { order_id } => format!("cancel:{buyer}:{order_id}"),
            Command::Refund {
                payment_id,
                amount,
                reason,
                ..
            } => {
                let amount = amount.map_or_else(|| "all".to_owned(), |a| a.to_string());
                // A reason may be 255 characters: its digest keeps the fingerprint short.
                let reason = reason.as_deref().map_or_else(
                    || "-".to_owned(),
                    |r| format!("{:x}", Sha256::digest(r.as_bytes())),
                );
                format!("refund:{buyer}:{payment_id}:{amount}:{reason}")
            }
        })
    }
}

/// The request as an Idempotency-Key record identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request's Idempotency-Key with the fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
}

/// A response stored under an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What a committed command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    Charged(ChargeReceipt),
    Paid(PaymentReceipt),
    OrderCreated(OrderView),
    Refunded(RefundReceipt),
    /// The order is CANCELLED (now, or it was already): the answer is the order as stored.
    Cancelled(OrderId),
    /// An earlier request with the same Idempotency-Key committed; this is its answer.
    Replayed(StoredResponse),
}

impl Receipt {
    /// The answer an Idempotency-Key record keeps: the exact status and body this receipt is
    /// sent as. `None` for a cancellation, idempotent by nature (no key is recorded for it).
    pub fn stored(&self) -> Option<StoredResponse> {
        let (status, body) = match self {
            Receipt::Charged(body) => (200, serde_json::to_string(body)),
            Receipt::Paid(body) => (200, serde_json::to_string(body)),
            Receipt::OrderCreated(body) => (201, serde_json::to_string(body)),
            Receipt::Refunded(body) => (201, serde_json::to_string(body)),
            Receipt::Cancelled(_) => return None,
            Receipt::Replayed(stored) => return Some(stored.clone()),
        };
        Some(StoredResponse {
            status,
            body: body.expect("receipts are plain data and always serialize"),
        })
    }
}

/// Why the buyer's rules refuse a command. Nothing has moved when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Rule(#[from] DomainError),
    #[error("order not found")]
    OrderNotFound,
    #[error("order already paid")]
    OrderAlreadyPaid,
    #[error("order cancelled")]
    OrderCancelled,
    #[error("payment not found")]
    PaymentNotFound,
    /// The refund would take the payment's refunds past its amount.
    #[error("the refunds would exceed the payment: {refundable} points are left to refund")]
    RefundExceedsPayment { refundable: Points },
    #[error("a request with this Idempotency-Key is still in flight")]
    IdempotencyKeyInFlight,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyMismatch,
    /// The state this command needs was dropped after a failed write (or was never loaded): it
    /// must be read again before anything is decided.
    #[error("the buyer's state is stale")]
    StaleState,
    /// This engine does not (or no longer) own the buyer's shard: the request belongs to the
    /// owner, and nothing of it committed here.
    #[error("another engine owns this buyer")]
    NotOwner,
}

/// What must be read from the database before a command can be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    pub balance: bool,
    pub order: Option<OrderId>,
    pub payment: Option<PaymentId>,
}

impl Needs {
    pub fn nothing(&self) -> bool {
        !self.balance && self.order.is_none() && self.payment.is_none()
    }
}

/// What the rules decided for a command.
// Consumed right where it is made: boxing the write would cost an allocation per write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An earlier request with this key committed: answer it again, nothing is written.
    Replay(StoredResponse),
    /// A payment or cancellation of this order is committing: its outcome decides the answer
    /// ([`Settlement::order`](super::Settlement), [`awaited_answer`](super::awaited_answer)).
    AwaitOrder(OrderId),
    /// Nothing to write: the answer is known (an order cancelled already).
    Answer(Receipt),
    /// A write to commit; [`BuyerState::accept`](super::BuyerState::accept) once it has a place
    /// in the commit queue.
    Write(PlannedWrite),
}

/// The change of the balance a write makes, fenced on the row it expects to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FencedMovement {
    /// `None`: the buyer has no balance row yet and this write creates it.
    pub expected: Option<Fence>,
    /// The token written with the change (this incarnation's).
    pub token: i64,
    pub movement: Movement,
}

impl FencedMovement {
    /// The row this write leaves behind.
    pub fn fence_after(&self) -> Fence {
        Fence {
            version: self.movement.version,
            token: self.token,
        }
    }
}

/// What a write does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    Charge(FencedMovement),
    Pay {
        change: FencedMovement,
        order_id: OrderId,
        payment_id: PaymentId,
    },
    CreateOrder {
        order_id: OrderId,
        total_price: Points,
    },
    Cancel {
        order_id: OrderId,
        total_price: Points,
    },
    Refund {
        change: FencedMovement,
        refund: RefundPlan,
    },
}

/// What a refund writes besides its balance change: the refund row and the payment's new
/// refunded total, fenced on the total it expects to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    pub refund_id: RefundId,
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub amount: Points,
    pub reason: Option<String>,
    /// The payment's amount.
    pub payment_amount: Points,
    /// The payment's refunded total before this refund (what the writer must find).
    pub refunded_before: Points,
    /// And after it.
    pub refunded_after: Points,
}

/// A decided write: everything the writer needs, and the answer once it has committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWrite {
    pub buyer: BuyerId,
    pub generation: Generation,
    pub kind: WriteKind,
    /// The key to record, with the answer it stores and until when it holds.
    pub key: Option<KeyRecord>,
    pub receipt: Receipt,
    pub at: DateTime<Utc>,
}

/// An Idempotency-Key record a write makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub claim: KeyClaim,
    pub answer: StoredResponse,
    pub expires_at: DateTime<Utc>,
}

impl PlannedWrite {
    pub fn change(&self) -> Option<&FencedMovement> {
        match &self.kind {
            WriteKind::Charge(change)
            | WriteKind::Pay { change, .. }
            | WriteKind::Refund { change, .. } => Some(change),
            WriteKind::CreateOrder { .. } | WriteKind::Cancel { .. } => None,
        }
    }

    /// What the state must be told when this write's result comes back.
    pub fn pending(&self) -> PendingWrite {
        let tracked = match &self.kind {
            WriteKind::Charge(_) => Tracked::Balance,
            WriteKind::Pay {
                change,
                order_id,
                payment_id,
            } => Tracked::Payment {
                order_id: *order_id,
                payment_id: *payment_id,
                amount: Points::ZERO
                    .checked_sub(change.movement.amount)
                    .expect("a payment moves a positive amount out"),
            },
            WriteKind::CreateOrder {
                order_id,
                total_price,
            } => Tracked::OrderCreation {
                order_id: *order_id,
                total_price: *total_price,
            },
            WriteKind::Cancel { order_id, .. } => Tracked::Cancellation {
                order_id: *order_id,
            },
            WriteKind::Refund { refund, .. } => Tracked::Refund {
                payment_id: refund.payment_id,
            },
        };
        PendingWrite {
            generation: self.generation,
            key: self.key.clone(),
            tracked,
        }
    }
}

/// What a write in flight will teach the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    Balance,
    Payment {
        order_id: OrderId,
        payment_id: PaymentId,
        amount: Points,
    },
    OrderCreation {
        order_id: OrderId,
        total_price: Points,
    },
    Cancellation {
        order_id: OrderId,
    },
    Refund {
        payment_id: PaymentId,
    },
}

/// A write in flight, as its result must be settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    pub generation: Generation,
    pub key: Option<KeyRecord>,
    pub tracked: Tracked,
}

impl PendingWrite {
    pub fn moves_money(&self) -> bool {
        !matches!(
            self.tracked,
            Tracked::OrderCreation { .. } | Tracked::Cancellation { .. }
        )
    }
}
