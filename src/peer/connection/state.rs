//! What a connection's handles and its tasks share: the calls waiting for
//! a reply, why it ended, and the frames on their way out.

use crate::peer::names::NodeName;
use crate::peer::term::{self, atom_term, Encoded, Pid, Reference, Term};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug)]
pub(crate) struct Inner {
    pub(super) node: NodeName,
    pub(super) self_pid: Pid,
    pub(super) ref_node: String,
    pub(super) creation: u32,
    pub(super) salt: u32,
    pub(super) next_ref: AtomicU64,
    pub(super) outgoing: mpsc::UnboundedSender<Outgoing>,
    pub(super) pending: Mutex<Pending>,
    /// Becomes true once, when the connection ends.
    pub(super) down: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(super) calls: HashMap<u64, oneshot::Sender<Term>>,
    /// Why the connection ended, once it has.
    pub(super) closed: Option<String>,
}

/// A frame on its way out: whole, or with a big shared middle part that
/// many connections send without copying it.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Whole(Vec<u8>),
    Parts(Vec<u8>, Encoded, Vec<u8>),
    /// Everything before it sent, the connection is closed our way.
    Goodbye,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// References carry the call's key in their first two words; the third is
    /// a per-connection salt so stray references are not mistaken for ours.
    pub(super) fn reference(&self, key: u64) -> Reference {
        Reference {
            node: self.ref_node.as_str().into(),
            id: vec![(key & 0x3_ffff) as u32, (key >> 18) as u32, self.salt],
            creation: self.creation,
        }
    }

    pub(super) fn key_of(&self, reference: &Reference) -> Option<u64> {
        match reference.id.as_slice() {
            [low, high, salt] if *salt == self.salt && reference.node.name == self.ref_node => {
                Some(u64::from(*low) | (u64::from(*high) << 18))
            }
            _ => None,
        }
    }

    pub(super) fn close(&self, reason: String) {
        let mut pending = self.lock();
        if pending.closed.is_none() {
            tracing::debug!(node = %self.node, %reason, "connection closed");
            pending.closed = Some(reason);
        }
        // Dropping the senders wakes every waiting call with the reason above.
        pending.calls.clear();
        drop(pending);
        self.down.send_replace(true);
    }

    /// Delivers `{Ref, Result}` to the call that made `Ref`.
    pub(super) fn deliver(&self, message: Term) {
        let Term::Tuple(t) = &message else {
            tracing::debug!(node = %self.node, message = %term::show(&message), "ignored a message");
            return;
        };
        let key = match t.elements.as_slice() {
            [Term::Reference(r), _] => self.key_of(r),
            _ => None,
        };
        let Some(key) = key else {
            tracing::debug!(node = %self.node, message = %term::show(&message), "ignored a message");
            return;
        };
        let sender = self.lock().calls.remove(&key);
        match (sender, message) {
            (Some(sender), Term::Tuple(mut t)) => {
                let result = t.elements.pop().unwrap_or_else(|| atom_term("undefined"));
                let _ = sender.send(result);
            }
            _ => tracing::debug!(node = %self.node, "a reply came for a call that gave up"),
        }
    }
}
