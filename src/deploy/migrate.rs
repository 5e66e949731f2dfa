//! Migrating running processes across a change of their callback module:
//! suspend, load, `code_change`, resume, as OTP's release handler does for
//! `{update, Mod, {advanced, Extra}}`, inside the deploy's transaction. The
//! node does the work (`node/migrate.erl`); this module says what it is
//! asked to do and reads what it reports.
//!
//! A deploy migrates up; a rollback, and the undo of a deploy, migrate
//! down (`{down, Vsn}` in the code about to be replaced, before the prior
//! code loads). A node whose `code_change` failed holds its processes
//! suspended for the run's undo, which loads the prior code and then lets
//! them go ([`Migration::Release`]); if the tool goes away first, the node
//! lets them go itself.

use crate::beam::Module;
pub use crate::deploy::options::{Care, DEFAULT_OBSERVE};
use crate::deploy::process::{describe_process, name_of, show_pid, Lingering};
use crate::peer::term::{self, atom_term, list, tuple, Term};
use std::time::Duration;

/// The longest each migration step (probe, suspend, `code_change`,
/// resume; every process at once) may take on a node: sys's default.
const LONGEST_STEP: Duration = Duration::from_secs(5);

/// What a run asks of the processes whose callback module changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Migration {
    /// Load without migrating (`--no-code-change`, or no code changes).
    Off,
    /// The new code's `code_change(OldVsn, State, Extra)` (a deploy).
    Up,
    /// The replaced code's `code_change({down, Vsn}, State, Extra)` (a
    /// rollback, or the undo of a deploy).
    Down,
    /// The undo of a node whose `code_change` failed: its processes,
    /// held suspended by this keeper, go on once the prior code is back.
    Release(Term),
}

impl Migration {
    /// This migration for a node loading `loads`: none going up when no
    /// module loaded exports `code_change` (most deploys), so the node
    /// does not even look for processes. Going down, the code that
    /// decides is the node's, and the node looks.
    pub fn for_loads<'a>(&self, mut loads: impl Iterator<Item = &'a Module>) -> Migration {
        match self {
            Migration::Up if !loads.any(|m| m.code_change) => Migration::Off,
            other => other.clone(),
        }
    }

    /// The way back from this migration, for an undo.
    pub fn reversed(&self) -> Migration {
        match self {
            Migration::Up => Migration::Down,
            Migration::Down => Migration::Up,
            Migration::Off | Migration::Release(_) => Migration::Off,
        }
    }

    /// `Migrate`, as `node/migrate.erl` takes it, for a call that may take
    /// `timeout`; `apart`: the address the watch after the change is
    /// reported to, when the answer does not wait for it.
    pub fn term(&self, timeout: Duration, care: Care, apart: Option<&Term>) -> Term {
        let window = match apart {
            Some(address) => tuple(vec![millis(care.observe), address.clone()]),
            None => millis(care.observe),
        };
        let care = tuple(vec![
            atom_term(if care.any_loop { "any" } else { "otp" }),
            window,
        ]);
        let dir = match self {
            Migration::Off => return tuple(vec![atom_term("none"), care]),
            Migration::Release(keeper) => return tuple(vec![atom_term("release"), keeper.clone()]),
            Migration::Up => "up",
            Migration::Down => "down",
        };
        tuple(vec![
            atom_term(dir),
            list(Vec::new()),
            millis(step(timeout)),
            millis(timeout),
            care,
        ])
    }
}

/// One migration step's limit: [`LONGEST_STEP`], or less for a short
/// timeout, so that the probe, suspend, `code_change`, its way back and
/// resume all fit in one call.
pub fn step(timeout: Duration) -> Duration {
    LONGEST_STEP.min(timeout / 6).max(Duration::from_millis(1))
}

fn millis(d: Duration) -> Term {
    term::int(d.as_millis().min(u128::from(u32::MAX)) as i64)
}

/// A process named in a migration's report, with what is said of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProcessNote {
    pub module: String,
    pub pid: String,
    pub name: Option<String>,
    /// What it was running (busy), or why its `code_change` failed.
    pub detail: String,
}

impl ProcessNote {
    /// The process, for the user: `process <0.90.0> (name) of `module``.
    pub fn describe(&self) -> String {
        format!(
            "{} of `{}`",
            describe_process(&self.pid, self.name.as_deref()),
            self.module
        )
    }
}

/// `[{Module, Pid, Name, Detail}]`; entries of another shape are skipped.
pub fn notes(t: &Term) -> Vec<ProcessNote> {
    term::as_list(t)
        .unwrap_or_default()
        .iter()
        .filter_map(|item| {
            let [m, pid, name, detail] = term::as_tuple_n::<4>(item).ok()?;
            Some(ProcessNote {
                module: term::as_atom(m).ok()?.to_owned(),
                pid: show_pid(pid),
                name: name_of(name),
                detail: term::as_text(detail).unwrap_or_else(|_| term::show(detail)),
            })
        })
        .collect()
}

/// What a node migrated: each process, and how long the longest was
/// suspended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Migrated {
    pub processes: Vec<Lingering>,
    pub suspended: Duration,
}

/// `{[{Module, Pid, Name}], SuspendedUs}`.
pub fn migrated(t: &Term) -> Option<Migrated> {
    let [processes, us] = term::as_tuple_n::<2>(t).ok()?;
    let us = u64::try_from(term::as_int(us).ok()?).ok()?;
    term::as_list(processes).ok()?;
    Some(Migrated {
        processes: crate::deploy::process::processes(processes),
        suspended: Duration::from_micros(us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_timeout_shortens_each_step_and_the_longest_is_sys_default() {
        assert_eq!(step(Duration::from_secs(30)), Duration::from_secs(5));
        assert_eq!(step(Duration::from_secs(3)), Duration::from_millis(500));
        assert!(step(Duration::from_millis(1)) > Duration::ZERO);
    }

    #[test]
    fn going_up_without_a_code_change_among_the_loads_the_node_is_not_asked_to_look() {
        let module = |code_change: bool| Module {
            name: "m".into(),
            md5: crate::beam::Md5([0; 16]),
            bytes: Default::default(),
            loadable: Default::default(),
            path: "m.beam".into(),
            code_change,
        };
        let (plain, server) = (module(false), module(true));
        assert_eq!(
            Migration::Up.for_loads([&plain].into_iter()),
            Migration::Off
        );
        assert_eq!(
            Migration::Up.for_loads([&plain, &server].into_iter()),
            Migration::Up
        );
        assert_eq!(
            Migration::Down.for_loads([&plain].into_iter()),
            Migration::Down
        );
    }

    #[test]
    fn an_undo_migrates_the_other_way_and_a_release_not_at_all() {
        assert_eq!(Migration::Up.reversed(), Migration::Down);
        assert_eq!(Migration::Down.reversed(), Migration::Up);
        assert_eq!(
            Migration::Release(atom_term("k")).reversed(),
            Migration::Off
        );
        let off = Migration::Off.term(Duration::from_secs(1), Care::default(), None);
        assert!(
            matches!(term::as_tuple(&off), Ok([tag, _]) if term::is_atom(tag, "none")),
            "{off:?}"
        );
    }
}
