//! One live distribution connection: a cloneable handle plus two tasks that
//! own the socket.
//!
//! The reader task reads frames in order, answers ticks, hands replies to the
//! call waiting for their reference, answers `net_kernel`'s `is_auth` (so a
//! ping to us says `pong`) and logs anything else instead of dying on it.
//! The writer task batches outgoing frames (any number of requests may be in
//! flight) and sends a tick every quarter of the tick time. When the socket
//! fails, every pending call fails at once with the reason; nothing hangs.

use super::frame::{encode_frame, read_frame, Frame, TICK};
use super::names::NodeName;
use super::stream::DistStream;
use super::term::{self, atom_term, tuple, Encoded, Pid, Reference, Term};
use erl_dist::message::Message;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot};

/// Settings for a connection's background tasks.
#[derive(Debug, Clone, Copy)]
pub struct Ticks {
    /// Like `net_ticktime`: we send a tick every quarter of it.
    pub ticktime: Duration,
}

impl Default for Ticks {
    fn default() -> Self {
        Ticks {
            ticktime: Duration::from_secs(60),
        }
    }
}

/// What a connection's two tasks need besides the socket's halves.
struct Tasks {
    inner: Arc<Inner>,
    to_write: mpsc::UnboundedReceiver<Outgoing>,
    stop: oneshot::Receiver<()>,
    ticks: Ticks,
}

impl Tasks {
    fn spawn<R, W>(self, read_half: R, write_half: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(
            BufReader::with_capacity(256 * 1024, read_half),
            self.inner.clone(),
            answers_tx,
            self.ticks.ticktime,
        ));
        tokio::spawn(write_loop(
            BufWriter::with_capacity(256 * 1024, write_half),
            self.inner,
            self.to_write,
            answers_rx,
            self.stop,
            self.ticks,
            reader,
        ));
    }
}

/// A handle on a connection; clones share it. The connection closes when
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: Arc<Inner>,
    _closer: Arc<Closer>,
}

