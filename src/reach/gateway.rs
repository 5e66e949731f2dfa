//! Reaching target nodes through one gateway node (`--via`): the tool
//! holds one connection, to the gateway, and a relay process evaluated
//! there (`relay_main.erl`, `relay.erl`) carries every request to the
//! targets over the cluster's own connections, and their answers back.
//!
//! Requests of one kind issued together (the same script, the same shared
//! module binaries: one step of a deploy to every target) leave as one
//! message: the binaries cross the tool's link once, whatever the number
//! of targets, and only the bindings that differ between targets are sent
//! per target. A request is queued when it is made and the queue leaves at
//! [`Gateway::flush`], or when any of its answers is first waited for,
//! after every request made alongside it in the same task has joined it.

use crate::peer::connection::Reply;
use crate::peer::eval::encoded_bootstrap;
use crate::peer::term::{self, atom_term, binary, list, tuple, Encoded, EtfWriter, Pid, Term};
use crate::peer::{Bindings, Call, CallError, Connection, EvalArgs, Listener, NodeName, Script};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static RELAY: Script =
    Script::with_functions(include_str!("relay.erl"), include_str!("relay_main.erl"));

/// The gateway's connection and its relay.
#[derive(Debug)]
pub struct Gateway {
    conn: Connection,
    relay: Pid,
    queue: Mutex<Vec<Queued>>,
}

/// A script to evaluate on a target, not sent yet.
#[derive(Debug)]
struct Queued {
    script: &'static Script,
    args: EvalArgs,
    target: NodeName,
    reference: Term,
    timeout: Duration,
}

/// How long the gateway gives the targets to connect, of a call's
/// `timeout`: the rest is for its answer to come back.
pub fn reach_time(timeout: Duration) -> Duration {
    timeout * 4 / 5
}

/// Which targets the relay is to reach.
#[derive(Debug, Clone)]
pub enum Targets {
    /// These nodes (the gateway may be one of them).
    Named(Vec<NodeName>),
    /// The gateway and every visible node it is connected to.
    Cluster,
}

