//! One buyer's books in the database after a step: the ledger walked entry by entry (each
//! entry read by its kind), the orders and payments it accounts for, and every acknowledged
//! answer found in them.

use std::collections::BTreeMap;

use super::Books;
use crate::db::models::LedgerRow;
use crate::domain::buyer::Receipt;
use crate::domain::{BuyerId, EntryKind, OrderStatus};
use crate::sim::model::ModelDb;

/// What a buyer's ledger says moved for its orders and payments.
#[derive(Debug, Default)]
struct Moved {
    /// The payment entries of each order: (payment id, amount paid).
    payments: BTreeMap<i64, Vec<(i64, i64)>>,
    /// The refund entries, by refund id.
    refunds: BTreeMap<i64, LedgerRow>,
    /// What the refund entries gave back, by payment and by order (summed once: the checks
    /// run after every step).
    refunded_payments: BTreeMap<i64, i64>,
    refunded_orders: BTreeMap<i64, i64>,
}

impl Moved {
    fn refund(
        &mut self,
        refund_id: i64,
        order_id: i64,
        payment_id: i64,
        entry: &LedgerRow,
    ) -> Result<(), String> {
        if self.refunds.insert(refund_id, entry.clone()).is_some() {
            return Err(format!("refund {refund_id} has two ledger entries"));
        }
        *self.refunded_payments.entry(payment_id).or_default() += entry.amount;
        *self.refunded_orders.entry(order_id).or_default() += entry.amount;
        Ok(())
    }
}

/// The buyer's books in the database: versions 1..=n without gaps, balance == ledger sum
/// (payments negative, charges and refunds positive), within `0..=max_balance`; every
/// acknowledged answer is in them; each order's status agrees with what moved for it.
pub fn check_buyer(
    db: &ModelDb,
    books: &Books,
    buyer: BuyerId,
    max_balance: i64,
) -> Result<(), String> {
    let id = buyer.get();
    let (moved, sum) = walk_ledger(db, buyer)?;
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
    check_payments(db, buyer, &moved)?;
    check_orders(db, buyer, moved)
}

/// Walks the ledger: versions without gaps, each entry's balance the running sum, each entry
/// linked as its kind requires. Returns what moved, and the sum.
fn walk_ledger(db: &ModelDb, buyer: BuyerId) -> Result<(Moved, i64), String> {
    let mut moved = Moved::default();
    let mut sum: i64 = 0;
    for (index, entry) in db.ledger(buyer.get()).enumerate() {
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
        let links = (entry.order_id, entry.payment_id, entry.refund_id);
        match (entry.kind, links) {
            // A second writer's debit is a negative charge: a charge's sign is not checked.
            (EntryKind::Charge, (None, None, None)) => {}
            (EntryKind::Payment, (Some(order), Some(payment), None)) if entry.amount < 0 => {
                let paid = (payment, -entry.amount);
                moved.payments.entry(order).or_default().push(paid);
            }
            (EntryKind::Refund, (Some(order), Some(payment), Some(refund))) if entry.amount > 0 => {
                moved.refund(refund, order, payment, entry)?;
            }
            _ => return Err(format!("buyer {buyer}: malformed entry {entry:?}")),
        }
    }
    Ok((moved, sum))
}

/// Each payment of the buyer has its entry, and its refunded total is what its refund entries
/// gave back, within its amount; each refund entry has its refunds row, of the same payment.
fn check_payments(db: &ModelDb, buyer: BuyerId, moved: &Moved) -> Result<(), String> {
    let id = buyer.get();
    for payment in db.payments().filter(|payment| payment.buyer_id == id) {
        let entries = moved.payments.get(&payment.order_id);
        if !entries.is_some_and(|paid| paid.contains(&(payment.id, payment.amount))) {
            return Err(format!("payment {payment:?} has no matching ledger entry"));
        }
        let refunded = moved
            .refunded_payments
            .get(&payment.id)
            .copied()
            .unwrap_or(0);
        if refunded != payment.refunded_amount || refunded > payment.amount {
            return Err(format!(
                "payment {payment:?}: its refund entries give back {refunded}"
            ));
        }
    }
    let rows = db.refunds().filter(|refund| refund.buyer_id == id).count();
    if rows != moved.refunds.len() {
        return Err(format!(
            "buyer {buyer}: {rows} refunds, {} refund entries",
            moved.refunds.len()
        ));
    }
    for (refund_id, entry) in &moved.refunds {
        let row = db.find_refund(*refund_id);
        let matches = row.is_some_and(|row| {
            row.buyer_id == id
                && Some(row.payment_id) == entry.payment_id
                && Some(row.order_id) == entry.order_id
                && row.amount == entry.amount
                && row.balance_after == entry.balance_after
                && row.ledger_version == entry.version
        });
        let payment = entry.payment_id.and_then(|p| db.find_payment(p));
        let of_payment =
            payment.is_some_and(|p| p.buyer_id == id && Some(p.order_id) == entry.order_id);
        if !matches || !of_payment {
            return Err(format!(
                "refund entry {entry:?} has refund {row:?} of payment {payment:?}"
            ));
        }
    }
    Ok(())
}

