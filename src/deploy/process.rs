//! A process on a node, as the tool names it to the user: its pid as the
//! node's shell prints it and its registered name, read from what the
//! node scripts report (`[{Module, Pid, Name}]`).

use crate::peer::term::{self, Term};

/// A process and the module it is reported for: one that keeps a
/// module's old code (lingering; `why` says how), or one migrated through
/// its `code_change`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lingering {
    pub module: String,
    pub pid: String,
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<Hold>,
}

/// How a process keeps a module's old code: what would kill it if that
/// code were purged (`node/purge.erl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// It runs the old code: a purge kills it.
    Running,
    /// It keeps a fun the old code made, in its process dictionary.
    FunInDictionary,
    /// It has a fun the old code made in its message queue.
    FunInMessages,
    /// It keeps a fun the old code made in its state (an OTP behaviour).
    FunInState,
    /// A fun of the module is on its stack, and whether the old code or
    /// the current one made it cannot be told.
    FunOnStack,
    /// A process that could not be looked at whole: a sys loop that did
    /// not give its state in time, or a stack too large for the VM to
    /// print whole.
    Unchecked,
}

impl Hold {
    fn of(t: &Term) -> Option<Hold> {
        if let Ok([tag, place]) = term::as_tuple_n::<2>(t) {
            if !term::is_atom(tag, "fun_in") {
                return None;
            }
            return match term::as_atom(place).ok()? {
                "dictionary" => Some(Hold::FunInDictionary),
                "messages" => Some(Hold::FunInMessages),
                "state" => Some(Hold::FunInState),
                "stack" => Some(Hold::FunOnStack),
                _ => None,
            };
        }
        match term::as_atom(t).ok()? {
            "running" => Some(Hold::Running),
            "unchecked" => Some(Hold::Unchecked),
            _ => None,
        }
    }
}

impl Lingering {
    /// What keeps the process in the module's old code, for the user:
    /// `runs old code of `m``.
    pub fn what(&self) -> String {
        let m = &self.module;
        match self.why.unwrap_or(Hold::Running) {
            Hold::Running => format!("runs old code of `{m}`"),
            Hold::FunInDictionary => {
                format!("keeps a fun made by the old code of `{m}` in its process dictionary")
            }
            Hold::FunInMessages => {
                format!("has a fun made by the old code of `{m}` in its message queue")
            }
            Hold::FunInState => format!("keeps a fun made by the old code of `{m}` in its state"),
            Hold::FunOnStack => format!(
                "has a fun of `{m}` on its stack, which may be the old code's (it cannot be told)"
            ),
            Hold::Unchecked => format!(
                "could not be checked for funs made by the old code of `{m}` (its state did not come in time, or its stack is too large to see whole)"
            ),
        }
    }

    /// Whether a purge of the old code would kill it at once (rather than
    /// doom it to die when it calls a fun).
    pub fn runs_old_code(&self) -> bool {
        matches!(self.why, None | Some(Hold::Running))
    }
}

/// `[{Module, Pid, Name}]` or `[{Module, Pid, Name, Why}]`; entries of
/// another shape are skipped.
pub fn processes(t: &Term) -> Vec<Lingering> {
    term::as_list(t)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            let (m, pid, name, why) = match term::as_tuple(item).ok()? {
                [m, pid, name] => (m, pid, name, None),
                [m, pid, name, why] => (m, pid, name, Some(Hold::of(why)?)),
                _ => return None,
            };
            Some(Lingering {
                module: term::as_atom(m).ok()?.to_owned(),
                pid: show_pid(pid),
                name: name_of(name),
                why,
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
