//! Remote procedure calls through `rex`, the server behind `rpc:call/4` on
//! every node: `{'$gen_call', {SelfPid, Ref}, {call, M, F, Args, user}}` in,
//! `{Ref, Result}` out. Each call has its own reference, so any number can
//! be in flight on one connection; `{badrpc, Reason}` becomes
//! [`CallError::BadRpc`].

use super::connection::{Connection, Reply, WaitError};
use super::error::CallError;
use super::term::{self, atom_term, encode_bare, list, tuple, Encoded, Term};
use std::time::Duration;

/// One function call: module, function, arguments.
#[derive(Debug, Clone)]
pub struct Call {
    pub module: String,
    pub function: String,
    pub args: Vec<Term>,
}

impl Call {
    pub fn new(module: &str, function: &str, args: Vec<Term>) -> Self {
        Call {
            module: module.to_owned(),
            function: function.to_owned(),
            args,
        }
    }

    pub(crate) fn label(&self) -> String {
        format!("{}:{}/{}", self.module, self.function, self.args.len())
    }
}

impl Connection {
    /// Calls `module:function(args...)` on the node and waits up to `timeout`.
    pub async fn call(
        &self,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        self.call_sent(Call::new(module, function, args), timeout)
            .await
    }

    /// Makes `call` on the node: the request leaves now, and the future
    /// returned waits up to `timeout` for its value.
    pub fn call_sent(
        &self,
        call: Call,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Term, CallError>> + Send + 'static {
        let node = self.node().to_string();
        let reply = self.gen_call("rex", rex_request(&call));
        async move { outcome(reply, timeout, &node, &call.label(), timeout).await }
    }

    /// Sends every call before waiting for any, so the whole batch costs one
    /// round trip; results come back in the order of `calls`. `timeout`
    /// bounds the whole batch.
    pub async fn call_all(
        &self,
        calls: Vec<Call>,
        timeout: Duration,
    ) -> Vec<Result<Term, CallError>> {
        let node = self.node().to_string();
        let deadline = tokio::time::Instant::now() + timeout;
        let sent: Vec<_> = calls
            .iter()
            .map(|c| self.gen_call("rex", rex_request(c)))
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        for (call, reply) in calls.iter().zip(sent) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            results.push(outcome(reply, left, &node, &call.label(), timeout).await);
        }
        results
    }
}

impl Connection {
    /// Calls `module:function(Arg)` where `Arg` was encoded once, so a big
    /// argument (module binaries) goes to many nodes without a copy each.
    pub async fn call_encoded(
        &self,
        module: &str,
        function: &str,
        arg: &Encoded,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        let node = self.node().to_string();
        let label = format!("{module}:{function}/1");
        // {call, M, F, [Arg], user}: everything but Arg is small.
        let mut head = vec![104, 5];
        head.extend(encode_bare(&atom_term("call")));
        head.extend(encode_bare(&atom_term(module)));
        head.extend(encode_bare(&atom_term(function)));
        head.extend_from_slice(&[108, 0, 0, 0, 1]);
        let mut tail = vec![106];
        tail.extend(encode_bare(&atom_term("user")));
        let reply = self.gen_call_shared("rex", &head, arg, &tail);
        outcome(reply, timeout, &node, &label, timeout).await
    }
}

/// `{call, M, F, Args, user}`, what `rex` takes.
fn rex_request(call: &Call) -> Term {
    tuple(vec![
        atom_term("call"),
        atom_term(&call.module),
        atom_term(&call.function),
        list(call.args.clone()),
        atom_term("user"),
    ])
}

/// Waits up to `left` for a sent call's reply and turns it into a result.
pub(crate) async fn outcome(
    reply: Result<Reply, String>,
    left: Duration,
    node: &str,
    label: &str,
    timeout: Duration,
) -> Result<Term, CallError> {
    let reply = reply.map_err(|detail| CallError::Disconnected {
        node: node.to_owned(),
        detail,
    })?;
    match reply.wait(left).await {
        Ok(term) => from_rex(term, node, label),
        Err(WaitError::TimedOut) => Err(CallError::Timeout {
            node: node.to_owned(),
            function: label.to_owned(),
            secs: timeout.as_secs_f64(),
        }),
        Err(WaitError::Closed(detail)) => Err(CallError::Disconnected {
            node: node.to_owned(),
            detail,
        }),
    }
}

fn from_rex(result: Term, node: &str, label: &str) -> Result<Term, CallError> {
    if let Ok([tag, reason]) = term::as_tuple_n::<2>(&result) {
        if term::is_atom(tag, "badrpc") {
            return Err(CallError::BadRpc {
                node: node.to_owned(),
                function: label.to_owned(),
                reason: reason.clone(),
            });
        }
    }
    Ok(result)
}
