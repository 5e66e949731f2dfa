//! A connection's two tasks, which own the socket. The reader reads frames
//! in order, answers ticks, hands replies to the calls waiting for them,
//! answers `net_kernel`'s `is_auth` and logs anything else; the writer
//! batches outgoing frames and sends a tick every quarter of the tick time.

use super::state::{Inner, Outgoing};
use crate::peer::frame::{encode_frame, read_frame, Frame, TICK};
use crate::peer::term::{self, atom_term, tuple, Term};
use erl_dist::message::Message;
use std::sync::Arc;
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
pub(super) struct Tasks {
    pub(super) inner: Arc<Inner>,
    pub(super) to_write: mpsc::UnboundedReceiver<Outgoing>,
    pub(super) stop: oneshot::Receiver<()>,
    pub(super) ticks: Ticks,
}

impl Tasks {
    pub(super) fn spawn<R, W>(self, read_half: R, write_half: W)
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
