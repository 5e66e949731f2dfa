//! `hotswap-node`: hot-swap changed BEAM modules onto running Erlang and
//! Elixir nodes, as a hidden distribution peer.
//!
//! # Layout
//! From the command line down; each layer imports only those below it.
//! - [`cli`]: arguments, the settings made once into the engines'
//!   options, one command per file, every exit code ([`cli::exit`]).
//! - [`watch`]: the watch mode: sources, held connections that come back,
//!   one deploy per change.
//! - [`config`]: settings from flags, the environment and files.
//! - [`deploy`]: a run as a plan of instructions written as data
//!   ([`deploy::plan`]), folded by one driver ([`deploy::driver`]), each
//!   instruction's work in a file of its own ([`deploy::step`]); the
//!   session that holds connections; status.
//! - [`reach`]: every way to a node: direct (EPMD, a remembered port, a
//!   fixed distribution port; TCP or TLS) or through a gateway.
//! - [`project`]: the local project: discovery, the one builder, file
//!   times. [`beam`]: reading, validating and fingerprinting `.beam` files
//!   as OTP does.
//! - [`store`]: the snapshot store (binaries, manifests, lock, pruning).
//! - [`peer`]: the Erlang distribution peer (EPMD, handshake, framing,
//!   connection with ticks, RPC through `rex`, expressions evaluated on a
//!   node). Knows nothing about deploys.
//! - [`output`]: what the user sees; [`interrupt`]: Ctrl-C; [`fault`]:
//!   named points where tests hold the tool (test builds only);
//!   [`random`]: tokens and secrets.

pub mod beam;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod fault;
pub mod interrupt;
pub mod output;
pub mod peer;
pub mod project;
pub mod random;
pub mod reach;
pub mod store;
pub mod timings;
pub mod watch;
