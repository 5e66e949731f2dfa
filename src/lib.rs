//! `hotswap-node`: hot-swap changed BEAM modules onto running Erlang and
//! Elixir nodes, as a hidden distribution peer.
//!
//! # Layout
//! - [`dist`]: the Erlang distribution peer (EPMD, handshake, framing,
//!   connection with ticks, RPC through `rex`, expressions evaluated on a
//!   node). Knows nothing about deploys.
//! - [`beam`]: reading, validating and fingerprinting `.beam` files as OTP
//!   does, and finding them in Mix, rebar3 and Nerves builds.
//! - [`deploy`]: the transaction that deploys and rolls back, the session
//!   that holds connections, status.
//! - [`store`]: the snapshot store (binaries, manifests, lock, pruning).
//! - [`watch`]: the watch mode: sources, the warm build node, held
//!   connections that come back, one deploy per change.
//! - [`config`], [`cli`], [`output`]: settings, the command line, what the
//!   user sees; [`interrupt`]: Ctrl-C; [`build_command`]: the project's
//!   build, run one way for every command.
//! - [`fault`]: named points where tests hold the tool (test builds only).

pub mod beam;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod dist;
pub mod fault;
pub mod interrupt;
pub mod output;
pub mod project;
pub mod random;
pub mod reach;
pub mod store;
pub mod watch;
