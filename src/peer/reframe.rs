//! The handshake's messages, as `erl_dist` writes and reads them (a 2-byte
//! length, then the message), carried over a stream whose own prefix is 2
//! bytes (plain TCP) or 4 (TLS; see [`DistStream::handshake_prefix`]). It also holds an outbox for
//! messages `erl_dist` does not send itself (the `strue` status after
//! `alive`; see `handshake`), and spots a TLS node answering a plain hello.
//!
//! It reads exactly one message at a time from the stream, never more, so
//! no byte of the frames that follow the handshake is left behind in it.

#[cfg(doc)]
use super::stream::DistStream;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a plain hello gets from a node that speaks TLS distribution: a
/// TLS record (an alert, or a handshake), whose first two bytes are the
/// record type and the major version 3.
#[derive(Debug, thiserror::Error)]
#[error("the node answered in TLS")]
pub struct AnsweredInTls;

/// Messages to send before anything else, in `erl_dist`'s 2-byte framing.
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Mutex<Vec<u8>>>);

impl Outbox {
    pub fn push(&self, message: &[u8]) {
        self.lock().extend_from_slice(message);
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub struct Reframe<S> {
    stream: S,
    prefix: usize,
    outbox: Outbox,
    /// Written by `erl_dist`, not yet a whole message.
    written: Vec<u8>,
    /// Whole messages in the stream's framing, `sent` bytes of them gone.
    out: Vec<u8>,
    sent: usize,
    /// The length prefix being read, `have` bytes of it so far.
    header: [u8; 4],
    have: usize,
    /// The body being read, once its length is known, `got` bytes of it
    /// so far.
    body: Option<Vec<u8>>,
    got: usize,
    /// The last message read, in 2-byte framing, `served` bytes handed on.
    inbound: Vec<u8>,
    served: usize,
    first: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Reframe<S> {
    /// `prefix` is 2 or 4 (bytes of the stream's length prefix).
    pub fn new(stream: S, prefix: usize, outbox: Outbox) -> Self {
        Reframe {
            stream,
            prefix,
            outbox,
            written: Vec::new(),
            out: Vec::new(),
            sent: 0,
            header: [0; 4],
            have: 0,
            body: None,
            got: 0,
            inbound: Vec::new(),
            served: 0,
            first: true,
        }
    }

    /// The stream, once the handshake is over.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Moves whole messages from `written` (and the outbox, first) to
    /// `out`, with the stream's prefix.
    fn frame_written(&mut self) -> io::Result<()> {
        let injected = self.outbox.take();
        if !injected.is_empty() {
            let rest = std::mem::replace(&mut self.written, injected);
            self.written.extend(rest);
        }
        while self.written.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([self.written[0], self.written[1]]));
            if self.written.len() < 2 + len {
                break;
            }
            let prefix = u32::try_from(len)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "message too long"))?
                .to_be_bytes();
            self.out.extend_from_slice(&prefix[4 - self.prefix..]);
            self.out.extend_from_slice(&self.written[2..2 + len]);
            self.written.drain(..2 + len);
        }
        Ok(())
    }

    /// Sends everything framed so far and flushes the stream.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.frame_written()?;
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads the next whole message into `inbound`; `false` at a clean end
    /// of the stream.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        while self.have < self.prefix {
            let mut buf = ReadBuf::new(&mut self.header[self.have..self.prefix]);
            ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            if n == 0 {
                return Poll::Ready(match self.have {
                    0 => Ok(false),
                    _ => Err(io::ErrorKind::UnexpectedEof.into()),
                });
            }
            self.have += n;
        }
        if self.first && self.prefix == 2 && matches!(self.header[..2], [0x15 | 0x16, 0x03]) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                AnsweredInTls,
            )));
        }
        let mut len = [0u8; 4];
        len[4 - self.prefix..].copy_from_slice(&self.header[..self.prefix]);
        let len = u32::from_be_bytes(len) as usize;
        let short = u16::try_from(len).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a handshake message of {len} bytes"),
            )
        })?;
        let body = self.body.get_or_insert_with(|| vec![0; len]);
        while self.got < len {
            let mut buf = ReadBuf::new(&mut body[self.got..]);
            ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.got += n;
        }
        let body = self.body.take().unwrap_or_default();
        self.got = 0;
        self.inbound.clear();
        self.inbound.extend_from_slice(&short.to_be_bytes());
        self.inbound.extend(body);
        self.served = 0;
        self.have = 0;
        self.first = false;
        Poll::Ready(Ok(true))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures::io::AsyncRead for Reframe<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Whatever waits to go out goes before we wait for an answer.
        ready!(this.poll_send(cx))?;
        if this.served == this.inbound.len() && !ready!(this.poll_message(cx))? {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(this.inbound.len() - this.served);
        buf[..n].copy_from_slice(&this.inbound[this.served..this.served + n]);
        this.served += n;
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> futures::io::AsyncWrite for Reframe<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn messages_get_the_stream_s_prefix_both_ways() {
        let (near, mut far) = tokio::io::duplex(1024);
        let outbox = Outbox::default();
        let mut framed = Reframe::new(near, 4, outbox.clone());
        // erl_dist writes the length and the body apart, then flushes.
        framed.write_all(&[0, 3]).await.expect("write");
        framed.write_all(b"abc").await.expect("write");
        framed.flush().await.expect("flush");
        let mut got = [0u8; 7];
        far.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"\0\0\0\x03abc");

        // An outbox message goes out before the next read waits.
        outbox.push(&[0, 2, b'o', b'k']);
        far.write_all(b"\0\0\0\x02hi\0\0\0\x01!")
            .await
            .expect("write");
        let mut first = [0u8; 4];
        framed.read_exact(&mut first).await.expect("read");
        assert_eq!(&first, b"\0\x02hi");
        let mut sent = [0u8; 6];
        far.read_exact(&mut sent).await.expect("read");
        assert_eq!(&sent, b"\0\0\0\x02ok");
        // Exactly one message is read from the stream at a time.
        let mut second = [0u8; 3];
        framed.read_exact(&mut second).await.expect("read");
        assert_eq!(&second, b"\0\x01!");
        drop(far);
        let mut rest = Vec::new();
        framed.read_to_end(&mut rest).await.expect("clean end");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn a_tls_record_where_a_plain_answer_belongs_is_named() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut framed = Reframe::new(near, 2, Outbox::default());
        // A TLS alert: type 21, version 3.3, length 2, fatal, unexpected message.
        far.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a])
            .await
            .expect("write");
        let mut buf = [0u8; 8];
        let err = framed.read(&mut buf).await.expect_err("TLS");
        assert!(
            err.get_ref().is_some_and(|e| e.is::<AnsweredInTls>()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_message_cut_short_is_an_error_and_an_oversized_one_refused() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut framed = Reframe::new(near, 4, Outbox::default());
        far.write_all(b"\0\0\0\x09abc").await.expect("write");
        drop(far);
        let mut buf = [0u8; 16];
        let err = framed.read(&mut buf).await.expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let (near, mut far) = tokio::io::duplex(1024);
        let mut framed = Reframe::new(near, 4, Outbox::default());
        far.write_all(&[0, 1, 0, 0]).await.expect("write");
        let err = framed.read(&mut buf).await.expect_err("too long");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
