//! Plain messages between this end and a node's processes, outside any
//! call: one sent to a registered name, and one a node process sends back
//! to an address this end handed it (`{Pid, Ref}`; it sends `{Ref, Term}`
//! to `Pid`). Together they let a step running on the node wait for a
//! word from this end, and say when it is ready for it, without a call of
//! its own: no `rex`, no evaluator, a few dozen bytes.

use super::connection::{Connection, Reply, WaitError};
use super::error::CallError;
use super::term::Term;
use std::time::Duration;

/// One message on its way from a node process ([`Connection::listen`]).
#[derive(Debug)]
pub struct Listener {
    node: String,
    reply: Reply,
}

impl Connection {
    /// An address `{Pid, Ref}` a node process may send one `{Ref, Term}`
    /// to, and the listener that waits for that message.
    pub fn listen(&self) -> Result<(Term, Listener), CallError> {
        let node = self.node().to_string();
        match self.reserve_reply() {
            Ok((address, reply)) => Ok((address, Listener { node, reply })),
            Err(detail) => Err(CallError::Disconnected { node, detail }),
        }
    }

    /// Sends `message` to the process registered as `name` on the node.
    /// Nothing says whether it was there to take it.
    pub fn send(&self, name: &str, message: Term) -> Result<(), CallError> {
        self.send_to_name(name, message)
            .map_err(|detail| CallError::Disconnected {
                node: self.node().to_string(),
                detail,
            })
    }
}

impl Listener {
    /// The same listener, naming `node` in its errors.
    pub(crate) fn naming(mut self, node: &str) -> Self {
        self.node = node.to_owned();
        self
    }

    /// The message's `Term`, if it comes within `limit`; `what` names, in
    /// a timeout's error, what was to send it.
    pub async fn message(self, limit: Duration, what: &str) -> Result<Term, CallError> {
        match self.reply.wait(limit).await {
            Ok(term) => Ok(term),
            Err(WaitError::TimedOut) => Err(CallError::Timeout {
                node: self.node,
                function: what.to_owned(),
                secs: limit.as_secs_f64(),
            }),
            Err(WaitError::Closed(detail)) => Err(CallError::Disconnected {
                node: self.node,
                detail,
            }),
        }
    }
}
