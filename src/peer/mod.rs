//! The Erlang distribution peer: this tool as a hidden node `hotswap@HOST`.
//!
//! It owns everything about talking to BEAM nodes and nothing about
//! deploying: this node itself (`local_node`, started as `options`
//! say, with its `listener`) and its `cookie`, reaching a node
//! (`connect`), names ([`names`]), the port mapper ([`epmd`]), the handshake
//! ([`handshake`], with [`reframe`]), over TCP or TLS ([`stream`],
//! [`tls`]), framing ([`frame`]), a live connection with its ticks
//! ([`connection`]), calls through `rex` ([`rpc`]), expressions
//! evaluated there ([`eval`]), packed for the wire ([`script`]), and plain
//! messages to and from the node's processes ([`message`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hotswap_node::peer::{Cookie, Peer, PeerOptions};
//! let target = "app@myhost".parse()?;
//! let peer = Peer::start(PeerOptions::new(Cookie::new("secret")), std::slice::from_ref(&target)).await?;
//! let node = peer.connect(&target).await?;
//! let name = node.call("erlang", "node", vec![], std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

mod cert_v1;
mod connect;
pub mod connection;
mod cookie;
pub mod epmd;
pub mod error;
pub mod eval;
pub mod frame;
pub mod handshake;
mod listener;
mod local_node;
pub mod message;
pub mod name_lock;
pub mod names;
mod options;
pub mod reframe;
mod resolve;
pub mod rpc;
pub mod script;
pub mod stream;
pub mod term;
pub mod tls;

pub use connection::{Connection, Ticks};
pub use cookie::Cookie;
pub use error::{CallError, ConnectError, StartError};
pub use eval::{Bindings, EvalArgs};
pub use local_node::Peer;
pub use message::Listener;
pub use names::NodeName;
pub use options::PeerOptions;
pub use rpc::Call;
pub use script::Script;
pub use tls::{Tls, TlsFiles};
