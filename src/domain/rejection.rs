/// Why a request was refused with 503 (retry later): the `reason` label of
/// `payment_engine_rejections_total`, and the spelling the README documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionReason {
    /// `MAX_IN_FLIGHT_REQUESTS` requests were being served already.
    InFlightLimit,
    BuyerMailboxFull,
    CommitQueueFull,
    DatabaseUnavailable,
    WriteConflict,
    RequestTimeout,
    ShuttingDown,
    /// The engine owning the buyer's shard could not be reached; its lease expires within
    /// `LEASE_TTL_MS` and the shard is then claimed elsewhere.
    OwnerUnavailable,
    /// Answered to a forwarded request only: this engine does not own the shard (it moved);
    /// the forwarding engine routes it again.
    NotOwner,
}

impl RejectionReason {
    /// Every reason, in the order the README lists them.
    pub const ALL: [RejectionReason; 9] = [
        RejectionReason::InFlightLimit,
        RejectionReason::BuyerMailboxFull,
        RejectionReason::CommitQueueFull,
        RejectionReason::DatabaseUnavailable,
        RejectionReason::WriteConflict,
        RejectionReason::RequestTimeout,
        RejectionReason::ShuttingDown,
        RejectionReason::OwnerUnavailable,
        RejectionReason::NotOwner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::InFlightLimit => "in_flight_limit",
            RejectionReason::BuyerMailboxFull => "buyer_mailbox_full",
            RejectionReason::CommitQueueFull => "commit_queue_full",
            RejectionReason::DatabaseUnavailable => "database_unavailable",
            RejectionReason::WriteConflict => "write_conflict",
            RejectionReason::RequestTimeout => "request_timeout",
            RejectionReason::ShuttingDown => "shutting_down",
            RejectionReason::OwnerUnavailable => "owner_unavailable",
            RejectionReason::NotOwner => "not_owner",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_with_its_own_spelling() {
        let mut spellings: Vec<&str> = RejectionReason::ALL.iter().map(|r| r.as_str()).collect();
        spellings.sort_unstable();
        spellings.dedup();
        assert_eq!(spellings.len(), RejectionReason::ALL.len());
    }
}
