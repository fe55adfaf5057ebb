//! What each command writes, decided against what the state knows, and what a request that
//! waited on an order's payment or cancellation answers once it settled.

use chrono::{DateTime, Utc};

use super::super::{
    ChargeReceipt, OrderId, OrderStatus, OrderView, PaymentId, PaymentReceipt, Points, RefundId,
    RefundReceipt,
};
use super::{
    BuyerState, Command, Decision, FencedMovement, KnownOrder, KnownPayment, Loaded, Lookup,
    OrderFate, PaymentLookup, Receipt, RefundPlan, Refusal, WriteKind,
};

/// A write with its receipt, or (`Err`) a decision that writes nothing.
type Decided = Result<(WriteKind, Receipt), Decision>;

/// A refund as the request asks for it.
struct RefundAsk<'a> {
    payment_id: PaymentId,
    refund_id: RefundId,
    amount: Option<Points>,
    reason: Option<&'a String>,
}

impl BuyerState {
    pub(super) fn decide_write(
        &self,
        loaded: &Loaded,
        command: &Command,
        now: DateTime<Utc>,
    ) -> Result<Decided, Refusal> {
        Ok(match command {
            Command::Charge { amount } => Ok(self.charge(loaded, *amount)?),
            Command::Pay {
                order_id,
                payment_id,
            } => match self.payable(*order_id, false)? {
                Ok(price) => Ok(self.pay(loaded, *order_id, *payment_id, price, now)?),
                Err(decision) => Err(decision),
            },
            Command::CreateOrder {
                order_id,
                total_price,
            } => Ok(self.create_order(*order_id, *total_price, now)),
            Command::Cancel { order_id } => match self.payable(*order_id, true)? {
                Ok(total_price) => Ok(cancel(*order_id, total_price)),
                Err(decision) => Err(decision),
            },
            Command::Refund {
                payment_id,
                refund_id,
                amount,
                reason,
            } => {
                let ask = RefundAsk {
                    payment_id: *payment_id,
                    refund_id: *refund_id,
                    amount: *amount,
                    reason: reason.as_ref(),
                };
                Ok(self.refund(loaded, ask, now)?)
            }
        })
    }

    /// The price of a PENDING order; `Err(decision)` when the answer needs no write (waiting
    /// on the order, or cancelling one that is cancelled already).
    fn payable(
        &self,
        order_id: OrderId,
        cancelling: bool,
    ) -> Result<Result<Points, Decision>, Refusal> {
        match self.books.get().orders.lookup(order_id) {
            Lookup::Settling => Ok(Err(Decision::AwaitOrder(order_id))),
            Lookup::Known(KnownOrder::Payable(price)) => Ok(Ok(price)),
            Lookup::Known(KnownOrder::Paid) => Err(Refusal::OrderAlreadyPaid),
            Lookup::Known(KnownOrder::Cancelled) if cancelling => {
                Ok(Err(Decision::Answer(Receipt::Cancelled(order_id))))
            }
            Lookup::Known(KnownOrder::Cancelled) => Err(Refusal::OrderCancelled),
            Lookup::Known(KnownOrder::NotOurs) => Err(Refusal::OrderNotFound),
            Lookup::Unknown => Err(Refusal::StaleState),
        }
    }

    fn charge(&self, loaded: &Loaded, amount: Points) -> Result<(WriteKind, Receipt), Refusal> {
        let movement = loaded.balance.charge(amount, self.rules.max_balance)?;
        let receipt = Receipt::Charged(ChargeReceipt {
            buyer_id: self.buyer,
            amount,
            balance: movement.balance_after,
            version: movement.version,
        });
        Ok((WriteKind::Charge(fenced(loaded, movement)), receipt))
    }

    fn pay(
        &self,
        loaded: &Loaded,
        order_id: OrderId,
        payment_id: PaymentId,
        price: Points,
        now: DateTime<Utc>,
    ) -> Result<(WriteKind, Receipt), Refusal> {
        let movement = loaded.balance.pay(price)?;
        let receipt = Receipt::Paid(PaymentReceipt {
            payment_id,
            order_id,
            buyer_id: self.buyer,
            amount: price,
            balance: movement.balance_after,
            version: movement.version,
            paid_at: now,
        });
        let kind = WriteKind::Pay {
            change: fenced(loaded, movement),
            order_id,
            payment_id,
        };
        Ok((kind, receipt))
    }

