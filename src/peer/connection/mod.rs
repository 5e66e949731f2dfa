//! One live distribution connection: a cloneable handle plus two tasks that
//! own the socket.
//!
//! The reader task reads frames in order, answers ticks, hands replies to the
//! call waiting for their reference, answers `net_kernel`'s `is_auth` (so a
//! ping to us says `pong`) and logs anything else instead of dying on it.
//! The writer task batches outgoing frames (any number of requests may be in
//! flight) and sends a tick every quarter of the tick time. When the socket
//! fails, every pending call fails at once with the reason; nothing hangs.

mod state;
mod tasks;

pub(crate) use state::Outgoing;
pub use tasks::Ticks;

use crate::peer::frame::encode_frame;
use crate::peer::names::NodeName;
use crate::peer::stream::DistStream;
use crate::peer::term::{self, atom_term, tuple, Encoded, Pid, Term};
use erl_dist::message::Message;
use state::{Inner, Pending};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tasks::Tasks;
use tokio::sync::{mpsc, oneshot};

/// A handle on a connection; clones share it. The connection closes when
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: Arc<Inner>,
    _closer: Arc<Closer>,
}

/// Dropped with the last handle: stops the tasks.
#[derive(Debug)]
struct Closer {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Connection {
    /// Takes over a socket that has completed the handshake with `node`.
    pub(crate) fn start(
        stream: DistStream,
        node: NodeName,
        me: &NodeName,
        creation: u32,
        ticks: Ticks,
    ) -> Self {
        let (outgoing, to_write) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let inner = Arc::new(Inner {
            self_pid: Pid::new(me.to_string(), 1, 0, creation),
            ref_node: me.to_string(),
            creation,
            salt: crate::random::u64() as u32,
            next_ref: AtomicU64::new(1),
            node,
            outgoing,
            pending: Mutex::new(Pending::default()),
            down: tokio::sync::watch::Sender::new(false),
        });
        let tasks = Tasks {
            inner: inner.clone(),
            to_write,
            stop: stop_rx,
            ticks,
        };
        match stream {
            // TCP splits into halves with no lock between them.
            DistStream::Plain(tcp) => {
                let _ = tcp.set_nodelay(true);
                let (read_half, write_half) = tcp.into_split();
                tasks.spawn(read_half, write_half);
            }
            DistStream::Tls(tls) => {
                let _ = tls.get_ref().0.set_nodelay(true);
                let (read_half, write_half) = tokio::io::split(*tls);
                tasks.spawn(read_half, write_half);
            }
        }
        Connection {
            inner,
            _closer: Arc::new(Closer {
                stop: Some(stop_tx),
            }),
        }
    }

    /// The node at the other end.
    pub fn node(&self) -> &NodeName {
        &self.inner.node
    }

    /// This end's node name, as the node at the other end knows it.
    pub fn local_node(&self) -> &str {
        &self.inner.self_pid.node.name
    }

    /// Why the connection ended, or `None` while it is up.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.lock().closed.clone()
    }

    /// Waits (up to `limit`) until everything sent before has reached the
    /// node, then closes the connection. A message sent just before a
    /// process exits (a lock's release) is otherwise lost when the exit
    /// resets the socket over a link that had to resend it. The proof is
    /// an answer: the node's `net_kernel` answers `is_auth` at once, in a
    /// process that is always there, and one connection delivers in
    /// order, so what was sent before has arrived. (Waiting for the node
    /// to close its end took up to 20 ms of a deploy here: a node that
    /// purges as the tool goes is slow to.)
    pub async fn goodbye(&self, limit: Duration) {
        let request = tuple(vec![atom_term("is_auth"), atom_term(self.local_node())]);
        if let Ok(reply) = self.gen_call("net_kernel", request) {
            crate::timings::trip(&self.node().to_string());
            let _ = reply.wait(limit).await;
        }
        let _ = self.inner.outgoing.send(Outgoing::Goodbye);
    }

    /// Closes the connection once everything sent before is on its way,
    /// and waits (up to `limit`) until the node has closed its end: then
    /// the node has had all of it (a gateway, which also passes it on to
    /// its targets, in order, before it sees this tool go).
    pub async fn close_and_wait(&self, limit: Duration) {
        if self.inner.outgoing.send(Outgoing::Goodbye).is_err() {
            return;
        }
        let _ = tokio::time::timeout(limit, self.closed()).await;
    }

    /// Waits until the connection ends, and says why.
    pub async fn closed(&self) -> String {
        let mut down = self.inner.down.subscribe();
        let _ = down.wait_for(|d| *d).await;
        self.closed_reason()
            .unwrap_or_else(|| "connection closed".into())
    }

    /// Sends a `{'$gen_call', {SelfPid, Ref}, Request}` to the process
    /// registered as `to` and returns the reply to wait for.
    pub(crate) fn gen_call(&self, to: &str, request: Term) -> Result<Reply, String> {
        let key = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        let reference = self.inner.reference(key);
        let from = tuple(vec![
            Term::Pid(self.inner.self_pid.clone()),
            Term::Reference(Box::new(reference)),
        ]);
        let message = tuple(vec![atom_term("$gen_call"), from, request]);
        let frame = encode_frame(Message::reg_send(
            self.inner.self_pid.clone(),
            to.into(),
            message,
        ))
        .map_err(|e| e.to_string())?;
        self.send_call(key, Outgoing::Whole(frame))
    }

