//! The watch after a change, reported apart: in a held session (`watch`)
//! a node answers once the change runs, and an observer of its own
//! (`watching` in `node/migrate.erl`) watches the processes the change
//! migrated or passed over for the window, then reports who died. The
//! next change need not wait for the window; whoever dies in it is still
//! reported, by a later event, or named as not known if the report cannot
//! come.

use super::migrate::{notes, ProcessNote};
use crate::peer::term::{self, Term};
use crate::peer::Listener;
use std::time::Duration;

/// Where a node reports the watch after its change: the address sent
/// with the request, and the listener that waits for the report.
pub(super) struct Apart {
    pub address: Term,
    listener: Listener,
    limit: Duration,
}

impl Apart {
    /// Waits with `listener` for the report sent to `address`, for up to
    /// `limit` once the node has answered.
    pub fn new(address: Term, listener: Listener, limit: Duration) -> Apart {
        Apart {
            address,
            listener,
            limit,
        }
    }

    /// The watch of `watched` processes under way on `node`, whose answer
    /// said its report comes apart.
    pub fn observing(self, node: &str, watched: usize) -> Observing {
        Observing {
            node: node.to_owned(),
            watched,
            listener: self.listener,
            limit: self.limit,
        }
    }
}

/// A watch after a change under way on a node, to be reported apart.
pub struct Observing {
    pub node: String,
    /// How many processes it watches.
    pub watched: usize,
    listener: Listener,
    /// How long the report may take: the window and the node's timeout.
    limit: Duration,
}

/// How a watch after a change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Those that died in the window (none: all lived).
    Died(Vec<ProcessNote>),
    /// No report came: why. Whether they lived is not known.
    Unknown(String),
}

impl Observing {
    /// Waits for the node's report.
    pub async fn outcome(self) -> Observed {
        let report = self
            .listener
            .message(self.limit, "the watch after the change")
            .await;
        match report {
            Ok(report) => died(&report).map_or_else(
                || {
                    Observed::Unknown(format!(
                        "its report was not understood: {}",
                        term::show(&report)
                    ))
                },
                Observed::Died,
            ),
            Err(e) => Observed::Unknown(e.to_string()),
        }
    }
}

/// `{observed, Died}`.
fn died(report: &Term) -> Option<Vec<ProcessNote>> {
    match term::as_tuple_n::<2>(report) {
        Ok([tag, died]) if term::is_atom(tag, "observed") && term::as_list(died).is_ok() => {
            Some(notes(died))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::term::{atom_term, list, tuple};

    #[test]
    fn a_report_names_who_died_and_anything_else_is_not_understood() {
        let none = tuple(vec![atom_term("observed"), list(Vec::new())]);
        assert_eq!(died(&none), Some(Vec::new()));
        assert_eq!(died(&atom_term("observed")), None);
        assert_eq!(
            died(&tuple(vec![atom_term("other"), list(Vec::new())])),
            None
        );
    }
}
