//! `hotswap-node`: hot-swap changed BEAM modules onto running Erlang and
//! Elixir nodes, as a hidden distribution peer.
//!
//! # Layout
//! - [`dist`]: the Erlang distribution peer (EPMD, handshake, framing,
//!   connection with ticks, RPC through `rex`). Knows nothing about deploys.

pub mod dist;