    fn create_order(
        &self,
        order_id: OrderId,
        total_price: Points,
        now: DateTime<Utc>,
    ) -> (WriteKind, Receipt) {
        let view = OrderView {
            order_id,
            buyer_id: self.buyer,
            total_price,
            status: OrderStatus::Pending,
            created_at: now,
            paid_at: None,
            cancelled_at: None,
        };
        let kind = WriteKind::CreateOrder {
            order_id,
            total_price,
        };
        (kind, Receipt::OrderCreated(view))
    }

    /// A refund of what the request asks (all that is left, by default), within what is left
    /// of the payment and the balance limit.
    fn refund(
        &self,
        loaded: &Loaded,
        ask: RefundAsk<'_>,
        now: DateTime<Utc>,
    ) -> Result<(WriteKind, Receipt), Refusal> {
        let (order_id, payment_amount, refunded) = match self
            .books
            .get()
            .payments
            .lookup(ask.payment_id)
        {
            PaymentLookup::Known(KnownPayment::Refundable {
                order_id,
                amount,
                refunded,
            }) => (order_id, amount, refunded),
            PaymentLookup::Known(KnownPayment::NotOurs) => return Err(Refusal::PaymentNotFound),
            PaymentLookup::Unsettled | PaymentLookup::Unknown => return Err(Refusal::StaleState),
        };
        let refundable = payment_amount
            .checked_sub(refunded)
            .filter(|left| *left >= Points::ZERO)
            .ok_or(Refusal::StaleState)?;
        let amount = ask.amount.unwrap_or(refundable);
        if amount <= Points::ZERO || amount > refundable {
            return Err(Refusal::RefundExceedsPayment { refundable });
        }
        let movement = loaded.balance.refund(amount, self.rules.max_balance)?;
        let refunded_after = refunded
            .checked_add(amount)
            .expect("at most the payment's amount");
        let receipt = Receipt::Refunded(RefundReceipt {
            refund_id: ask.refund_id,
            payment_id: ask.payment_id,
            order_id,
            buyer_id: self.buyer,
            amount,
            balance: movement.balance_after,
            version: movement.version,
            reason: ask.reason.cloned(),
            refunded_at: now,
        });
        let refund = RefundPlan {
            refund_id: ask.refund_id,
            payment_id: ask.payment_id,
            order_id,
            amount,
            reason: ask.reason.cloned(),
            payment_amount,
            refunded_before: refunded,
            refunded_after,
        };
        let change = fenced(loaded, movement);
        Ok((WriteKind::Refund { change, refund }, receipt))
    }
}

fn cancel(order_id: OrderId, total_price: Points) -> (WriteKind, Receipt) {
    let kind = WriteKind::Cancel {
        order_id,
        total_price,
    };
    (kind, Receipt::Cancelled(order_id))
}

/// A movement from the loaded balance, fenced on the row it expects to replace.
fn fenced(loaded: &Loaded, movement: super::super::Movement) -> FencedMovement {
    FencedMovement {
        expected: loaded.fence,
        token: loaded.token,
        movement,
    }
}

/// The answer to a request that waited on a payment or cancellation of `order_id` (`fate`:
/// what it made of the order; `None`: it did not commit, decide the request again).
pub fn awaited_answer(
    command: &Command,
    order_id: OrderId,
    fate: Option<OrderFate>,
) -> Result<Receipt, Refusal> {
    match (fate, command) {
        (None, _) => Err(Refusal::StaleState),
        (Some(OrderFate::Paid), _) => Err(Refusal::OrderAlreadyPaid),
        (Some(OrderFate::Cancelled), Command::Cancel { .. }) => Ok(Receipt::Cancelled(order_id)),
        (Some(OrderFate::Cancelled), _) => Err(Refusal::OrderCancelled),
    }
}
