//! [`Instruction::Show`](crate::deploy::plan::Instruction::Show), for
//! `--dry-run`: says per node what the rest of the plan would change and
//! which processes it would migrate, and changes nothing.

use crate::deploy::goal::{Kind, Target};
use crate::deploy::migrate::Migration;
use crate::deploy::plan::Plan;
use crate::deploy::process::processes;
use crate::deploy::remote::{Lingering, Remote, State};
use crate::deploy::report::describe_process;
use crate::deploy::run::Run;
use crate::peer::term::{self, atom_term, list};
use crate::peer::{Bindings, CallError, Script};
use futures::future::join_all;

impl Run<'_> {
    /// Says what would change on each node, and how.
    pub async fn show(&mut self) {
        self.plan_migrations().await;
        let wet = crate::deploy::options::Options {
            dry_run: false,
            ..self.opts.clone()
        };
        let wet = Plan::of(self.kind, &wet);
        for p in &mut self.parts {
            if !p.changes.is_empty() {
                self.ui.line(&format!("Plan on {}: {wet}", p.report.node));
            }
            for c in &p.changes {
                let goal = &p.goals[c.goal];
                self.ui.line(&format!(
                    "Would {} {} on {}",
                    verb(self.kind, &goal.target, c.was),
                    goal.module,
                    p.report.node
                ));
                p.report.loaded.push(goal.module.clone());
            }
            for l in &p.report.migrated {
                self.ui.line(&format!(
                    "Would migrate {} of `{}` on {}",
                    describe_process(&l.pid, l.name.as_deref()),
                    l.module,
                    p.report.node
                ));
            }
        }
    }

    /// For `--dry-run`: asks each node which processes the deploy would
    /// migrate (those of changed modules whose new code exports
    /// `code_change`), into its report.
    async fn plan_migrations(&mut self) {
        if self.migration != Migration::Up {
            return;
        }
        let asked = join_all(self.parts.iter().map(|p| {
            let modules: Vec<&str> = p
                .changes
                .iter()
                .filter(|c| matches!(c.was, State::Loaded(_)))
                .filter_map(|c| match &p.goals[c.goal].target {
                    Target::Load(m) if m.code_change => Some(m.name.as_str()),
                    _ => None,
                })
                .collect();
            async move { p.remote.callback_processes(&modules).await }
        }))
        .await;
        for (p, answer) in self.parts.iter_mut().zip(asked) {
            match answer {
                Ok(processes) => p.report.migrated = processes,
                Err(e) => self.ui.warn(&format!(
                    "which processes {} would migrate is unknown: {e}",
                    p.node()
                )),
            }
        }
    }
}

fn verb(kind: Kind, target: &Target, was: State) -> &'static str {
    match (kind, target, was) {
        (_, Target::Remove, _) => "remove",
        (Kind::Rollback, Target::Load(_), _) => "restore",
        (Kind::Deploy, Target::Load(_), State::Absent) => "deploy (new)",
        (Kind::Deploy, Target::Load(_), _) => "deploy (changed)",
    }
}

static CALLBACKS: Script = Script::with_functions(
    concat!(
        include_str!("../node/prelude.erl"),
        include_str!("../node/migrate.erl")
    ),
    include_str!("../node/callbacks_main.erl"),
);

impl Remote {
    /// The processes whose callback module is one of `modules`: those a
    /// deploy of them would migrate (if their new code exports
    /// `code_change`). Read-only; no lock.
    pub async fn callback_processes(&self, modules: &[&str]) -> Result<Vec<Lingering>, CallError> {
        if modules.is_empty() {
            return Ok(Vec::new());
        }
        let mods = list(modules.iter().map(|m| atom_term(m)).collect());
        let bindings = Bindings::new().set("Mods", &mods).encode();
        let answer = self.link.eval(&CALLBACKS, &bindings, self.timeout).await?;
        match term::as_list(&answer) {
            Ok(_) => Ok(processes(&answer)),
            Err(e) => Err(self.unexpected("callbacks", &e.to_string(), &answer)),
        }
    }
}
