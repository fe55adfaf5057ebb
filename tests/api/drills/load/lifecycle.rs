//! The lifecycle iterations of the load, on an order the client just created (PENDING, and no
//! other client knows it): a cancel; or a payment and one to three refunds, now and then an
//! over-refund; or a payment racing a cancel. While every request is answered the client knows
//! the order's state exactly, so it expects exact answers. Once an answer is lost (none came, or
//! a 5xx) it stops: whether that request took effect is not known, and the next one would be a
//! guess.

use serde_json::{Value, json};

use super::client::{Call, Client, Reply, field};
use super::{Ack, Request};

/// Share of lifecycles that cancel the order, in percent.
const CANCEL_PERCENT: u64 = 35;
/// Share of lifecycles that race a payment against a cancel, in percent (the rest refund).
const RACE_PERCENT: u64 = 15;
/// One in this many refunded payments is then asked for a point more than is left.
const OVER_REFUND_ONE_IN: u64 = 4;

/// A payment being refunded, and how much of it is left, as the client knows it.
struct Refunding {
    buyer: i64,
    order: i64,
    payment: i64,
    left: i64,
}

/// How one side of a pay/cancel race ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Won,
    /// Refused because the other side won.
    Lost,
    /// No answer, or a 5xx.
    Unknown,
    /// Anything else.
    Wrong,
}

impl Client {
    /// Takes `order` (PENDING, `total` points) through one of its lives.
    pub(super) async fn lifecycle(&mut self, buyer: i64, order: i64, total: i64) {
        let roll = self.rng.below(100);
        if roll < CANCEL_PERCENT {
            self.cancel(buyer, order).await;
        } else if roll < CANCEL_PERCENT + RACE_PERCENT {
            self.race(buyer, order).await;
        } else {
            self.pay_and_refund(buyer, order, total).await;
        }
    }

    async fn cancel(&mut self, buyer: i64, order: i64) {
        match self.post(cancel_call(buyer, order)).await {
            Reply::Success(body) => self.cancelled(buyer, order, &body),
            reply if reply.unknown() => {}
            reply => self.unexpected(format!("cancelling pending order {order}: {reply:?}")),
        }
    }

    /// Records the cancel acknowledged with `body`, which must be the order, CANCELLED.
    fn cancelled(&mut self, buyer: i64, order: i64, body: &Value) {
        if field(body, "orderId") == order && body["status"] == "CANCELLED" {
            self.outcome.acks.push(Ack::Cancel { buyer, order });
        } else {
            self.unexpected(format!("the cancel of order {order} answered {body}"));
        }
    }

    /// Pays the order, refunds part of it, maybe a second part, maybe the rest; now and then
    /// asks for more than is left.
    async fn pay_and_refund(&mut self, buyer: i64, order: i64, total: i64) {
        let reply = self.post(Call::pay(buyer, order)).await;
        let Some(payment) = self.paid(buyer, order, &reply) else {
            if !reply.unknown() {
                self.unexpected(format!("paying pending order {order}: {reply:?}"));
            }
            return;
        };
        let mut refunding = Refunding {
            buyer,
            order,
            payment,
            left: total,
        };
        // A part (all of it when there is only one point).
        let first = (total > 1).then(|| 1 + self.rng.below(total as u64 - 1) as i64);
        if !self.refund(&mut refunding, first).await {
            return;
        }
        if refunding.left > 1 && self.rng.below(2) == 0 {
            let second = 1 + self.rng.below(refunding.left as u64 - 1) as i64;
            if !self.refund(&mut refunding, Some(second)).await {
                return;
            }
        }
        if refunding.left > 0 && self.rng.below(2) == 0 && !self.refund(&mut refunding, None).await
        {
            return;
        }
        if self.rng.below(OVER_REFUND_ONE_IN) == 0 {
            self.over_refund(&refunding).await;
        }
    }

