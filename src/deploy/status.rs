//! `status`: per node, how the local modules compare with what runs there.
//! Changes nothing and takes no lock.

use super::process::processes;
use super::remote::{mods_term, parse_state, Lingering, Remote, State};
use super::report::NodeReport;
use super::session::Session;
use crate::beam::{Md5, Module};
use crate::peer::term::{self, atom_term, list};
use crate::peer::{Bindings, CallError, Script};
use futures::future::join_all;

/// Per node, how the local modules compare with what runs there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub changed: Vec<String>,
    pub new: Vec<String>,
    pub unchanged: Vec<String>,
    /// Not loaded, but the node's own copy on its code path is identical.
    pub on_disk: Vec<String>,
    /// Loaded modules of the app that have no local file.
    pub absent_locally: Vec<String>,
    /// The processes a deploy would migrate through `code_change`: those
    /// of changed modules whose local build exports it.
    pub would_migrate: Vec<super::remote::Lingering>,
}

/// Compares without touching anything: one request to every node at
/// once (through a gateway, one for all of them).
pub async fn status(
    session: &Session,
    modules: &[Module],
    apps: &[String],
) -> Result<Vec<NodeStatus>, Vec<NodeReport>> {
    let want: Vec<(&str, Option<Md5>)> = modules
        .iter()
        .map(|m| (m.name.as_str(), Some(m.md5)))
        .collect();
    let migrating: Vec<&str> = modules
        .iter()
        .filter(|m| m.code_change)
        .map(|m| m.name.as_str())
        .collect();
    let remotes = session.remotes();
    let asked: Vec<_> = remotes
        .iter()
        .map(|r| r.status_step(&want, &migrating, apps))
        .collect();
    let answers = join_all(asked).await;
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for (r, answer) in remotes.iter().zip(answers) {
        match answer {
            Ok(found) => out.push(node_status(r.node(), modules, found)),
            Err(e) => {
                let mut report = NodeReport::new(&r.node());
                report.fail(None, e.to_string());
                failed.push(report);
            }
        }
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        Err(failed)
    }
}

/// One node's status, from its answer.
fn node_status(node: String, modules: &[Module], found: StatusFound) -> NodeStatus {
    let mut s = NodeStatus {
        node,
        changed: vec![],
        new: vec![],
        unchanged: vec![],
        on_disk: vec![],
        absent_locally: found.extra,
        would_migrate: found.callbacks,
    };
    for (m, state) in modules.iter().zip(found.states) {
        let list = match state {
            State::Absent => &mut s.new,
            State::OnDisk(x) if x == m.md5 => &mut s.on_disk,
            State::Loaded(x) if x == m.md5 => &mut s.unchanged,
            _ => &mut s.changed,
        };
        list.push(m.name.clone());
    }
    s
}

static STATUS: Script = Script::with_functions(
    concat!(
        include_str!("node/prelude.erl"),
        include_str!("node/inspect.erl"),
        include_str!("node/migrate.erl")
    ),
    include_str!("node/status_main.erl"),
);

/// What `status` learns of a node in its one request.
#[derive(Debug, Clone)]
pub struct StatusFound {
    /// One per module asked about.
    pub states: Vec<State>,
    /// The processes a deploy would migrate through `code_change`.
    pub callbacks: Vec<Lingering>,
    /// Loaded modules of the node's applications that are not local.
    pub extra: Vec<String>,
}

impl Remote {
    /// The status step ([`super::status`](fn@super::status)): what the node runs of `want`,
    /// the processes of `migrating` (those whose local build exports
    /// `code_change`) a deploy would migrate, and the loaded modules of
    /// `apps` not in `want`. The request leaves now; the future waits for
    /// the answer.
    pub fn status_step(
        &self,
        want: &[(&str, Option<Md5>)],
        migrating: &[&str],
        apps: &[String],
    ) -> impl std::future::Future<Output = Result<StatusFound, CallError>> + Send + 'static {
        let bindings = Bindings::new()
            .set("Mods", &mods_term(want, &[]))
            .set(
                "Migrating",
                &list(migrating.iter().map(|m| atom_term(m)).collect()),
            )
            .set("Apps", &list(apps.iter().map(|a| atom_term(a)).collect()))
            .encode();
        let answer = self.link.eval(&STATUS, &bindings, self.timeout);
        let (me, asked) = (self.clone(), want.len());
        async move {
            let answer = answer.await?;
            let bad = |detail: &str| me.unexpected("status", detail, &answer);
            let [states, callbacks, extra] =
                term::as_tuple_n::<3>(&answer).map_err(|e| bad(&e.to_string()))?;
            let states = term::as_list(states)
                .map_err(|e| bad(&e.to_string()))?
                .iter()
                .map(parse_state)
                .collect::<Option<Vec<State>>>()
                .filter(|s| s.len() == asked)
                .ok_or_else(|| bad("a state per module"))?;
            let extra = term::as_list(extra)
                .map_err(|e| bad(&e.to_string()))?
                .iter()
                .map(|m| term::as_atom(m).map(str::to_owned))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| bad(&e.to_string()))?;
            Ok(StatusFound {
                states,
                callbacks: processes(callbacks),
                extra,
            })
        }
    }
}
