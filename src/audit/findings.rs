//! What the audit can find: one [`FindingKind`] per broken invariant, its stable name (the
//! `kind` of `--json`), and the bounded list the findings are collected in.

use std::collections::BTreeMap;

use serde::Serialize;

/// One broken invariant. The serialized name (`balance_mismatch`, ...) is part of the `--json`
/// output and never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    // The books of one buyer.
    BalanceMismatch,
    VersionMismatch,
    VersionGap,
    BalanceOutOfBounds,
    BalanceWithoutLedger,
    LedgerWithoutBalance,
    LedgerChainBroken,
    LedgerEntryMalformed,
    // Payments and their orders.
    PaymentLedgerMismatch,
    PaymentOrderMissing,
    PaymentOrderMismatch,
    PaymentOrderNotPaid,
    LedgerPaymentMissing,
    OrderPaidTwice,
    PaidOrderWithoutPayment,
    UnpaidOrderWithPayment,
    OrderTimestampsMismatch,
    OrderStatusRefundMismatch,
    // Refunds.
    RefundsSumMismatch,
    RefundExceedsPayment,
    RefundLedgerMismatch,
    RefundPaymentMismatch,
    LedgerRefundMissing,
    // Events.
    EventMissing,
    EventOrphan,
    EventDuplicate,
    EventUnreadable,
    EventDead,
}

impl FindingKind {
    pub const ALL: [FindingKind; 28] = [
        FindingKind::BalanceMismatch,
        FindingKind::VersionMismatch,
        FindingKind::VersionGap,
        FindingKind::BalanceOutOfBounds,
        FindingKind::BalanceWithoutLedger,
        FindingKind::LedgerWithoutBalance,
        FindingKind::LedgerChainBroken,
        FindingKind::LedgerEntryMalformed,
        FindingKind::PaymentLedgerMismatch,
        FindingKind::PaymentOrderMissing,
        FindingKind::PaymentOrderMismatch,
        FindingKind::PaymentOrderNotPaid,
        FindingKind::LedgerPaymentMissing,
        FindingKind::OrderPaidTwice,
        FindingKind::PaidOrderWithoutPayment,
        FindingKind::UnpaidOrderWithPayment,
        FindingKind::OrderTimestampsMismatch,
        FindingKind::OrderStatusRefundMismatch,
        FindingKind::RefundsSumMismatch,
        FindingKind::RefundExceedsPayment,
        FindingKind::RefundLedgerMismatch,
        FindingKind::RefundPaymentMismatch,
        FindingKind::LedgerRefundMissing,
        FindingKind::EventMissing,
        FindingKind::EventOrphan,
        FindingKind::EventDuplicate,
        FindingKind::EventUnreadable,
        FindingKind::EventDead,
    ];

    /// The stable name, as `--json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::BalanceMismatch => "balance_mismatch",
            FindingKind::VersionMismatch => "version_mismatch",
            FindingKind::VersionGap => "version_gap",
            FindingKind::BalanceOutOfBounds => "balance_out_of_bounds",
            FindingKind::BalanceWithoutLedger => "balance_without_ledger",
            FindingKind::LedgerWithoutBalance => "ledger_without_balance",
            FindingKind::LedgerChainBroken => "ledger_chain_broken",
            FindingKind::LedgerEntryMalformed => "ledger_entry_malformed",
            FindingKind::PaymentLedgerMismatch => "payment_ledger_mismatch",
            FindingKind::PaymentOrderMissing => "payment_order_missing",
            FindingKind::PaymentOrderMismatch => "payment_order_mismatch",
            FindingKind::PaymentOrderNotPaid => "payment_order_not_paid",
            FindingKind::LedgerPaymentMissing => "ledger_payment_missing",
            FindingKind::OrderPaidTwice => "order_paid_twice",
            FindingKind::PaidOrderWithoutPayment => "paid_order_without_payment",
            FindingKind::UnpaidOrderWithPayment => "unpaid_order_with_payment",
            FindingKind::OrderTimestampsMismatch => "order_timestamps_mismatch",
            FindingKind::OrderStatusRefundMismatch => "order_status_refund_mismatch",
            FindingKind::RefundsSumMismatch => "refunds_sum_mismatch",
            FindingKind::RefundExceedsPayment => "refund_exceeds_payment",
            FindingKind::RefundLedgerMismatch => "refund_ledger_mismatch",
            FindingKind::RefundPaymentMismatch => "refund_payment_mismatch",
            FindingKind::LedgerRefundMissing => "ledger_refund_missing",
            FindingKind::EventMissing => "event_missing",
            FindingKind::EventOrphan => "event_orphan",
            FindingKind::EventDuplicate => "event_duplicate",
            FindingKind::EventUnreadable => "event_unreadable",
            FindingKind::EventDead => "event_dead",
        }
    }

    /// Whether the kind is about the outbox rather than the money itself.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            FindingKind::EventMissing
                | FindingKind::EventOrphan
                | FindingKind::EventDuplicate
                | FindingKind::EventUnreadable
                | FindingKind::EventDead
        )
    }
}

