//! What a node answers to apply ([`crate::deploy::step::apply`]), and how
//! the answer is read: loaded, busy, stuck, refused, a migration that
//! failed, or aborted.

use crate::beam::Md5;
use crate::deploy::migrate::{self, notes, Migrated, ProcessNote};
use crate::deploy::process::processes;
use crate::deploy::remote::{said, Lingering, Remote};
use crate::peer::term::{self, Term};
use crate::peer::CallError;

/// How [`Remote::apply`] went.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Everything loaded or removed.
    Done {
        killed: usize,
        lingering: Vec<Lingering>,
        /// What the node ran of each changed module right after: its MD5,
        /// or `None` when not loaded.
        running: Vec<(String, Option<Md5>)>,
        /// The processes migrated by their `code_change`.
        migrated: Migrated,
        /// With `--force`: those that keep a fun made by the old code the
        /// purge took; each dies when it calls it.
        doomed: Vec<Lingering>,
        /// Loaded without migrating: their `sys` loop is not OTP's own
        /// (`detail` names it).
        not_migrated: Vec<ProcessNote>,
        /// How many processes were watched after the change.
        watched: usize,
        /// Those of them that died while watched (`detail`: why).
        died: Vec<ProcessNote>,
        /// The node reports the watch apart, once it is over
        /// ([`crate::deploy::observing`]): `died` is not known yet.
        apart: bool,
    },
    /// Processes to migrate did not answer in time (busy in a long call):
    /// nothing was changed.
    Busy(Vec<ProcessNote>),
    /// A `code_change` failed (`causes`); the processes already migrated
    /// were taken back. `left`: those whose state is in neither shape for
    /// sure. `changed`: the new code was loaded, and `keeper` holds the
    /// processes suspended until the undo loads the prior code.
    MigrationFailed {
        causes: Vec<ProcessNote>,
        left: Vec<ProcessNote>,
        changed: bool,
        keeper: Option<Term>,
    },
    /// Old code in use and no `--force`: nothing was changed.
    Stuck(Vec<Lingering>),
    /// Told to abort, or its lock went before the word came: nothing was
    /// changed.
    Aborted,
    /// The node refused; `changed` says whether some modules were loaded
    /// before it did.
    Refused {
        reasons: Vec<(String, String)>,
        changed: bool,
    },
    /// With `--force`: the purge of old code killed `killed` processes and
    /// doomed `doomed`, then the node failed as `then` says.
    Forced {
        killed: usize,
        doomed: Vec<Lingering>,
        then: Box<Applied>,
    },
}

