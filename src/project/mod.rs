//! The local project: finding it (Mix, umbrella, rebar3, Nerves, or
//! explicit folders and files: [`discover`]), building it (none, a
//! command, or Mix's warm build node: one [`Builder`], one [`BuildError`]),
//! and its file times ([`stale`], [`saves`]), which tools that rebuild by
//! the second need. A run makes one [`Project`] and asks it everything;
//! reading the beam files themselves is [`crate::beam`]'s.
//!
//! - [`discover`]: where the project's modules are.
//! - [`build`]: the one builder; [`command`]: the build command, run the
//!   one way; [`build_node`]: Mix's warm build node.
//! - [`stale`]: dating beams back for rebar3; [`saves`]: saves Mix's
//!   whole-second staleness check would miss.

pub mod build;
pub mod build_node;
pub mod command;
pub mod discover;
pub mod saves;
pub mod stale;

pub use build::Builder;
pub use command::BuildError;
pub use discover::{DiscoverError, ProjectKind};

use crate::beam::{Module, ModuleError};
use discover::Search;
use std::path::{Path, PathBuf};

/// The project of a run: where it is, which of its apps, the folders
/// named instead of its build output; read from the environment
/// (`MIX_ENV`, `MIX_TARGET`, `REBAR_PROFILE`) once. Its files are found
/// afresh each time they are asked for: a build adds modules.
#[derive(Debug, Clone)]
pub struct Project {
    search: Search,
}

/// Why the project's modules could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\nerror: "))]
    Modules(Vec<ModuleError>),
    #[error("no modules to deploy in {0}")]
    NoModules(String),
}

impl Project {
    /// The project at `root`, narrowed to `app_name`; `ebin`: folders of
    /// modules that replace its build output.
    pub fn new(root: PathBuf, app_name: Option<String>, ebin: Vec<PathBuf>) -> Project {
        let mut search = Search::from_env(root);
        search.app_name = app_name;
        search.ebin = ebin;
        Project { search }
    }

    pub fn root(&self) -> &Path {
        &self.search.project
    }

    /// Every module to deploy, read and validated, and the applications
    /// they are of: `paths` (beam files) if any, else the build output.
    /// Any invalid file refuses the whole run.
    pub fn modules(&self, paths: &[PathBuf]) -> Result<(Vec<Module>, Vec<String>), ProjectError> {
        let found = self.find(paths)?;
        let modules = discover::read_modules(&found.files).map_err(ProjectError::Modules)?;
        if modules.is_empty() {
            return Err(ProjectError::NoModules(self.root().display().to_string()));
        }
        Ok((modules, found.apps))
    }

    /// The folders holding the modules: those named, or the build output's.
    pub fn beam_dirs(&self, paths: &[PathBuf]) -> Result<Vec<PathBuf>, ProjectError> {
        let root = self.root();
        let mut dirs: Vec<PathBuf> = self.search.ebin.iter().map(|d| root.join(d)).collect();
        for p in paths {
            let p = root.join(p);
            dirs.push(p.parent().map(PathBuf::from).unwrap_or(p));
        }
        if dirs.is_empty() {
            let found = self.find(&[])?;
            dirs.extend(
                found
                    .files
                    .iter()
                    .filter_map(|f| f.parent().map(PathBuf::from)),
            );
        }
        dirs.sort();
        dirs.dedup();
        Ok(dirs)
    }

    /// The build of a one-shot run: `command`, said first when printing
    /// text, its output shown as `mode` wants; `stop` (Ctrl-C) stops it.
    pub async fn build(
        &self,
        command: &str,
        mode: crate::output::Mode,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), BuildError> {
        if mode == crate::output::Mode::Text {
            println!("Building with `{command}`");
        }
        self.date_back_for_rebar3();
        command::run(command, self.root(), mode, stop).await
    }

    /// rebar3 tells what to rebuild by file times, to the second: before
    /// it builds, the beams of sources saved in their own second are dated
    /// back ([`stale`]), so a save made just after the last build is not
    /// skipped. Before the first build there is nothing to date back.
    pub fn date_back_for_rebar3(&self) {
        let Ok(found) = self.find(&[]) else {
            return;
        };
        if found.kind != ProjectKind::Rebar3 {
            return;
        }
        if let Ok(dirs) = discover::rebar_source_dirs(self.root()) {
            stale::date_back_ambiguous(&stale::erl_sources(&dirs), &found.files);
        }
    }

    fn find(&self, paths: &[PathBuf]) -> Result<discover::Located, DiscoverError> {
        let search = Search {
            files: paths.to_vec(),
            ..self.search.clone()
        };
        discover::find(&search)
    }
}