/// Each order's status agrees with what moved for it: a PENDING or CANCELLED order has no
/// payment and no refund; a PAID one one payment of its price and nothing refunded; a
/// PARTIALLY_REFUNDED one some of it refunded, a REFUNDED one all of it.
fn check_orders(db: &ModelDb, buyer: BuyerId, mut moved: Moved) -> Result<(), String> {
    for order in db.orders_of(buyer.get()) {
        let payments = moved.payments.remove(&order.id).unwrap_or_default();
        let refunded = moved.refunded_orders.get(&order.id).copied().unwrap_or(0);
        let paid = match payments.as_slice() {
            [] => None,
            [(_, amount)] => Some(*amount),
            _ => {
                return Err(format!(
                    "order {} is paid {} times",
                    order.id,
                    payments.len()
                ));
            }
        };
        let consistent = match order.status {
            OrderStatus::Pending => paid.is_none() && order.cancelled_at.is_none(),
            OrderStatus::Cancelled => paid.is_none() && order.cancelled_at.is_some(),
            OrderStatus::Paid => refunded == 0,
            OrderStatus::PartiallyRefunded => paid.is_some_and(|a| 0 < refunded && refunded < a),
            OrderStatus::Refunded => paid == Some(refunded),
        };
        let price_paid = paid.is_none_or(|amount| amount == order.total_price);
        let paid_status = paid.is_some() == order.status.is_paid();
        if !consistent || !price_paid || !paid_status || (paid.is_none() && refunded != 0) {
            return Err(format!(
                "order {order:?} with payments {payments:?} and {refunded} refunded"
            ));
        }
    }
    match moved.payments.into_keys().next() {
        Some(order) => Err(format!(
            "buyer {buyer} paid order {order}, not one of theirs"
        )),
        None => Ok(()),
    }
}

/// Every acknowledged movement is the ledger entry at its version (and a refund's, its refunds
/// row); every acknowledged cancellation's order is CANCELLED.
fn check_acknowledged(db: &ModelDb, books: &Books, buyer: BuyerId) -> Result<(), String> {
    let id = buyer.get();
    let mut entries = db.ledger(id);
    for ((_, version), (request, receipt)) in books.acked.range((id, i64::MIN)..=(id, i64::MAX)) {
        let entry = entries
            .by_ref()
            .find(|entry| entry.version == *version)
            .ok_or_else(|| format!("request {request}'s acknowledged version {version} of buyer {buyer} is not in the ledger"))?;
        if !receipt_matches(db, receipt, entry) {
            return Err(format!(
                "request {request}'s receipt {receipt:?} does not match {entry:?}"
            ));
        }
    }
    for ((_, order_id), request) in books.cancelled.range((id, i64::MIN)..=(id, i64::MAX)) {
        let order = db.find_order(*order_id);
        if !order.is_some_and(|o| o.buyer_id == id && o.status == OrderStatus::Cancelled) {
            return Err(format!(
                "request {request} was answered order {order_id} cancelled, but it is {order:?}"
            ));
        }
    }
    Ok(())
}

/// Whether `entry` (and for a refund its refunds row) is what `receipt` acknowledged.
fn receipt_matches(db: &ModelDb, receipt: &Receipt, entry: &LedgerRow) -> bool {
    let links = (entry.order_id, entry.payment_id, entry.refund_id);
    let (kind, amount, balance, expected) = match receipt {
        Receipt::Charged(charge) => (
            EntryKind::Charge,
            charge.amount.get(),
            charge.balance,
            (None, None, None),
        ),
        Receipt::Paid(payment) => (
            EntryKind::Payment,
            -payment.amount.get(),
            payment.balance,
            (
                Some(payment.order_id.get()),
                Some(payment.payment_id.get()),
                None,
            ),
        ),
        Receipt::Refunded(refund) => {
            let row = db.find_refund(refund.refund_id.get());
            let stored = row.is_some_and(|row| {
                row.amount == refund.amount.get()
                    && row.reason == refund.reason
                    && row.balance_after == refund.balance.get()
                    && row.ledger_version == refund.version
            });
            if !stored {
                return false;
            }
            (
                EntryKind::Refund,
                refund.amount.get(),
                refund.balance,
                (
                    Some(refund.order_id.get()),
                    Some(refund.payment_id.get()),
                    Some(refund.refund_id.get()),
                ),
            )
        }
        _ => unreachable!("only movements are acknowledged by version"),
    };
    entry.kind == kind
        && entry.amount == amount
        && entry.balance_after == balance.get()
        && links == expected
}