impl Remote {
    /// Reads apply's value (`value`, part of `answer`).
    pub(in crate::deploy) fn applied(
        &self,
        value: &Term,
        answer: &Term,
    ) -> Result<Applied, CallError> {
        let bad = |detail: &str| self.unexpected("apply", detail, answer);
        if term::is_atom(value, "aborted") {
            return Ok(Applied::Aborted);
        }
        let items = term::as_tuple(value).map_err(|e| bad(&e.to_string()))?;
        match items {
            [tag, killed, lingering, running, migrated, more] if term::is_atom(tag, "ok") => {
                if let Some(took) = said(more, "took") {
                    record_took(&self.node(), took);
                }
                Ok(Applied::Done {
                    killed: term::as_int(killed).unwrap_or(0).max(0) as usize,
                    lingering: processes(lingering),
                    running: parse_running(running).ok_or_else(|| bad("what the node runs"))?,
                    migrated: migrate::migrated(migrated)
                        .ok_or_else(|| bad("the processes migrated"))?,
                    doomed: said(more, "doomed").map(processes).unwrap_or_default(),
                    not_migrated: said(more, "not_migrated").map(notes).unwrap_or_default(),
                    watched: said(more, "watched")
                        .and_then(|n| term::as_int(n).ok())
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or(0),
                    died: said(more, "died").map(notes).unwrap_or_default(),
                    apart: said(more, "died").is_some_and(|d| term::is_atom(d, "apart")),
                })
            }
            [tag, stuck] if term::is_atom(tag, "stuck") => Ok(Applied::Stuck(processes(stuck))),
            [tag, busy] if term::is_atom(tag, "busy") => Ok(Applied::Busy(notes(busy))),
            [tag, causes, left, changed, keeper] if term::is_atom(tag, "migrate_failed") => {
                Ok(Applied::MigrationFailed {
                    causes: notes(causes),
                    left: notes(left),
                    changed: term::is_atom(changed, "true"),
                    keeper: matches!(keeper, Term::Pid(_)).then(|| keeper.clone()),
                })
            }
            [tag, killed, doomed, then] if term::is_atom(tag, "forced") => Ok(Applied::Forced {
                killed: term::as_int(killed).unwrap_or(0).max(0) as usize,
                doomed: processes(doomed),
                then: Box::new(self.applied(then, answer)?),
            }),
            [tag, errors, changed] if term::is_atom(tag, "error") => Ok(Applied::Refused {
                reasons: term::as_list(errors)
                    .unwrap_or_default()
                    .iter()
                    .map(refusal)
                    .collect(),
                changed: term::is_atom(changed, "true"),
            }),
            _ => Err(bad(
                "ok, stuck, busy, error, migrate_failed, forced or aborted",
            )),
        }
    }
}

fn parse_running(t: &Term) -> Option<Vec<(String, Option<Md5>)>> {
    term::as_list(t)
        .ok()?
        .iter()
        .map(|item| {
            let [m, md5] = term::as_tuple_n::<2>(item).ok()?;
            let md5 = match term::is_atom(md5, "false") {
                true => None,
                false => Some(Md5(term::as_binary(md5).ok()?.try_into().ok()?)),
            };
            Some((term::as_atom(m).ok()?.to_owned(), md5))
        })
        .collect()
}

fn refusal(t: &Term) -> (String, String) {
    match term::as_tuple_n::<2>(t) {
        Ok([m, why]) => (
            term::as_atom(m)
                .map(str::to_owned)
                .unwrap_or_else(|_| term::show(m)),
            explain(why),
        ),
        Err(_) => ("?".into(), term::show(t)),
    }
}

/// A node's reason for refusing a module, in words a user acts on.
fn explain(why: &Term) -> String {
    let raw = term::show(why);
    match term::as_atom(why) {
        Ok("sticky_directory") => {
            "it is sticky (part of kernel, stdlib or compiler) and the node refuses to replace it"
                .into()
        }
        Ok("not_purged") => "old code is still loaded".into(),
        Ok("badfile") => {
            "the node rejected the object code (compiled for another OTP release?)".into()
        }
        Ok("on_load_failure") => "its -on_load function failed".into(),
        _ => raw,
    }
}

/// Records where the node's time went in its apply step (`took`: its
/// clock at five points), for `--timings`: placed back from now, when its
/// answer came, so the way back is counted in the last.
fn record_took(node: &str, took: &Term) {
    let Ok(points) = term::as_list(took) else {
        return;
    };
    let points: Vec<i64> = points.iter().filter_map(|t| term::as_int(t).ok()).collect();
    let [t0, t1, t2, t3, t4] = points[..] else {
        return;
    };
    let now = std::time::Instant::now();
    let back = |t: i64| {
        let us = u64::try_from(t4.saturating_sub(t)).unwrap_or(0);
        now.checked_sub(std::time::Duration::from_micros(us))
            .unwrap_or(now)
    };
    for (stage, from, to) in [
        ("node: prepare", t0, t1),
        ("node: wait for the word", t1, t2),
        ("node: load and migrate", t2, t3),
        ("node: watch after", t3, t4),
    ] {
        if to >= from {
            crate::timings::between(stage, Some(node), back(from), back(to).max(back(from)));
        }
    }
}