#[derive(Debug)]
struct Inner {
    node: NodeName,
    self_pid: Pid,
    ref_node: String,
    creation: u32,
    salt: u32,
    next_ref: AtomicU64,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    pending: Mutex<Pending>,
    /// Becomes true once, when the connection ends.
    down: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Pending {
    calls: HashMap<u64, oneshot::Sender<Term>>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
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

    /// Closes the connection once everything sent before is on its way,
    /// and waits (up to `limit`) until the node has closed its end: then
    /// the node has had all of it. A message sent just before a process
    /// exits (a lock's release) is otherwise lost when the exit resets the
    /// socket over a link that had to resend it.
    pub async fn goodbye(&self, limit: Duration) {
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

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// References carry the call's key in their first two words; the third is
    /// a per-connection salt so stray references are not mistaken for ours.
    fn reference(&self, key: u64) -> Reference {
        Reference {
            node: self.ref_node.as_str().into(),
            id: vec![(key & 0x3_ffff) as u32, (key >> 18) as u32, self.salt],
            creation: self.creation,
        }
    }

    fn key_of(&self, reference: &Reference) -> Option<u64> {
        match reference.id.as_slice() {
            [low, high, salt] if *salt == self.salt && reference.node.name == self.ref_node => {
                Some(u64::from(*low) | (u64::from(*high) << 18))
            }
            _ => None,
        }
    }

    fn close(&self, reason: String) {
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
    fn deliver(&self, message: Term) {
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

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: BufReader<R>,
    inner: Arc<Inner>,
    answers: mpsc::UnboundedSender<Vec<u8>>,
    ticktime: Duration,
) {
    // A node ticks every quarter of its tick time; silence for a whole one
    // (ours, or the node's if longer: at least 60 s) means it is gone, as
    // `net_kernel` would decide, even if no TCP reset ever comes.
    let silence = ticktime.max(Duration::from_secs(60));
    let reason = loop {
        let frame = match tokio::time::timeout(silence, read_frame(&mut reader)).await {
            Ok(frame) => frame,
            Err(_) => break format!("the node did not answer for {} s", silence.as_secs()),
        };
        match frame {
            Ok(Some(Frame::Tick)) => {
                // Answer at once: a node with a short net_ticktime must hear from us.
                let _ = answers.send(TICK.to_vec());
            }
            Ok(Some(Frame::Message(message))) => {
                if let Some(answer) = handle(&inner, *message) {
                    let _ = answers.send(answer);
                }
            }
            Ok(None) => break "the node closed the connection".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    inner.close(reason);
}

/// Acts on one incoming message; returns a frame to send back, if any.
fn handle(inner: &Inner, message: Message) -> Option<Vec<u8>> {
    match message {
        Message::Send(m) => inner.deliver(m.message),
        Message::SendSender(m) => inner.deliver(m.message),
        Message::SendTt(m) => inner.deliver(m.message),
        Message::SendSenderTt(m) => inner.deliver(m.message),
        Message::RegSend(m) if m.to_name.name == "net_kernel" => {
            return answer_net_kernel(&m.message)
        }
        Message::RegSendTt(m) if m.to_name.name == "net_kernel" => {
            return answer_net_kernel(&m.message)
        }
        other => tracing::debug!(node = %inner.node, message = ?other, "ignored a control message"),
    }
    None
}

/// `net_adm:ping/1` sends `{'$gen_call', {Pid, Tag}, {is_auth, Node}}` to
/// `net_kernel` and expects `{Tag, yes}`. Since OTP 24 `Tag` may be
/// `[alias|Ref]`; it is echoed as it came.
fn answer_net_kernel(message: &Term) -> Option<Vec<u8>> {
    let [label, from, request] = term::as_tuple_n::<3>(message).ok()?;
    if !term::is_atom(label, "$gen_call") {
        return None;
    }
    let [pid, tag] = term::as_tuple_n::<2>(from).ok()?;
    let pid = term::as_pid(pid).ok()?.clone();
    let is_auth =
        matches!(term::as_tuple(request), Ok([what, _]) if term::is_atom(what, "is_auth"));
    let answer = if is_auth {
        atom_term("yes")
    } else {
        atom_term("not_supported")
    };
    encode_frame(Message::send(pid, tuple(vec![tag.clone(), answer]))).ok()
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    inner: Arc<Inner>,
    mut requests: mpsc::UnboundedReceiver<Outgoing>,
    mut answers: mpsc::UnboundedReceiver<Vec<u8>>,
    mut stop: oneshot::Receiver<()>,
    ticks: Ticks,
    reader: tokio::task::JoinHandle<()>,
) {
    let period = (ticks.ticktime / 4).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let result: std::io::Result<Ending> = async {
        loop {
            let first = tokio::select! {
                r = requests.recv() => match r { Some(f) => f, None => return Ok(Ending::Now) },
                a = answers.recv() => match a { Some(f) => Outgoing::Whole(f), None => return Ok(Ending::Now) },
                _ = tick.tick() => Outgoing::Whole(TICK.to_vec()),
                _ = &mut stop => return Ok(Ending::Now),
            };
            if write_out(&mut writer, &first).await? {
                writer.flush().await?;
                return Ok(Ending::Goodbye);
            }
            // Batch whatever else is ready into the same flush.
            loop {
                let next = match answers.try_recv() {
                    Ok(f) => Outgoing::Whole(f),
                    Err(_) => match requests.try_recv() {
                        Ok(f) => f,
                        Err(_) => break,
                    },
                };
                if write_out(&mut writer, &next).await? {
                    writer.flush().await?;
                    return Ok(Ending::Goodbye);
                }
            }
            writer.flush().await?;
        }
    }
    .await;
    let _ = writer.shutdown().await;
    let reason = match result {
        // The node closes its end once it has read ours to the end.
        Ok(Ending::Goodbye) => match reader.await {
            Ok(()) => return,
            Err(_) => "the connection was closed by this node".to_owned(),
        },
        Ok(Ending::Now) => {
            reader.abort();
            "the connection was closed by this node".to_owned()
        }
        Err(e) => {
            reader.abort();
            format!("write failed: {e}")
        }
    };
    inner.close(reason);
}

/// How the writer stopped.
enum Ending {
    /// At once: the last handle went, or the node went.
    Now,
    /// After a goodbye: what was sent before it is on its way, our end is
    /// closed, and the node's end will follow.
    Goodbye,
}

/// Writes `frame`; `true` if it was the goodbye, which ends the writing.
async fn write_out<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    frame: &Outgoing,
) -> std::io::Result<bool> {
    match frame {
        Outgoing::Goodbye => Ok(true),
        Outgoing::Whole(bytes) => writer.write_all(bytes).await.map(|()| false),
        Outgoing::Parts(head, shared, tail) => {
            writer.write_all(head).await?;
            for piece in shared.0.iter() {
                writer.write_all(piece).await?;
            }
            writer.write_all(tail).await.map(|()| false)
        }
    }
}
