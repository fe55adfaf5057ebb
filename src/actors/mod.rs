//! The actors: one BuyerActor per active buyer, the PaymentCoordinator that group-commits their
//! writes, the registry that creates and supervises buyer actors, and the counted mailboxes.

pub mod buyer;
pub mod coordinator;
mod errors;
pub mod live;
pub mod mailbox;
pub mod publisher;
pub mod registry;

pub use buyer::BuyerDeps;
pub use buyer::Command;
pub use coordinator::{CoordinatorHandle, CoordinatorOptions, PaymentCoordinator};
pub use errors::{BuyerError, OverloadReason, Receipt, StoredResponse};
pub use registry::BuyerRegistry;
