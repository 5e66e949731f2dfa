//! Held connections come and go: devices reboot. One task per connection
//! waits for it to end and says so; another connects again with backoff
//! until the node is back. Neither touches the session's deploys: the
//! watch loop hears of both and decides.

use crate::deploy::{Remote, Session};
use crate::peer::NodeName;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What happened to a node.
#[derive(Debug)]
pub enum NodeEvent {
    /// Its connection ended.
    Down { node: String, reason: String },
    /// Connected again (already in the session).
    Up(Remote),
}

/// The first wait before connecting again, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Tells `events` when `remote`'s connection ends.
pub fn follow(remote: Remote, events: mpsc::UnboundedSender<NodeEvent>) {
    tokio::spawn(async move {
        let reason = remote.link.closed().await;
        let _ = events.send(NodeEvent::Down {
            node: remote.node(),
            reason,
        });
    });
}

/// Connects to `node` again and again, waiting twice as long each time
/// (up to [`LONGEST_RETRY`]), until it answers; then tells `events`.
/// Stops when nobody listens any more.
pub fn reconnect(session: Arc<Session>, node: NodeName, events: mpsc::UnboundedSender<NodeEvent>) {
    tokio::spawn(async move {
        let mut wait = FIRST_RETRY;
        loop {
            tokio::time::sleep(wait).await;
            if events.is_closed() {
                return;
            }
            match session.reconnect(&node).await {
                Ok(remote) => {
                    let _ = events.send(NodeEvent::Up(remote));
                    return;
                }
                Err(e) => tracing::debug!(%node, "still unreachable: {e}"),
            }
            wait = (wait * 2).min(LONGEST_RETRY);
        }
    });
}