/// One broken invariant, with the ids of what breaks it (those that apply) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    pub buyer_id: Option<i64>,
    pub order_id: Option<i64>,
    pub payment_id: Option<i64>,
    pub refund_id: Option<i64>,
    /// A ledger version (of a ledger entry, or the charge an event is missing for).
    pub version: Option<i64>,
    /// The outbox row (`seq`) of an event finding.
    pub event_seq: Option<i64>,
    pub detail: String,
}

impl Finding {
    pub fn new(kind: FindingKind, buyer_id: Option<i64>, detail: String) -> Finding {
        Finding {
            kind,
            buyer_id,
            order_id: None,
            payment_id: None,
            refund_id: None,
            version: None,
            event_seq: None,
            detail,
        }
    }

    pub fn order(mut self, id: Option<i64>) -> Finding {
        self.order_id = id;
        self
    }

    pub fn payment(mut self, id: Option<i64>) -> Finding {
        self.payment_id = id;
        self
    }

    pub fn refund(mut self, id: Option<i64>) -> Finding {
        self.refund_id = id;
        self
    }

    pub fn version(mut self, version: Option<i64>) -> Finding {
        self.version = version;
        self
    }

    pub fn event(mut self, seq: Option<i64>) -> Finding {
        self.event_seq = seq;
        self
    }

    /// The report's order: by buyer (a buyer's findings together, as chunks are ranges of
    /// buyers), then kind, the ids, the detail; total, so equal reports list equally.
    #[allow(clippy::type_complexity)]
    pub fn sort_key(&self) -> (Option<i64>, FindingKind, [Option<i64>; 5], &str) {
        let ids = [
            self.order_id,
            self.payment_id,
            self.refund_id,
            self.version,
            self.event_seq,
        ];
        (self.buyer_id, self.kind, ids, &self.detail)
    }
}

/// Findings as they are collected: every one counted by kind, and the first `limit` in
/// [`Finding::sort_key`] order kept (so a database broken everywhere cannot exhaust memory or
/// flood the output, and the kept ones do not depend on the order chunks finished in).
#[derive(Debug, Clone)]
pub struct Findings {
    limit: usize,
    /// Sorted and at most `limit` long once [`Findings::settle`] ran (the audit's report is).
    pub kept: Vec<Finding>,
    pub counts: BTreeMap<FindingKind, u64>,
}

impl Findings {
    pub fn new(limit: usize) -> Findings {
        Findings {
            limit,
            kept: Vec::new(),
            counts: FindingKind::ALL.iter().map(|kind| (*kind, 0)).collect(),
        }
    }

    pub fn push(&mut self, finding: Finding) {
        *self.counts.entry(finding.kind).or_default() += 1;
        self.kept.push(finding);
        // Sorting only when twice the limit piled up keeps pushes amortised O(log limit).
        if self.kept.len() > self.limit.saturating_mul(2).max(1) {
            self.settle();
        }
    }

    /// Adds another collection's findings (another chunk's): the same result whatever the
    /// order collections are merged in.
    pub fn merge(&mut self, other: Findings) {
        for (kind, n) in other.counts {
            *self.counts.entry(kind).or_default() += n;
        }
        self.kept.extend(other.kept);
        self.settle();
    }

    /// Sorts the kept findings and drops those past the limit.
    pub fn settle(&mut self) {
        self.kept.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        self.kept.truncate(self.limit);
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Whether findings were counted but not kept.
    pub fn truncated(&self) -> bool {
        self.total() > self.kept.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_names_and_all_lists_every_kind_once() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in FindingKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
            assert!(seen.insert(kind), "{kind:?} listed twice");
        }
    }

    #[test]
    fn findings_past_the_limit_are_counted_but_not_kept() {
        let mut findings = Findings::new(1);
        for buyer in [3, 1, 2] {
            findings.push(Finding::new(
                FindingKind::VersionGap,
                Some(buyer),
                "x".into(),
            ));
        }
        findings.settle();
        assert_eq!(findings.kept.len(), 1);
        assert_eq!(
            findings.kept[0].buyer_id,
            Some(1),
            "the first in buyer order is kept"
        );
        assert_eq!(findings.counts[&FindingKind::VersionGap], 3);
        assert!(findings.truncated());
    }

    #[test]
    fn merging_in_any_order_keeps_the_same_findings() {
        let chunk = |buyers: &[i64]| {
            let mut findings = Findings::new(2);
            for buyer in buyers {
                let detail = format!("buyer {buyer}");
                findings.push(Finding::new(
                    FindingKind::BalanceMismatch,
                    Some(*buyer),
                    detail,
                ));
            }
            findings
        };
        let mut forward = Findings::new(2);
        forward.merge(chunk(&[1, 2, 3]));
        forward.merge(chunk(&[7, 5]));
        let mut backward = Findings::new(2);
        backward.merge(chunk(&[7, 5]));
        backward.merge(chunk(&[1, 2, 3]));
        assert_eq!(forward.kept, backward.kept);
        assert_eq!(forward.counts, backward.counts);
        assert_eq!(forward.total(), 5);
        let buyers: Vec<_> = forward.kept.iter().map(|f| f.buyer_id).collect();
        assert_eq!(buyers, vec![Some(1), Some(2)]);
    }
}
