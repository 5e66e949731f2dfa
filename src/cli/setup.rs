//! What the commands that talk to nodes set up from their flags, once and
//! here: the settings, and from them the engine's options, the project,
//! the snapshot store, this tool's peer, the store's lock and a session
//! with the nodes.

use super::args::{LoadArgs, OutputArgs, TargetArgs};
use super::error::CliError;
use crate::config::{Flags, Settings, TlsFlags};
use crate::deploy::migrate::Care;
use crate::deploy::session::SessionError;
use crate::deploy::{Options, Outcome, Report, Session};
use crate::interrupt::Interrupt;
use crate::output::{Mode, Ui};
use crate::peer::{Peer, PeerOptions, Tls};
use crate::project::Project;
use crate::store::{Store, StoreLock};
use std::time::Duration;

/// The settings of a command's `TargetArgs` flags, every layer resolved.
pub(crate) fn settings(target: &TargetArgs) -> Result<Settings, CliError> {
    let project = match &target.project {
        Some(p) => p.clone(),
        None => std::env::current_dir().map_err(CliError::Cwd)?,
    };
    let flags = Flags {
        config: target.config.clone(),
        nodes: target.nodes.clone(),
        cookie: target.cookie.clone(),
        ebin: target.ebin.clone(),
        timeout: target.timeout,
        name: target.name.clone(),
        dist_port: target.dist_port,
        via: target.via.clone(),
        tls: TlsFlags {
            ca: target.tls_ca.clone(),
            cert: target.tls_cert.clone(),
            key: target.tls_key.clone(),
            skip_host_check: target.tls_skip_host_check,
            optfile: target.tls_optfile.clone(),
        },
    };
    let settings = Settings::load(&project, &flags)?;
    if !settings.cookie_source.is_empty() {
        tracing::debug!("the cookie comes from {}", settings.cookie_source);
    }
    Ok(settings)
}

/// What a command that changes nodes asks for, besides its own flags.
pub(crate) struct Asked<'a> {
    pub target: &'a TargetArgs,
    pub load: &'a LoadArgs,
    pub output: &'a OutputArgs,
    pub force: bool,
    /// This tool's node name when none is configured.
    pub name: Option<&'static str>,
    /// Whether the nodes may go unnamed (`--cluster` through `--via`).
    pub nodes_optional: bool,
}

impl<'a> Asked<'a> {
    /// What the flags `deploy` and `watch` share ask for.
    pub fn new(
        target: &'a TargetArgs,
        load: &'a LoadArgs,
        output: &'a OutputArgs,
        force: bool,
    ) -> Self {
        Asked {
            target,
            load,
            output,
            force,
            name: None,
            nodes_optional: false,
        }
    }
}

/// What `deploy`, `deploy --rollback` and `watch` run with, made once from
/// their flags: the settings become the engine's options here.
pub(crate) struct Prepared {
    pub settings: Settings,
    pub project: Project,
    pub options: Options,
    pub store: Store,
    pub mode: Mode,
    pub ui: Ui,
    pub interrupt: Interrupt,
}

impl Prepared {
    /// The settings of `asked`, what the engines take made of them, and
    /// their warnings printed before any error they lead to.
    pub(crate) fn new(asked: Asked<'_>, interrupt: Interrupt) -> Result<Prepared, CliError> {
        let mut settings = settings(asked.target)?;
        if let Some(name) = asked.name {
            settings.name.get_or_insert_with(|| name.into());
        }
        let ready = settings.ready(asked.nodes_optional);
        let project = Project::new(
            settings.project.clone(),
            settings.app_name.clone(),
            settings.ebin.clone(),
        );
        let load = asked.load;
        let after = load.after.as_ref().or(settings.after_deploy.as_ref());
        let after = after.map(|text| text.parse().map_err(CliError::Hook));
        let care = Care {
            any_loop: settings.migrate_custom_loops || load.migrate_custom_loops,
            observe: load.observe.map_or(settings.observe, Duration::from_millis),
            observe_apart: false,
        };
        let options = Options {
            verify: load.verify,
            force: asked.force,
            via: settings.via.clone(),
            code_change: settings.code_change && !load.no_code_change,
            care,
            timeout: settings.timeout,
            keep: settings.keep_snapshots,
            interrupted: interrupt.flag(),
            ..Options::default()
        };
        let store = Store::new(settings.snapshot_dir.clone());
        let mode = Mode::from_flags(asked.output.json, asked.output.quiet);
        let ui = Ui::new(mode);
        for w in &settings.warnings {
            ui.warn(w);
        }
        ready?;
        let options = Options {
            after: after.transpose()?,
            ..options
        };
        Ok(Prepared {
            settings,
            project,
            options,
            store,
            mode,
            ui,
            interrupt,
        })
    }

    /// Takes the store's lock for this run ([`lock_store`]).
    pub(crate) fn lock_store(&self) -> Result<StoreLock, CliError> {
        lock_store(&self.store, &self.ui)
    }

    /// Starts the peer and connects to `nodes` ([`open_session`]).
    pub(crate) async fn open_session(
        &self,
        nodes: &[crate::peer::NodeName],
    ) -> Result<Result<Session, Report>, CliError> {
        open_session(
            &self.settings,
            self.store.clone(),
            nodes,
            &self.options,
            &self.ui,
        )
        .await
    }
}

pub(crate) async fn start_peer(settings: &Settings) -> Result<Peer, CliError> {
    Ok(Peer::launch(peer_options(settings)?, &reached(settings)).await?)
}

/// The nodes this tool connects to: the gateway alone with `--via`, else
/// the targets.
pub(crate) fn reached(settings: &Settings) -> Vec<crate::peer::NodeName> {
    match &settings.via {
        Some(via) => vec![via.clone()],
        None => settings.nodes.clone(),
    }
}

/// How the peer starts: our name, the cookie, how long a connection may
/// take.
pub(crate) fn peer_options(settings: &Settings) -> Result<PeerOptions, CliError> {
    let mut options = PeerOptions::new(settings.cookie()?.clone());
    options.name = settings.name.clone();
    options.connect_timeout = settings.timeout.min(std::time::Duration::from_secs(10));
    options.dist_port = settings.dist_port;
    options.tls = settings.tls.as_ref().map(Tls::load).transpose()?;
    Ok(options)
}

/// The run's project, as the settings describe it: made once per run.
pub(crate) fn project(settings: &Settings) -> Project {
    Project::new(
        settings.project.clone(),
        settings.app_name.clone(),
        settings.ebin.clone(),
    )
}

/// Takes the snapshot store's lock for this run, waiting (and saying so)
/// while another run in this project holds it.
pub(crate) fn lock_store(store: &Store, ui: &Ui) -> Result<StoreLock, CliError> {
    Ok(store.lock(|| {
        ui.warn(&format!(
            "waiting for another hotswap-node run using `{}` to finish",
            store.root().display()
        ))
    })?)
}

/// Starts the peer and connects to `nodes`; a node that cannot be reached
/// gives the report to print instead.
pub(crate) async fn open_session(
    settings: &Settings,
    store: Store,
    nodes: &[crate::peer::NodeName],
    options: &Options,
    ui: &Ui,
) -> Result<Result<Session, Report>, CliError> {
    let peer = crate::timings::measure("peer start", None, start_peer(settings)).await?;
    match Session::connect(peer, store, nodes, options, ui).await {
        Ok(session) => Ok(Ok(session)),
        Err(SessionError::Start(e)) => Err(e.into()),
        Err(SessionError::Unreachable(reports)) => {
            Ok(Err(Report::new(reports, Outcome::Unreachable, None)))
        }
    }
}
