//! While the tool runs, it listens on one port only: the distribution port
//! it registered in EPMD. (Its own test binary, so no other test's sockets
//! are in this process.)

mod common;

use common::{ErlNode, NodeSpec};
use hotswap_node::peer::{epmd, Cookie, Peer, PeerOptions};
use std::collections::HashSet;

/// TCP ports this process listens on, from /proc.
fn listening_ports() -> Vec<u16> {
    let inodes: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A = LISTEN), inode
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                if let Some(port) = cols[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
    }
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_registered_distribution_port_listens() {
    let node = ErlNode::start(NodeSpec::new("listen"));
    let name = common::unique("hslisten");
    let peer = Peer::start(
        PeerOptions::new(Cookie::new(node.cookie.clone())).name(name.clone()),
        &[node.node_name()],
    )
    .await
    .expect("peer");
    let conn = peer.connect(&node.node_name()).await.expect("connect");
    conn.call("erlang", "node", vec![], std::time::Duration::from_secs(5))
        .await
        .expect("call");
    let registered = epmd::lookup("127.0.0.1", &name).await.expect("registered");
    assert_eq!(listening_ports(), vec![registered]);
}
