//! The byte stream under a distribution connection: plain TCP, or TLS
//! over TCP (`-proto_dist inet_tls`). Everything above it — the handshake,
//! frames, ticks — is the same on both but for one thing: how long the
//! length prefix of a handshake message is.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

#[derive(Debug)]
pub enum DistStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl From<TcpStream> for DistStream {
    fn from(stream: TcpStream) -> Self {
        DistStream::Plain(stream)
    }
}

impl DistStream {
    /// Bytes of the length prefix of a handshake message: 2 on plain TCP
    /// (`{packet,2}`), 4 inside TLS (OTP's `inet_tls_dist` uses
    /// `{packet,4}` from the start).
    pub fn handshake_prefix(&self) -> usize {
        match self {
            DistStream::Plain(_) => 2,
            DistStream::Tls(_) => 4,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, DistStream::Tls(_))
    }
}

impl AsyncRead for DistStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DistStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DistStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DistStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DistStream::Plain(s) => Pin::new(s).poll_flush(cx),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DistStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
