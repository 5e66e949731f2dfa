//! A delaying TCP proxy for slow-link benchmarks and tests, aware of EPMD.
//!
//! It listens as an EPMD (point clients at it with `ERL_EPMD_PORT`) and
//! forwards every request to the real one. A `PORT2_RESP` (tag 119) gets its
//! port rewritten to a proxy port that forwards to the node's real port, so
//! distribution traffic passes through the delay too. Each direction of
//! each connection delivers bytes `delay` after they were read, without
//! limiting throughput: a link with a round trip of `2 × delay`. Opening a
//! connection costs a round trip as over a real link (the proxy accepts at
//! once, so the client's first bytes are held until `2 × delay` after it
//! connected, then delayed as all bytes are). A registration (`ALIVE2`) is
//! passed on at once: it goes to this machine's own EPMD, not over the link.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub struct SlowLink {
    pub epmd_port: u16,
    /// Bytes clients sent to nodes over distribution connections.
    sent: Arc<AtomicU64>,
    _runtime: tokio::runtime::Runtime,
}

impl SlowLink {
    /// Starts the proxy in front of the EPMD on `real_epmd`.
    pub fn start(real_epmd: u16, delay: Duration) -> SlowLink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let epmd_port = listener.local_addr().expect("addr").port();
        let node_ports: Arc<Mutex<HashMap<u16, u16>>> = Arc::default();
        let sent: Arc<AtomicU64> = Arc::default();
        let counter = sent.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let node_ports = node_ports.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = epmd_session(client, real_epmd, delay, node_ports, counter).await;
                });
            }
        });
        SlowLink {
            epmd_port,
            sent,
            _runtime: runtime,
        }
    }

    /// Bytes sent to nodes over distribution connections so far.
    pub fn sent_to_nodes(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

async fn epmd_session(
    mut client: TcpStream,
    real_epmd: u16,
    delay: Duration,
    node_ports: Arc<Mutex<HashMap<u16, u16>>>,
    sent: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let connected = Instant::now();
    let mut len = [0u8; 2];
    client.read_exact(&mut len).await?;
    let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
    client.read_exact(&mut request).await?;
    let mut server = TcpStream::connect(("127.0.0.1", real_epmd)).await?;
    let _ = server.set_nodelay(true);
    if request.first() == Some(&120) {
        // ALIVE2: a local registration, kept open as it is.
        server.write_all(&len).await?;
        server.write_all(&request).await?;
        return relay(client, server, Duration::ZERO, connected, None).await;
    }
    tokio::time::sleep_until(arrival(connected, Instant::now(), delay)).await;
    server.write_all(&len).await?;
    server.write_all(&request).await?;
    if request.first() != Some(&122) {
        // Not PORT_PLEASE2: relay as it is.
        return relay(client, server, delay, connected, None).await;
    }
    let mut reply = Vec::new();
    server.read_to_end(&mut reply).await?;
    // PORT2_RESP: 119, result, port (u16), ...
    if reply.len() >= 4 && reply[0] == 119 && reply[1] == 0 {
        let real = u16::from_be_bytes([reply[2], reply[3]]);
        let proxied = proxy_port(real, delay, node_ports, sent).await?;
        reply[2..4].copy_from_slice(&proxied.to_be_bytes());
    }
    tokio::time::sleep(delay).await;
    client.write_all(&reply).await?;
    Ok(())
}

async fn proxy_port(
    real: u16,
    delay: Duration,
    node_ports: Arc<Mutex<HashMap<u16, u16>>>,
    sent: Arc<AtomicU64>,
) -> std::io::Result<u16> {
    if let Some(p) = node_ports.lock().ok().and_then(|m| m.get(&real).copied()) {
        return Ok(p);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    if let Ok(mut m) = node_ports.lock() {
        m.insert(real, port);
    }
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let connected = Instant::now();
            let sent = sent.clone();
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(("127.0.0.1", real)).await {
                    let _ = relay(client, server, delay, connected, Some(sent)).await;
                }
            });
        }
    });
    Ok(port)
}

/// When bytes the client sent at `sent` arrive: `delay` later, and not
/// before the connection opened over the link (a round trip after `connected`).
fn arrival(connected: Instant, sent: Instant, delay: Duration) -> Instant {
    sent.max(connected + 2 * delay) + delay
}

/// Both directions, each delayed; `a` is the client, connected at `connected`;
/// what it sends is added to `sent`.
pub async fn relay(
    a: TcpStream,
    b: TcpStream,
    delay: Duration,
    connected: Instant,
    sent: Option<Arc<AtomicU64>>,
) -> std::io::Result<()> {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let one = tokio::spawn(delayed_copy(ar, bw, delay, Some(connected), sent));
    let two = tokio::spawn(delayed_copy(br, aw, delay, None, None));
    let _ = one.await;
    let _ = two.await;
    Ok(())
}

async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    connected: Option<Instant>,
    counter: Option<Arc<AtomicU64>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(c) = &counter {
                        c.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let due = match connected {
                        Some(c) => arrival(c, Instant::now(), delay),
                        None => Instant::now() + delay,
                    };
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    while let Some((due, bytes)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    let _ = reader.await;
}
