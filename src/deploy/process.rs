//! A process on a node, as the tool names it to the user: its pid as the
//! node's shell prints it and its registered name, read from what the
//! node scripts report (`[{Module, Pid, Name}]`).

use crate::dist::term::{self, Term};

/// A process and the module it is reported for: one still running a
/// module's old code (lingering), or one migrated through its
/// `code_change`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lingering {
    pub module: String,
    pub pid: String,
    pub name: Option<String>,
}

/// `[{Module, Pid, Name}]`; entries of another shape are skipped.
pub fn processes(t: &Term) -> Vec<Lingering> {
    term::as_list(t)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            let [m, pid, name] = term::as_tuple_n::<3>(item).ok()?;
            Some(Lingering {
                module: term::as_atom(m).ok()?.to_owned(),
                pid: show_pid(pid),
                name: name_of(name),
            })
        })
        .collect()
}

/// A registered name: an atom, or `process_info/2`'s `{registered_name,
/// Name}`; `undefined`, `[]` (none) and anything else are no name.
pub fn name_of(t: &Term) -> Option<String> {
    let name = match term::as_tuple_n::<2>(t) {
        Ok([tag, name]) if term::is_atom(tag, "registered_name") => name,
        _ => t,
    };
    term::as_atom(name)
        .ok()
        .filter(|n| *n != "undefined")
        .map(str::to_owned)
}

/// A pid as the node's own shell prints it.
pub fn show_pid(pid: &Term) -> String {
    match pid {
        Term::Pid(p) => format!("<0.{}.{}>", p.id, p.serial),
        other => term::show(other),
    }
}

/// `process <0.90.0> (name)`, or without the name when it has none.
pub fn describe_process(pid: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("process {pid} ({n})"),
        None => format!("process {pid}"),
    }
}
