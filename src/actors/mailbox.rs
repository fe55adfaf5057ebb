//! Bounded, measured mailboxes.
//!
//! actix exposes neither a mailbox's length nor a hard bound (`do_send` ignores capacity and
//! every `Addr` clone gets an extra slot), so every actor's queue is counted here instead: a
//! sender reserves a [`Permit`] before it sends, and gets none when the queue is full. The permit
//! travels with the message and frees its slot when dropped, which also happens if the message
//! is never handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The queue of one actor (or of one kind of actor's single instance).
#[derive(Debug)]
pub struct Mailbox {
    depth: AtomicUsize,
    capacity: usize,
}

impl Mailbox {
    pub fn new(capacity: usize) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            depth: AtomicUsize::new(0),
            capacity: capacity.max(1),
        })
    }

    /// Messages queued now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A slot in the queue, or `None` when it is full.
    pub fn try_reserve(self: &Arc<Self>) -> Option<Permit> {
        let reserved = self
            .depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |depth| {
                (depth < self.capacity).then_some(depth + 1)
            })
            .is_ok();
        reserved.then(|| Permit {
            mailbox: Arc::clone(self),
            enqueued_at: Instant::now(),
        })
    }
}

/// One reserved slot; frees it when dropped.
#[derive(Debug)]
pub struct Permit {
    mailbox: Arc<Mailbox>,
    enqueued_at: Instant,
}

impl Permit {
    /// How long the message has waited since it was enqueued.
    pub fn waited(&self) -> Duration {
        self.enqueued_at.elapsed()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.mailbox.depth.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_mailbox_refuses_until_a_permit_is_dropped() {
        let mailbox = Mailbox::new(2);
        let first = mailbox.try_reserve().unwrap();
        let _second = mailbox.try_reserve().unwrap();
        assert!(mailbox.try_reserve().is_none());
        assert_eq!(mailbox.depth(), 2);
        drop(first);
        assert_eq!(mailbox.depth(), 1);
        assert!(mailbox.try_reserve().is_some());
    }
}
