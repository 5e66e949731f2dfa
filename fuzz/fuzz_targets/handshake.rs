//! Both sides of the distribution handshake against a peer that says
//! `data`: what a node answers us (client side), and what a node that
//! connects to us says (server side); each straight, and through the
//! tool's `Reframe` with the 2-byte prefixes of TCP and the 4-byte ones of
//! TLS, as the tool runs it.
#![no_main]

use erl_dist::handshake::{ClientSideHandshake, ServerSideHandshake};
use erl_dist::node::{Creation, LocalNode, NodeName};
use futures::io::{AsyncRead, AsyncWrite};
use hotswap_node::peer::reframe::{Outbox, Reframe};
use libfuzzer_sys::fuzz_target;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A peer that says `data`, then closes; what we write goes nowhere.
struct Peer<'a> {
    data: &'a [u8],
}

impl AsyncRead for Peer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Peer<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn us() -> LocalNode {
    let name: NodeName = "hotswap@127.0.0.1".parse().expect("name");
    let mut node = LocalNode::new(name, Creation::new(7));
    node.flags = hotswap_node::peer::handshake::local_flags();
    node
}

/// `data` through `Reframe` with `prefix`-byte lengths; writes go nowhere.
fn reframed(data: &[u8], prefix: usize) -> Reframe<tokio::io::Join<&[u8], tokio::io::Sink>> {
    Reframe::new(tokio::io::join(data, tokio::io::sink()), prefix, Outbox::default())
}

fuzz_target!(|data: &[u8]| {
    futures::executor::block_on(async {
        for prefix in [2, 4] {
            let mut client = ClientSideHandshake::new(reframed(data, prefix), us(), "cookie");
            if client.execute_send_name(6).await.is_ok() {
                let _ = client.execute_rest(true).await;
            }
            let mut server = ServerSideHandshake::new(reframed(data, prefix), us(), "cookie");
            if server.execute_recv_name().await.is_ok() {
                let _ = server.execute_rest(erl_dist::handshake::HandshakeStatus::Ok).await;
            }
        }
        let mut client = ClientSideHandshake::new(Peer { data }, us(), "cookie");
        if client.execute_send_name(6).await.is_ok() {
            let _ = client.execute_rest(true).await;
        }
        let mut server = ServerSideHandshake::new(Peer { data }, us(), "cookie");
        if server.execute_recv_name().await.is_ok() {
            let _ = server.execute_rest(erl_dist::handshake::HandshakeStatus::Ok).await;
        }
    });
});
