//! A run's plan, written as data: the instructions every node goes
//! through, in order, as OTP's release handler runs an upgrade script.
//! [`super::driver`] folds it; each instruction's work is in a file of its
//! own under [`super::step`].
//!
//! The point of no return is an instruction: before it, a run that stops
//! leaves every node as it was (no node changes before the word that the
//! snapshot is on disk and every node has prepared); after it, a run that
//! stops undoes every node that changed. Several instructions travel in
//! one request where the node can do them in one round trip: the lock
//! goes with the first request, a node migrates its processes inside its
//! apply step, and a flight ([`super::step::flight`]) fuses lock, inspect
//! and prepare into one request when the store believes it knows what the
//! nodes run.

use super::goal::Kind;
use super::options::Options;

/// One instruction of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction {
    /// Take each node's deploy lock (it goes with the next request).
    Lock,
    /// Learn what each node runs and who keeps old code; decide what
    /// changes; refuse where old code is in use (without `--force`).
    Inspect,
    /// `--dry-run`: say what the rest would change, and change nothing.
    Show,
    /// Send each node its changes: it prepares them, and waits for the
    /// word before changing anything.
    Prepare,
    /// Record what each node runs of every module about to change, on
    /// disk, while the nodes prepare.
    Snapshot,
    /// The word: go to every node once the snapshot is on disk and every
    /// node has prepared, else abort.
    PointOfNoReturn,
    /// Each node loads its changes, atomically.
    Apply,
    /// The processes of changed modules go through `code_change`, inside
    /// the apply step (`--no-code-change` leaves it out).
    Migrate,
    /// Read back what each node runs (`--verify`, and every rollback).
    Verify,
    /// Record the outcome, release the locks, report: the one way out,
    /// whatever stopped the run.
    Finish,
    /// The function called on each node once its change runs (`--after`).
    After,
}

/// The instructions of a run, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan(Vec<Instruction>);

impl Plan {
    /// The plan of a `kind` run with `opts`.
    pub fn of(kind: Kind, opts: &Options) -> Plan {
        use Instruction::*;
        if opts.dry_run {
            return Plan(vec![Lock, Inspect, Show, Finish]);
        }
        let mut plan = vec![Lock, Inspect, Prepare, Snapshot, PointOfNoReturn, Apply];
        if opts.code_change {
            plan.push(Migrate);
        }
        if opts.verify || kind == Kind::Rollback {
            plan.push(Verify);
        }
        plan.push(Finish);
        if opts.after.is_some() && kind == Kind::Deploy {
            plan.push(After);
        }
        Plan(plan)
    }

    pub fn instructions(&self) -> &[Instruction] {
        &self.0
    }

    pub fn has(&self, instruction: Instruction) -> bool {
        self.0.contains(&instruction)
    }

    /// The instructions after `instruction`; none if the plan has no such
    /// instruction (never the whole plan again: a step that ran must not
    /// run twice).
    pub fn after(&self, instruction: Instruction) -> &[Instruction] {
        match self.0.iter().position(|i| *i == instruction) {
            Some(at) => &self.0[at + 1..],
            None => &[],
        }
    }
}

impl Instruction {
    /// Its name, as plans print it.
    pub fn name(self) -> &'static str {
        match self {
            Instruction::Lock => "lock",
            Instruction::Inspect => "inspect",
            Instruction::Show => "show",
            Instruction::Prepare => "prepare",
            Instruction::Snapshot => "snapshot",
            Instruction::PointOfNoReturn => "point of no return",
            Instruction::Apply => "apply",
            Instruction::Migrate => "migrate",
            Instruction::Verify => "verify",
            Instruction::Finish => "finish",
            Instruction::After => "after",
        }
    }

    /// What its time is spent on, as `--timings` names it.
    pub fn stage(self) -> &'static str {
        match self {
            Instruction::Lock => "lock",
            Instruction::Inspect => "lock and inspect",
            Instruction::Show => "show (dry run)",
            Instruction::Prepare => "prepare (requests sent)",
            Instruction::Snapshot => "snapshot",
            Instruction::PointOfNoReturn => "word, load, migrate (prepared first)",
            Instruction::Apply => "apply (answers taken in)",
            Instruction::Migrate => "migrate",
            Instruction::Verify => "verify",
            Instruction::Finish => "finish (store, locks released)",
            Instruction::After => "after",
        }
    }
}

impl std::fmt::Display for Instruction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.iter().map(Instruction::to_string).collect();
        f.write_str(&names.join(" → "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_point_of_no_return_comes_after_the_snapshot_and_before_any_load() {
        let plan = Plan::of(Kind::Deploy, &Options::default());
        let at = |i| plan.instructions().iter().position(|x| *x == i);
        assert!(at(Instruction::Snapshot) < at(Instruction::PointOfNoReturn));
        assert!(at(Instruction::PointOfNoReturn) < at(Instruction::Apply));
        assert_eq!(
            plan.to_string(),
            "lock → inspect → prepare → snapshot → point of no return → apply → migrate → finish"
        );
    }

    #[test]
    fn what_follows_an_instruction_the_plan_lacks_is_nothing() {
        let plan = Plan::of(
            Kind::Deploy,
            &Options {
                code_change: false,
                ..Options::default()
            },
        );
        assert!(!plan.has(Instruction::Migrate));
        assert!(plan.after(Instruction::Migrate).is_empty());
        assert_eq!(plan.after(Instruction::Apply), &[Instruction::Finish]);
    }

    #[test]
    fn a_rollback_always_verifies_and_a_dry_run_changes_nothing() {
        let rollback = Plan::of(Kind::Rollback, &Options::default());
        assert!(rollback.has(Instruction::Verify));
        let dry = Options {
            dry_run: true,
            ..Options::default()
        };
        let plan = Plan::of(Kind::Deploy, &dry);
        assert!(!plan.has(Instruction::PointOfNoReturn) && !plan.has(Instruction::Apply));
    }
}
