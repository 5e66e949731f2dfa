//! A route to one target node: a connection of its own (over TCP or TLS,
//! found through EPMD, a remembered port or a fixed distribution port), or
//! through a gateway's relay ([`super::gateway`]). Everything the deploy
//! engine says to a node goes through this, so that a node reached through
//! a gateway is treated as one reached directly.

use super::gateway::Gateway;
use crate::peer::term::{atom_term, Term};
use crate::peer::{Call, CallError, Connection, EvalArgs, Listener, NodeName, Script};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A target node and the way to it.
#[derive(Debug, Clone)]
pub enum Route {
    Direct(Connection),
    Via {
        gateway: Arc<Gateway>,
        target: NodeName,
        /// Why the target left the gateway's cluster, once it has.
        left: Arc<Mutex<Option<String>>>,
    },
}

type Evaluated = Pin<Box<dyn Future<Output = Result<Term, CallError>> + Send + 'static>>;

impl Route {
    /// `target`, reached through `gateway`.
    pub fn via(gateway: Arc<Gateway>, target: NodeName) -> Route {
        Route::Via {
            gateway,
            target,
            left: Arc::new(Mutex::new(None)),
        }
    }

    /// The target node.
    pub fn node(&self) -> &NodeName {
        match self {
            Route::Direct(conn) => conn.node(),
            Route::Via { target, .. } => target,
        }
    }

    /// The gateway, for a target reached through one.
    pub fn gateway(&self) -> Option<&Arc<Gateway>> {
        match self {
            Route::Direct(_) => None,
            Route::Via { gateway, .. } => Some(gateway),
        }
    }

    /// What the node's processes watch to see this tool go (a lock's
    /// holder): this tool's node, or the gateway's relay.
    pub fn owner(&self) -> Term {
        match self {
            Route::Direct(conn) => atom_term(conn.local_node()),
            Route::Via { gateway, .. } => gateway.relay(),
        }
    }

    /// [`Connection::eval`]: the request leaves now (through a gateway:
    /// with the requests made alongside it); the future waits for its
    /// value.
    pub fn eval(&self, script: &'static Script, args: &EvalArgs, timeout: Duration) -> Evaluated {
        crate::timings::trip(&self.node().to_string());
        match self {
            Route::Direct(conn) => Box::pin(conn.eval(script, args, timeout)),
            Route::Via {
                gateway, target, ..
            } => Box::pin(gateway.eval(target, script, args, timeout)),
        }
    }

    /// `call` on the node: the request leaves now (a word sent as a run
    /// ends goes before its goodbye), and the future waits for its value.
    pub fn call(&self, call: Call, timeout: Duration) -> Evaluated {
        crate::timings::trip(&self.node().to_string());
        match self {
            Route::Direct(conn) => Box::pin(conn.call_sent(call, timeout)),
            Route::Via {
                gateway, target, ..
            } => Box::pin(gateway.call(target, call, timeout)),
        }
    }

    /// An address `{Pid, Ref}` a process of the node may send one
    /// `{Ref, Term}` to, and the listener that waits for it.
    pub fn listen(&self) -> Result<(Term, Listener), CallError> {
        match self {
            Route::Direct(conn) => conn.listen(),
            Route::Via {
                gateway, target, ..
            } => gateway.listen(target),
        }
    }

    /// `message` to the process registered as `name` on the node.
    pub fn send(&self, name: &str, message: Term) -> Result<(), CallError> {
        match self {
            Route::Direct(conn) => conn.send(name, message),
            Route::Via {
                gateway, target, ..
            } => gateway.send(target, name, message),
        }
    }

    /// Sends what a gateway has queued for its targets.
    pub fn flush(&self) {
        if let Route::Via { gateway, .. } = self {
            gateway.flush();
        }
    }

    /// Why the way to the node is gone, or `None` while it is up.
    pub fn closed_reason(&self) -> Option<String> {
        match self {
            Route::Direct(conn) => conn.closed_reason(),
            Route::Via { gateway, left, .. } => gateway
                .closed_reason()
                .or_else(|| left.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    /// Waits until the way to the node is gone; says why.
    pub async fn closed(&self) -> String {
        match self {
            Route::Direct(conn) => conn.closed().await,
            Route::Via {
                gateway,
                target,
                left,
            } => {
                let why = gateway.departure(target).await;
                *left.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                why
            }
        }
    }

    /// [`Connection::goodbye`] of the connection this way uses.
    pub async fn goodbye(&self, limit: Duration) {
        match self {
            Route::Direct(conn) => conn.goodbye(limit).await,
            Route::Via { gateway, .. } => gateway.connection().close_and_wait(limit).await,
        }
    }
}