    /// Refunds `amount` (all that is left when `None`); true when acknowledged as asked.
    async fn refund(&mut self, refunding: &mut Refunding, amount: Option<i64>) -> bool {
        let expected = amount.unwrap_or(refunding.left);
        let Refunding { payment, left, .. } = *refunding;
        let body = match self.post(refund_call(refunding, amount)).await {
            Reply::Success(body) => body,
            reply => {
                if !reply.unknown() {
                    let what = format!("refunding {expected} of payment {payment} ({left} left)");
                    self.unexpected(format!("{what}: {reply:?}"));
                }
                return false;
            }
        };
        let refunded = field(&body, "amount");
        self.outcome.acks.push(Ack::Refund {
            buyer: refunding.buyer,
            payment,
            refund: field(&body, "refundId"),
            amount: refunded,
            balance: field(&body, "balance"),
            version: field(&body, "version"),
        });
        let as_asked = refunded == expected
            && field(&body, "paymentId") == payment
            && field(&body, "orderId") == refunding.order;
        if !as_asked {
            let what = format!("refunding {expected} of payment {payment} ({left} left)");
            self.unexpected(format!("{what} answered {body}"));
            return false;
        }
        refunding.left -= refunded;
        true
    }

    /// Asks for a point more than is left of the payment: refused with 422.
    async fn over_refund(&mut self, refunding: &Refunding) {
        let amount = refunding.left + 1;
        let code = "refund_exceeds_payment";
        let call = refund_call(refunding, Some(amount)).refusal(422, code);
        let reply = self.post(call).await;
        if !(reply.unknown() || reply.is_refusal(422, code)) {
            let (payment, left) = (refunding.payment, refunding.left);
            let what = format!("refunding {amount} of payment {payment} ({left} left)");
            self.unexpected(format!("{what}: {reply:?}"));
        }
    }

    /// Pays and cancels the order at once: exactly one wins, the other is refused for the
    /// winner's reason (or its answer is lost).
    async fn race(&mut self, buyer: i64, order: i64) {
        let pay = Call::pay(buyer, order).refusal(409, "order_cancelled");
        let cancel = cancel_call(buyer, order).refusal(409, "order_already_paid");
        let (paid, cancelled) = futures::join!(self.send(&pay), self.send(&cancel));
        let paid = self.record(&pay, paid);
        let cancelled = self.record(&cancel, cancelled);
        self.paid(buyer, order, &paid);
        if let Reply::Success(body) = &cancelled {
            self.cancelled(buyer, order, body);
        }
        let sides = (
            side(&paid, "order_cancelled"),
            side(&cancelled, "order_already_paid"),
        );
        // Both won, or both lost: the order was paid and cancelled, or neither for the other.
        let unfair = matches!(
            sides,
            (Side::Wrong, _) | (_, Side::Wrong) | (Side::Won, Side::Won) | (Side::Lost, Side::Lost)
        );
        if unfair {
            self.unexpected(format!(
                "pay racing cancel of order {order}: {paid:?} and {cancelled:?}"
            ));
        }
    }
}

fn side(reply: &Reply, lost_code: &str) -> Side {
    match reply {
        Reply::Success(_) => Side::Won,
        reply if reply.is_refusal(409, lost_code) => Side::Lost,
        reply if reply.unknown() => Side::Unknown,
        _ => Side::Wrong,
    }
}

fn cancel_call(buyer: i64, order: i64) -> Call {
    let path = format!("/orders/{order}/cancel");
    Call::new(
        Request::Cancel,
        buyer,
        path,
        Some(json!({ "buyerId": buyer })),
    )
}

fn refund_call(refunding: &Refunding, amount: Option<i64>) -> Call {
    let mut body = json!({ "buyerId": refunding.buyer, "reason": "drill load" });
    if let Some(amount) = amount {
        body["amount"] = json!(amount);
    }
    let path = format!("/payments/{}/refunds", refunding.payment);
    Call::new(Request::Refund, refunding.buyer, path, Some(body))
}
