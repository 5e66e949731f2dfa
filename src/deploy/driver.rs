//! The driver: folds a run's [`Plan`] over its nodes, and is the single
//! way out. All nodes go through each instruction together, each request
//! one round trip per node. Whatever stops the run after the point of no
//! return undoes every node this run changed, by applying that node's
//! priors the same way ([`super::step::undo`]); before it, nothing changed.
//!
//! Deploy and rollback are this one engine: a deploy drives it with the
//! local build as every node's goal, a rollback with each node's priors.

use super::goal::{Kind, Work};
use super::options::Options;
use super::part::Part;
use super::plan::{Instruction, Plan};
use super::remote::LockRequest;
use super::run::{Finished, Run, Stop};
use super::step::flight::Flew;
use crate::output::Ui;
use crate::store::Store;
use crate::timings::Timed;
use std::time::Instant;

/// Brings every node of `work` to its goals, or leaves them as they were.
pub async fn run(
    kind: Kind,
    work: Vec<Work>,
    store: &Store,
    lock: LockRequest,
    opts: &Options,
    ui: &Ui,
) -> Finished {
    let started = Instant::now();
    let plan = Plan::of(kind, opts);
    tracing::debug!("plan: {plan}");
    let plan_has_after = plan.has(Instruction::After);
    let parts: Vec<Part> = work.into_iter().map(Part::new).collect();
    let remotes: Vec<_> = parts.iter().map(|p| p.remote.clone()).collect();
    let mut run = Run::new(kind, plan, parts, store, lock, opts, ui, started);
    let result = drive(&mut run).await;
    let timed = Timed::start(Instruction::Finish.stage());
    let mut finished = run.finish(result).await;
    drop(timed);
    finished.report.elapsed = started.elapsed();
    finished.report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    if let (Some(hook), true) = (&opts.after, finished.reached && plan_has_after) {
        let timed = Timed::start(Instruction::After.stage());
        let called = super::step::after::call(hook, &remotes, &mut finished.report.nodes).await;
        drop(timed);
        if !called {
            finished.report.fail_after();
        }
    }
    finished
}

/// Folds the plan up to its way out ([`Instruction::Finish`], which
/// [`Run::finish`] is, whatever stopped the run). Between instructions,
/// what one leaves for the next: the apply requests sent, until the word;
/// their answers, until taken in.
async fn drive(run: &mut Run<'_>) -> Result<(), Stop> {
    let plan = run.plan.clone();
    let mut rest = plan.instructions();
    let (mut prepared, mut answers) = (Vec::new(), None);
    while let Some((&instruction, after)) = rest.split_first() {
        rest = after;
        let mut timed = Timed::start(instruction.stage());
        match instruction {
            Instruction::Lock => match run.fly().await? {
                // The lock goes with the inspect request.
                Flew::NotTried => timed.forget(),
                Flew::Inspected => {
                    timed.name("flight (lock and inspect, one request)");
                    run.lap("inspect");
                    rest = plan.after(Instruction::Inspect);
                }
                Flew::Landed => {
                    timed.name("flight (lock, inspect, prepare, word, load, migrate)");
                    run.past_no_return = true;
                    run.applied().await?;
                    // Its migration came with it; what is left of the plan
                    // follows the apply step (and migrate, a no-op here).
                    rest = plan.after(Instruction::Apply);
                }
            },
            Instruction::Inspect => {
                run.inspect().await?;
                run.lap("inspect");
            }
            Instruction::Show => run.show().await,
            Instruction::Prepare => {
                if run.parts.iter().all(|p| p.changes.is_empty()) {
                    return Ok(());
                }
                run.check_interrupt()?;
                prepared = run.prepare();
            }
            // Its parts are timed where they run.
            Instruction::Snapshot => {
                timed.forget();
                run.snapshot_while_prepared().await
            }
            Instruction::PointOfNoReturn => {
                let sent = std::mem::take(&mut prepared);
                answers = Some(run.point_of_no_return(sent).await?);
            }
            Instruction::Apply => {
                if let Some(answers) = answers.take() {
                    run.apply(answers)?;
                }
                run.applied().await?;
            }
            // The node migrates inside its apply step: taken in with it.
            Instruction::Migrate => timed.forget(),
            Instruction::Verify => {
                run.verify().await?;
                run.lap("verify");
                run.check_interrupt()?;
            }
            Instruction::Finish | Instruction::After => {
                timed.forget();
                return Ok(());
            }
        }
    }
    Ok(())
}
