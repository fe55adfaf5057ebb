use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actors::errors::{BuyerError, Receipt};
use crate::actors::mailbox::Permit;
use crate::domain::IdempotencyKey;
pub use crate::domain::buyer::Command;

/// Where a command's answer goes: the HTTP request waiting for it. A refusal is sent by the
/// actor at once; an accepted write's answer once it has committed (or failed).
pub type Reply = oneshot::Sender<Result<Receipt, BuyerError>>;

/// A command in a buyer's mailbox.
pub struct BuyerCommand {
    pub command: Command,
    pub idempotency_key: Option<IdempotencyKey>,
    pub permit: Permit,
    /// Set when handling starts: a command that never started may be resent to a new actor.
    pub started: Arc<AtomicBool>,
    pub reply: Reply,
}

impl Message for BuyerCommand {
    type Result = ();
}
