//! What a buyer's state knows beside its balance — its Idempotency-Keys, orders and payments —,
//! allocated on first use. Most live buyers only ever charge without a key: they never hold the
//! books, and an actor is that much smaller for as long as it lives.

use std::sync::LazyLock;

use super::{KeyBook, OrderBook, PaymentBook};

#[derive(Debug, Default, Clone)]
pub(super) struct Books {
    pub keys: KeyBook,
    pub orders: OrderBook,
    pub payments: PaymentBook,
}

/// The [`Books`], boxed once something is written into them.
#[derive(Debug, Default, Clone)]
pub(super) struct LazyBooks(Option<Box<Books>>);

impl LazyBooks {
    /// For reading: empty books until written.
    pub fn get(&self) -> &Books {
        static EMPTY: LazyLock<Books> = LazyLock::new(Books::default);
        self.0.as_deref().unwrap_or(&EMPTY)
    }

    /// For writing: allocates them on first use.
    pub fn get_mut(&mut self) -> &mut Books {
        self.0.get_or_insert_with(Box::default)
    }

    /// Forgets the orders and payments known (not the keys); nothing to do if never written.
    pub fn forget_known(&mut self) {
        if let Some(books) = self.0.as_deref_mut() {
            books.orders.forget_known();
            books.payments.forget_known();
        }
    }
}