    /// As [`Connection::gen_call`] for `{'$gen_call', From, Request}` where
    /// `Request` is `head ++ shared ++ tail` in external format (no version
    /// byte): the shared middle is sent as it is, not copied.
    pub(crate) fn gen_call_shared(
        &self,
        to: &str,
        head: &[u8],
        shared: &Encoded,
        tail: &[u8],
    ) -> Result<Reply, String> {
        let key = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        let control = tuple(vec![
            Term::FixInteger(6.into()),
            Term::Pid(self.inner.self_pid.clone()),
            atom_term(""),
            atom_term(to),
        ]);
        let mut front = vec![0, 0, 0, 0, 112, 131];
        front.extend(term::encode_bare(&control));
        front.extend_from_slice(&[131, 104, 3]);
        front.extend(term::encode_bare(&atom_term("$gen_call")));
        front.extend_from_slice(&[104, 2]);
        front.extend(term::encode_bare(&Term::Pid(self.inner.self_pid.clone())));
        front.extend(term::encode_bare(&Term::Reference(Box::new(
            self.inner.reference(key),
        ))));
        front.extend_from_slice(head);
        let total = front.len() - 4 + shared.len() + tail.len();
        let total = u32::try_from(total)
            .map_err(|_| format!("a message of {total} bytes is over 4 GiB"))?;
        front[..4].copy_from_slice(&total.to_be_bytes());
        self.send_call(key, Outgoing::Parts(front, shared.clone(), tail.to_vec()))
    }

    /// Sends `message` to the process registered as `to`; nothing waits
    /// for an answer.
    pub(crate) fn send_to_name(&self, to: &str, message: Term) -> Result<(), String> {
        let frame = encode_frame(Message::reg_send(
            self.inner.self_pid.clone(),
            to.into(),
            message,
        ))
        .map_err(|e| e.to_string())?;
        self.inner
            .outgoing
            .send(Outgoing::Whole(frame))
            .map_err(|_| {
                self.closed_reason()
                    .unwrap_or_else(|| "connection closed".into())
            })
    }

    /// This end's process, as the node's processes may send to it.
    pub(crate) fn self_pid(&self) -> Term {
        Term::Pid(self.inner.self_pid.clone())
    }

    /// Sends the message `head ++ shared ++ tail` (external format, no
    /// version byte) to the process `to` of the node: the shared middle
    /// is sent as it is, not copied.
    pub(crate) fn send_parts(
        &self,
        to: &Pid,
        head: &[u8],
        shared: &Encoded,
        tail: &[u8],
    ) -> Result<(), String> {
        let control = tuple(vec![
            Term::FixInteger(2.into()),
            atom_term(""),
            Term::Pid(to.clone()),
        ]);
        let mut front = vec![0, 0, 0, 0, 112, 131];
        front.extend(term::encode_bare(&control));
        front.push(131);
        front.extend_from_slice(head);
        let total = front.len() - 4 + shared.len() + tail.len();
        let total = u32::try_from(total)
            .map_err(|_| format!("a message of {total} bytes is over 4 GiB"))?;
        front[..4].copy_from_slice(&total.to_be_bytes());
        self.inner
            .outgoing
            .send(Outgoing::Parts(front, shared.clone(), tail.to_vec()))
            .map_err(|_| {
                self.closed_reason()
                    .unwrap_or_else(|| "connection closed".into())
            })
    }

    /// Makes room for one message `{Ref, Term}` a process of the node sends
    /// to `Pid`: returns `{Pid, Ref}`, to hand the node, and the reply that
    /// waits for it.
    pub(crate) fn reserve_reply(&self) -> Result<(Term, Reply), String> {
        let key = self.inner.next_ref.fetch_add(1, Ordering::Relaxed);
        let address = tuple(vec![
            Term::Pid(self.inner.self_pid.clone()),
            Term::Reference(Box::new(self.inner.reference(key))),
        ]);
        Ok((address, self.expect(key)?))
    }

    fn send_call(&self, key: u64, frame: Outgoing) -> Result<Reply, String> {
        let reply = self.expect(key)?;
        // Registered before sending, so a fast reply cannot miss its entry.
        if self.inner.outgoing.send(frame).is_err() {
            return Err(self
                .closed_reason()
                .unwrap_or_else(|| "connection closed".into()));
        }
        Ok(reply)
    }

    /// The reply that waits for the message that carries `key`'s reference.
    fn expect(&self, key: u64) -> Result<Reply, String> {
        let (tx, rx) = oneshot::channel();
        let mut pending = self.inner.lock();
        if let Some(reason) = &pending.closed {
            return Err(reason.clone());
        }
        pending.calls.insert(key, tx);
        Ok(Reply {
            key,
            rx: Some(rx),
            inner: self.inner.clone(),
        })
    }
}

/// A reply on its way. Dropping it (after a timeout, or when the caller gives
/// up) removes the pending entry.
#[derive(Debug)]
pub(crate) struct Reply {
    key: u64,
    rx: Option<oneshot::Receiver<Term>>,
    inner: Arc<Inner>,
}

pub(crate) enum WaitError {
    TimedOut,
    Closed(String),
}

impl Reply {
    pub(crate) async fn wait(mut self, limit: Duration) -> Result<Term, WaitError> {
        let Some(rx) = self.rx.as_mut() else {
            return Err(WaitError::Closed("reply already taken".into()));
        };
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(term)) => Ok(term),
            Ok(Err(_)) => Err(WaitError::Closed(
                self.inner
                    .lock()
                    .closed
                    .clone()
                    .unwrap_or_else(|| "connection closed".into()),
            )),
            Err(_) => Err(WaitError::TimedOut),
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.inner.lock().calls.remove(&self.key);
    }
}
