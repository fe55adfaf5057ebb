//! How often each kind of event happened in a run: the faults injected, and how the orders'
//! and payments' lifecycle requests (cancellations, refunds) were answered, so that a test can
//! tell a run that exercised them from one that only looked as if it had.

use std::fmt;

use super::actor::Response;
use crate::domain::buyer::{Command, Receipt, Refusal};

/// How often each kind of event happened in a run (the faults among them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub committed: u64,
    pub refused_writes: u64,
    pub failed_batches: u64,
    pub unknown_commits: u64,
    pub restarts: u64,
    pub second_writer: u64,
    pub key_retries: u64,
    pub key_reuses: u64,
    pub clock_jumps: u64,
    pub overloaded: u64,
    /// Refunds answered with their receipt (201).
    pub refunds: u64,
    /// Refunds the rules refused: past what is left of the payment, of a payment not the
    /// buyer's, past the balance limit.
    pub refunds_refused: u64,
    /// Cancellations answered with the cancelled order (200).
    pub cancels: u64,
    /// Cancellations refused: the order paid already, or not the buyer's.
    pub cancels_refused: u64,
    /// Payments refused because a cancellation won the race for their order.
    pub cancelled_payments: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.committed += other.committed;
        self.refused_writes += other.refused_writes;
        self.failed_batches += other.failed_batches;
        self.unknown_commits += other.unknown_commits;
        self.restarts += other.restarts;
        self.second_writer += other.second_writer;
        self.key_retries += other.key_retries;
        self.key_reuses += other.key_reuses;
        self.clock_jumps += other.clock_jumps;
        self.overloaded += other.overloaded;
        self.refunds += other.refunds;
        self.refunds_refused += other.refunds_refused;
        self.cancels += other.cancels;
        self.cancels_refused += other.cancels_refused;
        self.cancelled_payments += other.cancelled_payments;
    }

    /// Classifies the answer to `command` (other answers are counted as faults elsewhere).
    pub fn answered(&mut self, command: &Command, response: &Response) {
        use Refusal as R;
        let count = match (command, response) {
            (Command::Refund { .. }, Response::Receipt(Receipt::Refunded(_))) => &mut self.refunds,
            (
                Command::Refund { .. },
                Response::Refused(R::RefundExceedsPayment { .. } | R::PaymentNotFound | R::Rule(_)),
            ) => &mut self.refunds_refused,
            (Command::Cancel { .. }, Response::Receipt(Receipt::Cancelled(_))) => &mut self.cancels,
            (Command::Cancel { .. }, Response::Refused(R::OrderAlreadyPaid | R::OrderNotFound)) => {
                &mut self.cancels_refused
            }
            (Command::Pay { .. }, Response::Refused(R::OrderCancelled)) => {
                &mut self.cancelled_payments
            }
            _ => return,
        };
        *count += 1;
    }

    /// The fault kinds that did not happen at all.
    pub fn missing_faults(&self) -> Vec<&'static str> {
        missing(&[
            ("refused write", self.refused_writes),
            ("failed batch", self.failed_batches),
            ("commit with unknown outcome", self.unknown_commits),
            ("actor restart", self.restarts),
            ("second writer", self.second_writer),
            ("key retry", self.key_retries),
            ("key reuse", self.key_reuses),
        ])
    }

    /// The lifecycle answers that never happened: each of refunds and cancellations must be
    /// both accepted and refused, and a cancellation must win a race with a payment.
    pub fn missing_lifecycle(&self) -> Vec<&'static str> {
        missing(&[
            ("refund accepted", self.refunds),
            ("refund refused", self.refunds_refused),
            ("cancel accepted", self.cancels),
            ("cancel refused", self.cancels_refused),
            ("payment of a cancelled order", self.cancelled_payments),
        ])
    }
}

fn missing(kinds: &[(&'static str, u64)]) -> Vec<&'static str> {
    kinds
        .iter()
        .filter(|(_, count)| *count == 0)
        .map(|(name, _)| *name)
        .collect()
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} writes committed, {} refused by the writer; faults: {} failed batches, \
             {} commits with unknown outcome, {} actor restarts, {} second-writer changes, \
             {} key retries, {} key reuses, {} clock jumps, {} commit-queue refusals; \
             lifecycle: {} refunds ({} refused), {} cancellations ({} refused), \
             {} payments of cancelled orders",
            self.requests,
            self.committed,
            self.refused_writes,
            self.failed_batches,
            self.unknown_commits,
            self.restarts,
            self.second_writer,
            self.key_retries,
            self.key_reuses,
            self.clock_jumps,
            self.overloaded,
            self.refunds,
            self.refunds_refused,
            self.cancels,
            self.cancels_refused,
            self.cancelled_payments
        )
    }
}
