//! Remote procedure calls through `rex`, the server behind `rpc:call/4` on
//! every node: `{'$gen_call', {SelfPid, Ref}, {call, M, F, Args, user}}` in,
//! `{Ref, Result}` out. Each call has its own reference, so any number can
//! be in flight on one connection; `{badrpc, Reason}` becomes
//! [`CallError::BadRpc`].

use super::connection::{Connection, WaitError};
use super::error::CallError;
use super::term::{self, atom_term, list, tuple, Term};
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

    fn label(&self) -> String {
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
        let mut results = self
            .call_all(vec![Call::new(module, function, args)], timeout)
            .await;
        results.pop().unwrap_or_else(|| {
            Err(CallError::Disconnected {
                node: self.node().to_string(),
                detail: "no result".into(),
            })
        })
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
            .map(|c| {
                let request = tuple(vec![
                    atom_term("call"),
                    atom_term(&c.module),
                    atom_term(&c.function),
                    list(c.args.clone()),
                    atom_term("user"),
                ]);
                self.gen_call("rex", request)
            })
            .collect();
        let mut results = Vec::with_capacity(calls.len());
        for (call, reply) in calls.iter().zip(sent) {
            let result = match reply {
                Err(detail) => Err(CallError::Disconnected {
                    node: node.clone(),
                    detail,
                }),
                Ok(reply) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    match reply.wait(left).await {
                        Ok(term) => from_rex(term, &node, call),
                        Err(WaitError::TimedOut) => Err(CallError::Timeout {
                            node: node.clone(),
                            function: call.label(),
                            secs: timeout.as_secs_f64(),
                        }),
                        Err(WaitError::Closed(detail)) => Err(CallError::Disconnected {
                            node: node.clone(),
                            detail,
                        }),
                    }
                }
            };
            results.push(result);
        }
        results
    }
}

fn from_rex(result: Term, node: &str, call: &Call) -> Result<Term, CallError> {
    if let Ok([tag, reason]) = term::as_tuple_n::<2>(&result) {
        if term::is_atom(tag, "badrpc") {
            return Err(CallError::BadRpc {
                node: node.to_owned(),
                function: call.label(),
                reason: reason.clone(),
            });
        }
    }
    Ok(result)
}
