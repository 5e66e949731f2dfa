//! The listener nodes connect back on, and the handshakes it accepts.

use super::connection::Connection;
use super::handshake::{self, Identity};
use super::names::NodeName;
use super::options::PeerOptions;
use super::stream::DistStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// The listener nodes connect back on (`net_adm:ping`): one socket on
/// IPv6 and IPv4 at once (`[::]`, not IPv6-only whatever the system's
/// default), so that nodes on either reach it; IPv4 only on a machine
/// without IPv6.
pub(super) async fn listen() -> std::io::Result<TcpListener> {
    let dual = || -> std::io::Result<TcpListener> {
        let socket = tokio::net::TcpSocket::new_v6()?;
        socket2::SockRef::from(&socket).set_only_v6(false)?;
        socket.bind((std::net::Ipv6Addr::UNSPECIFIED, 0).into())?;
        socket.listen(128)
    };
    match dual() {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind(("0.0.0.0", 0)).await,
    }
}

/// How long the listener waits after a failed accept before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

pub(super) async fn accept_loop(
    listener: TcpListener,
    identity: Identity,
    options: PeerOptions,
    incoming: Arc<Mutex<Vec<Connection>>>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (or memory), the next accept fails
                // the same way at once: wait rather than spin a core.
                tracing::debug!("accepting a connection failed: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let identity = identity.clone();
        let options = options.clone();
        let incoming = incoming.clone();
        tokio::spawn(async move {
            match handshake::server(
                stream,
                &identity,
                options.cookie.expose(),
                options.connect_timeout,
            )
            .await
            {
                Ok((stream, peer)) => {
                    tracing::debug!(node = %peer.name, %from, "accepted a connection");
                    let Ok(name) = peer.name.parse::<NodeName>() else {
                        return;
                    };
                    let connection = Connection::start(
                        DistStream::Plain(stream),
                        name,
                        &identity.name,
                        identity.creation,
                        options.ticks,
                    );
                    let mut list = incoming.lock().unwrap_or_else(|p| p.into_inner());
                    list.retain(|c| c.closed_reason().is_none());
                    list.push(connection);
                }
                Err(reason) => {
                    tracing::warn!("refused a distribution connection from {from}: {reason}")
                }
            }
        });
    }
}
