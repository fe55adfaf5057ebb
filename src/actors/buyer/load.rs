//! Reading what a command needs from the database before the state decides it.

use actix::prelude::*;

use super::{BuyerActor, Command, Refused, Reply};
use crate::actors::errors::BuyerError;
use crate::actors::mailbox::Handling;
use crate::db::queries;
use crate::db::writer::{known_order, known_payment, stored_balance};
use crate::domain::IdempotencyKey;
use crate::domain::buyer::{KnownOrder, KnownPayment, Needs, StoredBalance};
use crate::metrics::Outcome;

/// What was read: the balance row (outer `None`: not asked for), an order and a payment.
type Loaded = (
    Option<Option<StoredBalance>>,
    Option<(crate::domain::OrderId, KnownOrder)>,
    Option<(crate::domain::PaymentId, KnownPayment)>,
);

impl BuyerActor {
    /// Loads the buyer's balance and/or an order, then executes the command. The reads block
    /// this buyer's mailbox (AtomicResponse) so later commands see their result.
    pub(super) fn load_then_execute(
        &mut self,
        command: Command,
        key: Option<IdempotencyKey>,
        needs: Needs,
        reply: Reply,
        handling: Handling,
    ) -> AtomicResponse<Self, ()> {
        let buyer = self.state.buyer();
        let db = self.deps.db.clone();
        let load = async move {
            db.run(move |conn| {
                let balance = match needs.balance {
                    true => Some(queries::find_balance(conn, buyer.get())?),
                    false => None,
                };
                let order = match needs.order {
                    Some(order_id) => {
                        let row = queries::find_order(conn, order_id.get())?;
                        Some((order_id, known_order(buyer, row.as_ref())))
                    }
                    None => None,
                };
                let payment = match needs.payment {
                    Some(payment_id) => {
                        let row = queries::find_payment(conn, payment_id.get())?;
                        Some((payment_id, known_payment(buyer, row.as_ref())))
                    }
                    None => None,
                };
                let balance = balance.map(|row| row.as_ref().map(stored_balance));
                Ok::<Loaded, _>((balance, order, payment))
            })
            .await
        };
        AtomicResponse::new(Box::pin(load.into_actor(self).map(
            move |loaded, act, ctx| match loaded {
                Ok((balance, order, payment)) => {
                    if let Some(balance) = balance {
                        let (token, _) = uuid::Uuid::new_v4().as_u64_pair();
                        act.state.install(balance, token as i64);
                    }
                    if let Some((order_id, known)) = order {
                        act.state.learn_order(order_id, known);
                    }
                    if let Some((payment_id, known)) = payment {
                        act.state.learn_payment(payment_id, known);
                    }
                    match act.execute(ctx, &command, key.as_ref(), reply) {
                        Ok(()) => handling.finish(Outcome::Ok),
                        Err(refused) => Self::refuse(refused, handling),
                    }
                    act.publish_busy();
                }
                Err(error) => {
                    let error = BuyerError::from_db(error);
                    Self::refuse(Refused { error, reply }, handling);
                    act.publish_busy();
                }
            },
        )))
    }
}
