//! What the commands that talk to nodes set up from their flags: the
//! settings, the after-deploy call, this tool's peer, the local modules,
//! the store's lock and a session with the nodes.

use super::args::{LoadArgs, TargetArgs};
use super::error::CliError;
use crate::config::{Flags, Settings, TlsFlags};
use crate::deploy::migrate::Care;
use crate::deploy::session::SessionError;
use crate::deploy::{self, Options, Outcome, Report, Session};
use crate::interrupt::Interrupt;
use crate::output::Ui;
use crate::peer::{Peer, PeerOptions, Tls};
use crate::project::Project;
use crate::store::{Store, StoreLock};

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

/// The engine's options from the settings and the flags that say how to
/// load: built once per run, here. `force` is each command's own.
pub(crate) fn options(
    settings: &Settings,
    load: &LoadArgs,
    force: bool,
    interrupt: &Interrupt,
) -> Result<Options, CliError> {
    Ok(Options {
        verify: load.verify,
        force,
        via: settings.via.clone(),
        code_change: settings.code_change && !load.no_code_change,
        care: Care {
            any_loop: settings.migrate_custom_loops || load.migrate_custom_loops,
            observe: load
                .observe
                .map_or(settings.observe, std::time::Duration::from_millis),
        },
        after: after_hook(settings, &load.after)?,
        timeout: settings.timeout,
        keep: settings.keep_snapshots,
        interrupted: interrupt.flag(),
        ..Options::default()
    })
}

/// The after-deploy call: `--after`, else `after_deploy` in the
/// configuration.
fn after_hook(
    settings: &Settings,
    flag: &Option<String>,
) -> Result<Option<deploy::after::Hook>, CliError> {
    flag.as_ref()
        .or(settings.after_deploy.as_ref())
        .map(|text| text.parse().map_err(CliError::Hook))
        .transpose()
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
    let peer = start_peer(settings).await?;
    match Session::connect(peer, store, nodes, options, ui).await {
        Ok(session) => Ok(Ok(session)),
        Err(SessionError::Start(e)) => Err(e.into()),
        Err(SessionError::Unreachable(reports)) => {
            Ok(Err(Report::new(reports, Outcome::Unreachable, None)))
        }
    }
}