impl Gateway {
    /// Starts the relay on the gateway at the end of `conn`: one round
    /// trip, which also finds `targets` (connecting the gateway to any it
    /// is not connected to). Each target, and whether the gateway reaches
    /// it.
    pub async fn open(
        conn: Connection,
        targets: &Targets,
        timeout: Duration,
    ) -> Result<(Arc<Gateway>, Vec<(NodeName, bool)>), CallError> {
        let asked = match targets {
            Targets::Named(nodes) => {
                list(nodes.iter().map(|n| atom_term(&n.to_string())).collect())
            }
            Targets::Cluster => atom_term("cluster"),
        };
        let reach_ms = reach_time(timeout).as_millis();
        let bindings = Bindings::new()
            .set("Tool", &conn.self_pid())
            .set("Targets", &asked)
            .set("Ms", &term::int(reach_ms.min(i64::MAX as u128) as i64))
            .encode();
        let answer = conn.eval(&RELAY, &bindings, timeout).await?;
        let gateway = conn.node().to_string();
        let bad = |detail: &str| CallError::Unexpected {
            node: gateway.clone(),
            function: "the relay script".into(),
            detail: format!("expected {detail}, but got {}", term::show(&answer)),
        };
        let [relay, reached] =
            term::as_tuple_n::<2>(&answer).map_err(|_| bad("{Relay, Reached}"))?;
        let relay = term::as_pid(relay)
            .map_err(|_| bad("the relay's pid"))?
            .clone();
        let reached = term::as_list(reached)
            .map_err(|_| bad("[{Node, Reached}]"))?
            .iter()
            .map(|item| {
                let [node, ok] = term::as_tuple_n::<2>(item).ok()?;
                let node = term::as_atom(node).ok()?.parse::<NodeName>().ok()?;
                Some((node, term::is_atom(ok, "true")))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("[{Node, true | false}]"))?;
        let gateway = Gateway {
            conn,
            relay,
            queue: Mutex::new(Vec::new()),
        };
        Ok((Arc::new(gateway), reached))
    }

    pub fn node(&self) -> &NodeName {
        self.conn.node()
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The relay process, which the targets' lock holders watch.
    pub fn relay(&self) -> Term {
        Term::Pid(self.relay.clone())
    }

    /// [`Connection::eval`] of `script` on `target`, through the relay.
    /// Queued now; sent with the requests made alongside it.
    pub fn eval(
        self: &Arc<Self>,
        target: &NodeName,
        script: &'static Script,
        args: &EvalArgs,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Term, CallError>> + Send + 'static {
        let reply = self.conn.reserve_reply().and_then(|(address, reply)| {
            let reference = reference_of(&address)?;
            self.queue().push(Queued {
                script,
                args: args.clone(),
                target: target.clone(),
                reference,
                timeout,
            });
            Ok(reply)
        });
        let (me, target) = (self.clone(), target.clone());
        async move {
            // Every request made alongside this one in this task joins the
            // queue before it leaves.
            tokio::task::yield_now().await;
            me.flush();
            let value = crate::peer::rpc::outcome(
                reply,
                timeout,
                &target.to_string(),
                "erl_eval:expr/5",
                timeout,
            )
            .await;
            me.answer(&target, value)
        }
    }

    /// `call` on `target`, through the relay: the request leaves now, and
    /// the future returned waits for its value.
    pub fn call(
        self: &Arc<Self>,
        target: &NodeName,
        call: Call,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Term, CallError>> + Send + 'static {
        self.flush();
        let label = call.label();
        let reply = self.ask(|reference| {
            tuple(vec![
                atom_term("call"),
                atom_term(&target.to_string()),
                atom_term(&call.module),
                atom_term(&call.function),
                list(call.args),
                reference,
                millis(timeout),
            ])
        });
        let (me, target) = (self.clone(), target.clone());
        async move {
            let node = target.to_string();
            let value = crate::peer::rpc::outcome(reply, timeout, &node, &label, timeout).await;
            me.answer(&target, value)
        }
    }

    /// Sends `message` to the process registered as `name` on `target`.
    pub fn send(&self, target: &NodeName, name: &str, message: Term) -> Result<(), CallError> {
        self.flush();
        let command = tuple(vec![
            atom_term("send"),
            atom_term(&target.to_string()),
            atom_term(name),
            message,
        ]);
        self.command(command)
            .map_err(|detail| self.lost(target, detail))
    }

    /// An address `{Relay, Ref}` a process of `target` may send one
    /// `{Ref, Term}` to (the relay passes it on), and its listener.
    pub fn listen(&self, target: &NodeName) -> Result<(Term, Listener), CallError> {
        let (address, listener) = self.conn.listen()?;
        let reference = reference_of(&address).map_err(|detail| self.lost(target, detail))?;
        // The relay passes on only what comes to an address it was told of.
        self.command(tuple(vec![atom_term("expect"), reference.clone()]))
            .map_err(|detail| self.lost(target, detail))?;
        Ok((
            tuple(vec![self.relay(), reference]),
            listener.naming(&target.to_string()),
        ))
    }

    /// Waits until `target` leaves the cluster, or the gateway's
    /// connection ends; says why.
    pub async fn departure(&self, target: &NodeName) -> String {
        let watched = self.ask(|reference| {
            tuple(vec![
                atom_term("watch"),
                atom_term(&target.to_string()),
                reference,
            ])
        });
        let Ok(reply) = watched else {
            return self.gone(None);
        };
        match reply.wait(Duration::MAX).await {
            Ok(_) => format!("it left the cluster of the gateway `{}`", self.node()),
            Err(_) => self.gone(None),
        }
    }

    /// Why the gateway's connection ended, or `None` while it is up.
    pub fn closed_reason(&self) -> Option<String> {
        self.conn.closed_reason().map(|r| self.gone(Some(r)))
    }

    fn gone(&self, reason: Option<String>) -> String {
        let reason = reason
            .or_else(|| self.conn.closed_reason())
            .unwrap_or_else(|| "connection closed".into());
        format!(
            "the connection to the gateway `{}` was lost ({reason})",
            self.node()
        )
    }

    /// Sends every queued request: one message per script and shared
    /// binaries, whatever the number of targets.
    pub fn flush(&self) {
        let queued = std::mem::take(&mut *self.queue());
        for batch in batches(queued) {
            let (head, shared) = eval_message(&batch);
            if let Err(e) = self.conn.send_parts(&self.relay, &head, &shared, &[]) {
                // Each request's answer fails with the connection's reason.
                tracing::debug!("a request to the relay was not sent: {e}");
            }
        }
    }

    /// Sends the relay `command(Ref)`, `Ref` the reference its answer
    /// comes back under; the reply that waits for that answer.
    fn ask(&self, command: impl FnOnce(Term) -> Term) -> Result<Reply, String> {
        let (address, reply) = self.conn.reserve_reply()?;
        self.command(command(reference_of(&address)?))?;
        Ok(reply)
    }

    fn command(&self, command: Term) -> Result<(), String> {
        let message = tuple(vec![atom_term("$hotswap_relay"), command]);
        let bytes = term::encode_bare(&message);
        self.conn
            .send_parts(&self.relay, &bytes, &Encoded::default(), &[])
    }

    /// A target's answer in the target's terms: a target the gateway lost,
    /// or a gateway this tool lost, is a lost connection to the target.
    fn answer(&self, target: &NodeName, value: Result<Term, CallError>) -> Result<Term, CallError> {
        match value {
            Err(CallError::BadRpc { reason, .. }) if is_noconnection(&reason) => {
                Err(CallError::Disconnected {
                    node: target.to_string(),
                    detail: format!("it left the cluster of the gateway `{}`", self.node()),
                })
            }
            Err(CallError::Disconnected { detail, .. }) => Err(self.lost(target, detail)),
            other => other,
        }
    }

    fn lost(&self, target: &NodeName, detail: String) -> CallError {
        CallError::Disconnected {
            node: target.to_string(),
            detail: self.gone(Some(detail)),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `{hotswap_relay, noconnection}`: the relay's word for a target it could
/// not reach.
fn is_noconnection(reason: &Term) -> bool {
    matches!(term::as_tuple_n::<2>(reason), Ok([tag, why])
        if term::is_atom(tag, "hotswap_relay") && term::is_atom(why, "noconnection"))
}

/// The `Ref` of an address `{Pid, Ref}`.
fn reference_of(address: &Term) -> Result<Term, String> {
    term::as_tuple_n::<2>(address)
        .map(|[_, reference]| reference.clone())
        .map_err(|e| e.to_string())
}

fn millis(d: Duration) -> Term {
    term::int(d.as_millis().min(i64::MAX as u128 / 2) as i64)
}

/// The queued requests grouped by script and shared binaries, in the order
/// they were made.
fn batches(queued: Vec<Queued>) -> Vec<Vec<Queued>> {
    let mut out: Vec<Vec<Queued>> = Vec::new();
    for q in queued {
        let key = batch_key(&q);
        match out.iter_mut().find(|b| batch_key(&b[0]) == key) {
            Some(batch) => batch.push(q),
            None => out.push(vec![q]),
        }
    }
    out
}

fn batch_key(q: &Queued) -> (usize, usize) {
    let shared = q
        .args
        .shared
        .as_ref()
        .map_or(0, |(_, s)| Arc::as_ptr(&s.0) as usize);
    (q.script as *const Script as usize, shared)
}

/// `{'$hotswap_relay', {eval, Boot, Source, Each, Ms, Common}}` for a
/// batch, as the message's bytes before the shared binaries, and those:
/// the bindings every request has alike go once, in `Common`; each
/// target's own in `Each`.
fn eval_message(batch: &[Queued]) -> (Vec<u8>, Encoded) {
    let first = &batch[0];
    let common: BTreeMap<&String, &Vec<u8>> = first
        .args
        .values
        .iter()
        .filter(|(name, value)| {
            batch
                .iter()
                .all(|q| q.args.values.get(*name) == Some(value))
        })
        .collect();
    let timeout = batch.iter().map(|q| q.timeout).max().unwrap_or_default();
    let mut w = EtfWriter::default();
    w.tuple_header(2).term(&atom_term("$hotswap_relay"));
    w.tuple_header(6)
        .term(&atom_term("eval"))
        .raw(encoded_bootstrap());
    w.term(&binary(first.script.packed().to_vec()));
    w.list_header(batch.len() as u32);
    for q in batch {
        let own: Vec<(&String, &Vec<u8>)> = q
            .args
            .values
            .iter()
            .filter(|(name, _)| !common.contains_key(name))
            .collect();
        w.tuple_header(3).term(&atom_term(&q.target.to_string()));
        w.map_header(own.len() as u32);
        for (name, value) in own {
            w.term(&atom_term(name)).raw(value);
        }
        w.term(&q.reference);
    }
    w.nil();
    w.term(&millis(timeout + Duration::from_secs(5)));
    w.map_header((common.len() + usize::from(first.args.shared.is_some())) as u32);
    for (name, value) in &common {
        w.term(&atom_term(name)).raw(value);
    }
    match &first.args.shared {
        Some((name, shared)) => {
            w.term(&atom_term(name));
            (w.into_bytes(), shared.clone())
        }
        None => (w.into_bytes(), Encoded::default()),
    }
}
