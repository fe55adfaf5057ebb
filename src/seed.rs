//! Demo data with the id ranges of the original k6 scripts: buyers 1..7, orders 1..107 (all
//! PENDING), and one paid, refundable order per buyer (orders 108..114, payments 1..7).

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;

use crate::db::models::{BalanceRow, LedgerRow, NewOutboxEvent, OrderRow, PaymentRow};
use crate::db::queries;
use crate::db::schema::{balances, ledger_entries, orders, outbox_events, payments};
use crate::domain::{BuyerId, EntryKind, OrderId, OrderStatus, PaymentId, PaymentReceipt, Points};
use crate::events;

pub const DEMO_BUYERS: i64 = 7;
/// The pending demo orders are 1..=DEMO_ORDERS.
pub const DEMO_ORDERS: i64 = 107;
pub const DEMO_STARTING_BALANCE: i64 = 1_000_000;

/// The buyer a pending demo order belongs to.
pub fn demo_order_buyer(order_id: i64) -> i64 {
    (order_id - 1) % DEMO_BUYERS + 1
}

/// The total of a pending demo order.
pub fn demo_order_total(order_id: i64) -> i64 {
    1000 + (order_id % 10) * 100
}

/// The paid demo order of `buyer` (1..=7): order DEMO_ORDERS + buyer, paid by payment `buyer`.
pub fn demo_paid_order(buyer: i64) -> i64 {
    DEMO_ORDERS + buyer
}

/// The total of buyer `buyer`'s paid demo order, refundable in full.
pub fn demo_paid_total(buyer: i64) -> i64 {
    2_000 + buyer * 100
}

/// One demo buyer as seeded: charged DEMO_STARTING_BALANCE (version 1), then paid its paid demo
/// order (version 2).
struct DemoBuyer {
    id: i64,
    total: i64,
    at: DateTime<Utc>,
}

impl DemoBuyer {
    fn balance(&self) -> i64 {
        DEMO_STARTING_BALANCE - self.total
    }

    fn balance_row(&self) -> BalanceRow {
        BalanceRow {
            buyer_id: self.id,
            balance: self.balance(),
            version: 2,
            fence_token: 0,
            updated_at: self.at.naive_utc(),
        }
    }

    fn entries(&self) -> [LedgerRow; 2] {
        let entry = |version, kind, amount, balance_after, paid: bool| LedgerRow {
            buyer_id: self.id,
            version,
            kind,
            amount,
            balance_after,
            order_id: paid.then(|| demo_paid_order(self.id)),
            payment_id: paid.then_some(self.id),
            refund_id: None,
            created_at: self.at.naive_utc(),
        };
        let start = DEMO_STARTING_BALANCE;
        [
            entry(1, EntryKind::Charge, start, start, false),
            entry(2, EntryKind::Payment, -self.total, self.balance(), true),
        ]
    }

    fn paid_order(&self) -> OrderRow {
        OrderRow {
            id: demo_paid_order(self.id),
            buyer_id: self.id,
            total_price: self.total,
            status: OrderStatus::Paid,
            created_at: self.at.naive_utc(),
            paid_at: Some(self.at.naive_utc()),
            cancelled_at: None,
        }
    }

    fn payment(&self) -> PaymentRow {
        PaymentRow {
            id: self.id,
            order_id: demo_paid_order(self.id),
            buyer_id: self.id,
            amount: self.total,
            refunded_amount: 0,
            balance_after: self.balance(),
            ledger_version: 2,
            paid_at: self.at.naive_utc(),
        }
    }

    /// The payment's `payment.completed` event, as the engine would have written it.
    fn event(&self) -> anyhow::Result<NewOutboxEvent> {
        let receipt = PaymentReceipt {
            payment_id: PaymentId::try_from(self.id)?,
            order_id: OrderId::try_from(demo_paid_order(self.id))?,
            buyer_id: BuyerId::try_from(self.id)?,
            amount: Points::new(self.total),
            balance: Points::new(self.balance()),
            version: 2,
            paid_at: self.at,
        };
        Ok(events::payment_completed(&receipt, uuid::Uuid::now_v7()))
    }
}

/// Loads the demo data unless a buyer, order or payment with its ids already exists (then it
/// does nothing and says so). Returns whether it seeded.
pub fn seed_demo_data(conn: &mut MysqlConnection) -> anyhow::Result<bool> {
    // The database's precision (microseconds), so the event and the rows agree.
    let at = Utc::now().trunc_subsecs(6);
    let buyers: Vec<DemoBuyer> = (1..=DEMO_BUYERS)
        .map(|id| DemoBuyer {
            id,
            total: demo_paid_total(id),
            at,
        })
        .collect();
    let events = buyers
        .iter()
        .map(DemoBuyer::event)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let seeded = conn.transaction::<bool, diesel::result::Error, _>(|conn| {
        if demo_ids_taken(conn)? {
            return Ok(false);
        }
        let mut demo_orders: Vec<OrderRow> = (1..=DEMO_ORDERS)
            .map(|id| OrderRow {
                id,
                buyer_id: demo_order_buyer(id),
                total_price: demo_order_total(id),
                status: OrderStatus::Pending,
                created_at: at.naive_utc(),
                paid_at: None,
                cancelled_at: None,
            })
            .collect();
        demo_orders.extend(buyers.iter().map(DemoBuyer::paid_order));
        let entries: Vec<LedgerRow> = buyers.iter().flat_map(DemoBuyer::entries).collect();
        diesel::insert_into(balances::table)
            .values(
                buyers
                    .iter()
                    .map(DemoBuyer::balance_row)
                    .collect::<Vec<_>>(),
            )
            .execute(conn)?;
        diesel::insert_into(ledger_entries::table)
            .values(&entries)
            .execute(conn)?;
        diesel::insert_into(orders::table)
            .values(&demo_orders)
            .execute(conn)?;
        diesel::insert_into(payments::table)
            .values(buyers.iter().map(DemoBuyer::payment).collect::<Vec<_>>())
            .execute(conn)?;
        diesel::insert_into(outbox_events::table)
            .values(&events)
            .execute(conn)?;
        queries::advance_sequence_past(conn, "orders", demo_paid_order(DEMO_BUYERS))?;
        queries::advance_sequence_past(conn, "payments", DEMO_BUYERS)?;
        Ok(true)
    })?;
    Ok(seeded)
}

fn demo_ids_taken(conn: &mut MysqlConnection) -> QueryResult<bool> {
    let buyers: i64 = balances::table
        .filter(balances::buyer_id.between(1, DEMO_BUYERS))
        .count()
        .get_result(conn)?;
    let orders: i64 = orders::table
        .filter(orders::id.between(1, demo_paid_order(DEMO_BUYERS)))
        .count()
        .get_result(conn)?;
    let paid: i64 = payments::table
        .filter(payments::id.between(1, DEMO_BUYERS))
        .count()
        .get_result(conn)?;
    Ok(buyers + orders + paid > 0)
}
