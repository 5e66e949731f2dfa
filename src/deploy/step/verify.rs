//! [`Instruction::Verify`](crate::deploy::plan::Instruction::Verify): reads
//! back what every changed node runs, from its apply step's answer where
//! that said it, else in a round trip of its own. A mismatch stops the run
//! past the point of no return: it undoes.

use crate::beam::Md5;
use crate::deploy::part::Part;
use crate::deploy::remote::{Remote, State};
use crate::deploy::report::{Failure, Outcome};
use crate::deploy::run::{Run, Stop};
use crate::peer::CallError;
use futures::future::join_all;

impl Run<'_> {
    /// Reads back what every changed node runs now.
    pub async fn verify(&mut self) -> Result<(), Stop> {
        let answers = join_all(self.parts.iter().map(read_back)).await;
        let mut mismatch = false;
        for (p, answer) in self.parts.iter_mut().zip(answers) {
            for failure in answer {
                p.report.fail(failure.module.as_deref(), failure.reason);
                mismatch = true;
            }
        }
        if mismatch {
            return Err(self.stop(Outcome::VerifyMismatch));
        }
        Ok(())
    }
}

/// After a flight that got no answer: whether the node runs any of what
/// it was sent (or cannot be asked: then it may, and is undone).
pub(in crate::deploy) async fn landed_anyway(p: &Part) -> bool {
    let want = p.changing();
    match p.remote.mismatches(&want).await {
        Ok(wrong) => wrong.len() < want.len(),
        Err(_) => true,
    }
}

/// What a changed node runs now that differs from its goals: as its apply
/// step read it back, else as asked in a round trip of its own.
async fn read_back(p: &Part) -> Vec<Failure> {
    let want = p.changing();
    let wrong = match p.running.as_ref().and_then(|r| mismatches(&want, r)) {
        Some(wrong) => Ok(wrong),
        None => p.remote.mismatches(&want).await,
    };
    match wrong {
        Ok(wrong) => wrong
            .into_iter()
            .map(|(i, state)| Failure {
                module: Some(want[i].0.to_owned()),
                reason: format!(
                    "verify: the node runs {}, expected {}",
                    show_state(state),
                    want[i].1.map_or_else(|| "nothing".into(), |m| m.to_hex())
                ),
            })
            .collect(),
        Err(e) => vec![Failure {
            module: None,
            reason: format!("verify: {e}"),
        }],
    }
}

/// Which of `want` (module, MD5 it must run or `None`: not loaded) differ
/// from `running`, with what runs instead; `None` if `running` lacks one.
fn mismatches(
    want: &[(&str, Option<Md5>)],
    running: &[(String, Option<Md5>)],
) -> Option<Vec<(usize, State)>> {
    let mut wrong = Vec::new();
    for (i, (module, md5)) in want.iter().enumerate() {
        let (_, now) = running.iter().find(|(m, _)| m == module)?;
        if now != md5 {
            wrong.push((i, now.map_or(State::Absent, State::Loaded)));
        }
    }
    Some(wrong)
}

pub(in crate::deploy) fn show_state(state: State) -> String {
    match state {
        State::Loaded(m) => m.to_hex(),
        State::OnDisk(_) | State::Absent => "nothing".into(),
    }
}

impl Remote {
    /// Reads back, without taking the lock or purging, which of `want`
    /// (module, MD5 it must run, or `None`: not loaded) the node does not
    /// run as wanted: their indexes, with what the node has instead.
    pub async fn mismatches(
        &self,
        want: &[(&str, Option<Md5>)],
    ) -> Result<Vec<(usize, State)>, CallError> {
        if want.is_empty() {
            return Ok(Vec::new());
        }
        let found = match self.inspect(None, want, &[], false, false).await? {
            Ok(found) => found,
            // Only a lock request is answered `locked`.
            Err(_) => return Ok(Vec::new()),
        };
        Ok(want
            .iter()
            .zip(found)
            .enumerate()
            .filter(|(_, ((_, md5), f))| match md5 {
                Some(md5) => f.state != State::Loaded(*md5),
                None => matches!(f.state, State::Loaded(_)),
            })
            .map(|(i, (_, f))| (i, f.state))
            .collect())
    }
}
