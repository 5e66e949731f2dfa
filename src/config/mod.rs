//! Layered configuration, later layers winning:
//! 1. `config/config.exs`'s `:mix_tasks_upload_hotswap` block, in a Mix
//!    project without `hotswap.toml` (what `mix upload.hotswap` users have);
//! 2. `hotswap.toml` in the project (or `--config FILE`);
//! 3. the environment: `HOTSWAP_APP_NAME`, `HOTSWAP_NODES`, `HOTSWAP_COOKIE`;
//! 4. command-line flags.
//!
//! The cookie never appears in an error, a log line or `Debug` output.

pub mod exs;
mod release_cookie;
pub mod ssl_dist_optfile;

use crate::peer::{Cookie, NodeName, TlsFiles};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FILE_NAME: &str = "hotswap.toml";

/// Keys of `hotswap.toml`; anything else is an error naming it.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub app_name: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub cookie: Option<String>,
    pub cookie_file: Option<PathBuf>,
    pub ebin: Option<Vec<PathBuf>>,
    pub build: Option<String>,
    pub timeout: Option<f64>,
    pub snapshot_dir: Option<PathBuf>,
    pub keep_snapshots: Option<usize>,
    pub name: Option<String>,
    pub code_change: Option<bool>,
    pub migrate_custom_loops: Option<bool>,
    pub observe_ms: Option<u64>,
    pub after_deploy: Option<String>,
    pub dist_port: Option<u16>,
    pub via: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_skip_host_check: Option<bool>,
    pub tls_optfile: Option<PathBuf>,
}

/// What the command line adds on top.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub nodes: Vec<String>,
    pub cookie: Option<String>,
    pub ebin: Vec<PathBuf>,
    pub timeout: Option<f64>,
    pub name: Option<String>,
    pub dist_port: Option<u16>,
    pub via: Option<String>,
    pub tls: TlsFlags,
}

/// `--tls-ca`, `--tls-cert`, `--tls-key`, `--tls-skip-host-check`.
#[derive(Debug, Default, Clone)]
pub struct TlsFlags {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub skip_host_check: bool,
    /// The node's `-ssl_dist_optfile`, for what the flags above leave out.
    pub optfile: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}`: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("`{}` line {line}: {detail}; write the settings in hotswap.toml instead", path.display())]
    Exs {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("bad node name in {source_name}: {detail}")]
    Node { source_name: String, detail: String },
    #[error("no nodes to deploy to: pass `--node NAME@HOST`, set HOTSWAP_NODES, or put `nodes = [\"app@host\"]` in hotswap.toml")]
    NoNodes,
    #[error("no targets behind the gateway `{0}`: pass `--node NAME@HOST` (or HOTSWAP_NODES, or `nodes` in hotswap.toml), or `--cluster` to deploy to the gateway's whole cluster")]
    NoTargets(String),
    #[error("no cookie: pass `--cookie`, set HOTSWAP_COOKIE, put `cookie` or `cookie_file` in hotswap.toml, build the project's release, or create ~/.erlang.cookie")]
    NoCookie,
    #[error("ERL_DIST_PORT (or `dist_port`) is `{0}`, not a port number from 1 to 65535")]
    DistPort(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cookie file `{}` cannot be read: {source}", path.display())]
    CookieFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cookie file `{}` is empty", .0.display())]
    EmptyCookie(PathBuf),
    #[error("`timeout` must be from {min} to {max} seconds, got {0}", min = TIMEOUT_RANGE.0, max = TIMEOUT_RANGE.1)]
    Timeout(f64),
}

/// The TLS settings, each from the flag, else `HOTSWAP_TLS_*`, else
/// `tls_*` in the file (a path there is relative to the project), else the
/// node's own `-ssl_dist_optfile` if one is given (`--tls-optfile`). Any of
/// the CA, the certificate and the key turns TLS on; the CA is then
/// needed, and a certificate needs its key.
fn tls_files(
    project: &Path,
    flags: &TlsFlags,
    file: &FileConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<TlsFiles>, ConfigError> {
    let path = |flag: &Option<PathBuf>, var: &str, key: &Option<PathBuf>| {
        flag.clone()
            .or_else(|| env(var).filter(|v| !v.is_empty()).map(PathBuf::from))
            .or_else(|| key.as_ref().map(|p| project.join(p)))
    };
    let optfile = path(&flags.optfile, "HOTSWAP_TLS_OPTFILE", &file.tls_optfile);
    let node_side = match &optfile {
        Some(optfile) => ssl_dist_optfile::read(optfile).map_err(ConfigError::Tls)?,
        None => ssl_dist_optfile::DistOptions::default(),
    };
    let ca = path(&flags.ca, "HOTSWAP_TLS_CA", &file.tls_ca).or(node_side.cacertfile);
    if let (Some(optfile), None) = (&optfile, &ca) {
        return Err(ConfigError::Tls(format!(
            "`{}` names no `cacertfile`; give --tls-ca",
            optfile.display()
        )));
    }
    let cert = path(&flags.cert, "HOTSWAP_TLS_CERT", &file.tls_cert).or(node_side.certfile);
    let key = path(&flags.key, "HOTSWAP_TLS_KEY", &file.tls_key).or(node_side.keyfile);
    let skip_host_check = match env("HOTSWAP_TLS_SKIP_HOST_CHECK").filter(|v| !v.is_empty()) {
        _ if flags.skip_host_check => true,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            _ => {
                return Err(ConfigError::Tls(format!(
                    "HOTSWAP_TLS_SKIP_HOST_CHECK is `{v}`, not true or false"
                )))
            }
        },
        None => file.tls_skip_host_check.unwrap_or(node_side.no_host_check),
    };
    match (ca, cert, key) {
        (None, None, None) if skip_host_check => Err(ConfigError::Tls(
            "--tls-skip-host-check without --tls-ca: TLS is off".into(),
        )),
        (None, None, None) => Ok(None),
        (None, _, _) => Err(ConfigError::Tls(
            "a client certificate or key without --tls-ca (`tls_ca`): give the CA that signs the nodes' certificates".into(),
        )),
        (Some(_), Some(_), None) => Err(ConfigError::Tls(
            "--tls-cert without --tls-key (`tls_key`)".into(),
        )),
        (Some(_), None, Some(_)) => Err(ConfigError::Tls(
            "--tls-key without --tls-cert (`tls_cert`)".into(),
        )),
        (Some(ca), cert, key) => Ok(Some(TlsFiles {
            ca,
            cert,
            key,
            skip_host_check,
        })),
    }
}

/// The seconds `timeout` may take: below a hundredth no node answers; a
/// day is far past any link, and the lock's lease (six timeouts) and every
/// deadline computed from it stay well within what a clock can add.
pub const TIMEOUT_RANGE: (f64, f64) = (0.01, 86_400.0);

/// The settings a command runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub project: PathBuf,
    pub app_name: Option<String>,
    pub nodes: Vec<NodeName>,
    cookie: Option<Cookie>,
    pub ebin: Vec<PathBuf>,
    /// The build command, or `None` for no build step.
    pub build: Option<String>,
    pub timeout: Duration,
    pub snapshot_dir: PathBuf,
    /// Snapshots kept per node; 0 keeps all.
    pub keep_snapshots: usize,
    /// Migrate the processes of changed modules through `code_change`.
    pub code_change: bool,
    /// Migrate processes whose `sys` loop is not OTP's own as well.
    pub migrate_custom_loops: bool,
    /// How long the processes a change touched are watched after it.
    pub observe: Duration,
    /// Called on each node once its change runs (`Module.function`).
    pub after_deploy: Option<String>,
    /// The nodes' distribution port, to connect without EPMD.
    pub dist_port: Option<u16>,
    /// The gateway every target is reached through (`--via`).
    pub via: Option<NodeName>,
    /// TLS distribution: where its files are.
    pub tls: Option<TlsFiles>,
    pub name: Option<String>,
    /// Where the settings came from, for messages.
    pub sources: Vec<String>,
    /// Where the cookie came from (never the cookie), for `-v`.
    pub cookie_source: String,
    /// Things the user should know (loose file permissions).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Resolves every layer for a project folder.
    pub fn load(project: &Path, flags: &Flags) -> Result<Settings, ConfigError> {
        Self::load_with_env(project, flags, |k| std::env::var(k).ok())
    }

    /// As [`Settings::load`], reading the environment through `env`.
    pub fn load_with_env(
        project: &Path,
        flags: &Flags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut sources = Vec::new();
        let mut warnings = Vec::new();
        let toml_path = flags
            .config
            .clone()
            .unwrap_or_else(|| project.join(FILE_NAME));
        let mut file = FileConfig::default();
        let mut cookie_origin = None;
        if toml_path.is_file() {
            file = read_toml(&toml_path)?;
            sources.push(toml_path.display().to_string());
            if file.cookie.is_some() {
                cookie_origin = Some(toml_path.clone());
            }
        } else if flags.config.is_some() {
            return Err(ConfigError::Read {
                path: toml_path,
                source: std::io::ErrorKind::NotFound.into(),
            });
        } else if project.join("mix.exs").is_file() {
            let exs_path = project.join("config").join("config.exs");
            if exs_path.is_file() {
                let target = env("MIX_TARGET").filter(|t| !t.is_empty() && t != "host");
                let mix_env = env("MIX_ENV").unwrap_or_else(|| "dev".into());
                if let Some(found) =
                    exs::read_upload_hotswap(&exs_path, &mix_env, target.as_deref())?
                {
                    sources.push(exs_path.display().to_string());
                    if found.cookie.is_some() {
                        cookie_origin = Some(exs_path.clone());
                    }
                    file = found;
                }
            }
        }
        let app_name = env("HOTSWAP_APP_NAME")
            .filter(|s| !s.is_empty())
            .or(file.app_name.clone());
        let node_texts: Vec<(String, String)> = if !flags.nodes.is_empty() {
            flags
                .nodes
                .iter()
                .map(|n| (n.clone(), "`--node`".to_owned()))
                .collect()
        } else if let Some(list) = env("HOTSWAP_NODES").filter(|s| !s.trim().is_empty()) {
            list.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|n| (n.trim().to_owned(), "HOTSWAP_NODES".to_owned()))
                .collect()
        } else {
            let origin = sources.last().cloned().unwrap_or_else(|| FILE_NAME.into());
            file.nodes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|n| (n, format!("`{origin}`")))
                .collect()
        };
        let mut nodes = Vec::new();
        for (text, source_name) in node_texts {
            let node = text.parse::<NodeName>().map_err(|e| ConfigError::Node {
                source_name,
                detail: e.to_string(),
            })?;
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }

        // Cookie: flag, environment, `cookie`, `cookie_file`, the
        // project's release, ~/.erlang.cookie.
        let mut cookie_source = String::new();
        let cookie = if let Some(c) = &flags.cookie {
            cookie_source = "`--cookie`".into();
            Some(Cookie::new(c.clone()))
        } else if let Some(c) = env("HOTSWAP_COOKIE").filter(|c| !c.is_empty()) {
            cookie_source = "HOTSWAP_COOKIE".into();
            Some(Cookie::new(c))
        } else if let Some(c) = &file.cookie {
            warnings.extend(cookie_readable(cookie_origin.as_deref()));
            cookie_source = format!(
                "`cookie` in `{}`",
                sources.last().map_or(FILE_NAME, String::as_str)
            );
            Some(Cookie::new(c.clone()))
        } else if let Some(path) = &file.cookie_file {
            let path = project.join(path);
            warnings.extend(cookie_readable(Some(&path)));
            cookie_source = format!("`{}` (`cookie_file`)", path.display());
            Some(read_cookie_file(&path)?)
        } else {
            // The project's release, and ~/.erlang.cookie: the release's
            // first if the user named its build, else the home's first
            // (a dev release left in `_build` is no reason to pass over
            // the cookie `iex --sname` nodes use).
            let release = release_cookie(project, &env, app_name.as_deref());
            let home = env("HOME")
                .map(|h| PathBuf::from(h).join(".erlang.cookie"))
                .filter(|path| path.is_file());
            let release_first = home.is_none() || named_build(&env);
            match (release, home) {
                (Some((path, c)), _) if release_first => {
                    warnings.extend(cookie_readable(Some(&path)));
                    cookie_source = format!("`{}` (the project's release)", path.display());
                    Some(Cookie::new(c))
                }
                (_, Some(path)) => {
                    if let Some(w) = loose_permissions(&path) {
                        warnings.push(format!(
                            "`{}` {w}; `erl` refuses such a cookie file",
                            path.display()
                        ));
                    }
                    cookie_source = format!("`{}`", path.display());
                    Some(read_cookie_file(&path)?)
                }
                _ => None,
            }
        };
        let cookie = cookie.map(|c| c.from(cookie_source.clone()));

        let dist_port = match flags.dist_port.or(file.dist_port) {
            Some(port) => Some(port),
            None => match env("ERL_DIST_PORT").filter(|p| !p.trim().is_empty()) {
                Some(text) => Some(
                    text.trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or(ConfigError::DistPort(text))?,
                ),
                None => None,
            },
        };
        if dist_port == Some(0) {
            return Err(ConfigError::DistPort("0".into()));
        }
        let tls = tls_files(project, &flags.tls, &file, &env)?;
        let via = match (&flags.via, &file.via, env("HOTSWAP_VIA")) {
            (Some(text), _, _) => Some((text.clone(), "`--via`")),
            (None, _, Some(text)) if !text.trim().is_empty() => Some((text, "HOTSWAP_VIA")),
            (None, Some(text), _) => Some((text.clone(), "`via` in hotswap.toml")),
            _ => None,
        };
        let via = via
            .map(|(text, source_name)| {
                text.trim()
                    .parse::<NodeName>()
                    .map_err(|e| ConfigError::Node {
                        source_name: source_name.into(),
                        detail: e.to_string(),
                    })
            })
            .transpose()?;
        let timeout = match flags.timeout.or(file.timeout) {
            Some(t) if (TIMEOUT_RANGE.0..=TIMEOUT_RANGE.1).contains(&t) => {
                Duration::from_secs_f64(t)
            }
            Some(t) => return Err(ConfigError::Timeout(t)),
            None => Duration::from_secs(30),
        };
        let mut ebin = file.ebin.clone().unwrap_or_default();
        if !flags.ebin.is_empty() {
            ebin = flags.ebin.clone();
        }
        let build = match file.build.clone() {
            Some(cmd) if cmd.trim().is_empty() => None,
            Some(cmd) => Some(cmd),
            None if project.join("mix.exs").is_file() => Some("mix compile".into()),
            None if project.join("rebar.config").is_file() => Some("rebar3 compile".into()),
            None => None,
        };
        Ok(Settings {
            project: project.to_owned(),
            app_name,
            nodes,
            cookie,
            ebin,
            build,
            timeout,
            snapshot_dir: project.join(
                file.snapshot_dir
                    .clone()
                    .unwrap_or_else(|| ".hotswap".into()),
            ),
            keep_snapshots: file.keep_snapshots.unwrap_or(crate::store::DEFAULT_KEEP),
            code_change: file.code_change.unwrap_or(true),
            migrate_custom_loops: file.migrate_custom_loops.unwrap_or(false),
            observe: file.observe_ms.map_or(
                crate::deploy::migrate::DEFAULT_OBSERVE,
                Duration::from_millis,
            ),
            after_deploy: file.after_deploy.clone(),
            dist_port,
            via,
            tls,
            name: flags.name.clone().or(file.name.clone()),
            sources,
            cookie_source,
            warnings,
        })
    }

    /// The cookie, or the error telling where to put one.
    pub fn cookie(&self) -> Result<&Cookie, ConfigError> {
        self.cookie.as_ref().ok_or(ConfigError::NoCookie)
    }

    /// The target nodes, or the error telling where to name them.
    pub fn require_nodes(&self) -> Result<&[NodeName], ConfigError> {
        match (&self.via, self.nodes.is_empty()) {
            (_, false) => Ok(&self.nodes),
            (Some(via), true) => Err(ConfigError::NoTargets(via.to_string())),
            (None, true) => Err(ConfigError::NoNodes),
        }
    }
}

fn read_toml(path: &Path) -> Result<FileConfig, ConfigError> {
    let built = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            detail: scrub(&e.to_string()),
        })?;
    built
        .try_deserialize::<FileConfig>()
        .map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            detail: scrub(&e.to_string()),
        })
}

/// Parser messages may quote lines of the file, and the file may hold the
/// cookie: keep the message, drop the quoted source.
fn scrub(message: &str) -> String {
    message
        .lines()
        .filter(|l| !l.contains('|') && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(": ")
        .chars()
        .take(300)
        .collect()
}

/// Whether the user named the build whose release to look in (`MIX_ENV`,
/// `MIX_TARGET`, `REBAR_PROFILE`), rather than the default build.
fn named_build(env: &impl Fn(&str) -> Option<String>) -> bool {
    ["MIX_ENV", "MIX_TARGET", "REBAR_PROFILE"]
        .iter()
        .any(|k| env(k).is_some_and(|v| !v.trim().is_empty()))
}

/// The cookie of the project's own release ([`release_cookie::find`]), in
/// the build folder `MIX_ENV` and `MIX_TARGET` (or `REBAR_PROFILE`) pick.
fn release_cookie(
    project: &Path,
    env: &impl Fn(&str) -> Option<String>,
    app: Option<&str>,
) -> Option<(PathBuf, String)> {
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let mix_env = var("MIX_ENV").unwrap_or_else(|| "dev".into());
    let mix_build = match var("MIX_TARGET").filter(|t| t != "host") {
        Some(target) => format!("{target}_{mix_env}"),
        None => mix_env,
    };
    let profile = var("REBAR_PROFILE").unwrap_or_else(|| "default".into());
    release_cookie::find(project, &mix_build, &profile, app)
}

fn read_cookie_file(path: &Path) -> Result<Cookie, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::CookieFile {
        path: path.to_owned(),
        source,
    })?;
    let cookie = text.trim();
    if cookie.is_empty() {
        return Err(ConfigError::EmptyCookie(path.to_owned()));
    }
    Ok(Cookie::new(cookie))
}

/// A warning when the file the cookie comes from may be read by group or
/// others: whoever reads the cookie can run any code on the nodes.
fn cookie_readable(path: Option<&Path>) -> Option<String> {
    let path = path?;
    let loose = loose_permissions(path)?;
    Some(format!("`{}` holds the cookie and {loose}", path.display()))
}

/// `Some(description)` when group or others may read the file.
fn loose_permissions(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o077 != 0).then(|| {
            format!(
                "is readable by group or others (mode {:o}); `chmod 600` it",
                mode & 0o777
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_releases_cookie_comes_before_the_home_cookie_and_says_where_it_is() {
        let dir = tempfile::tempdir().expect("tmp");
        let home = tempfile::tempdir().expect("home");
        std::fs::write(dir.path().join("mix.exs"), "").expect("mix.exs");
        std::fs::write(home.path().join(".erlang.cookie"), "HOMECOOKIE").expect("home");
        let home_text = home.path().to_string_lossy().into_owned();
        let env = |k: &str| match k {
            "HOME" => Some(home_text.clone()),
            "MIX_ENV" => Some("prod".to_owned()),
            _ => None,
        };
        let s = Settings::load_with_env(dir.path(), &Flags::default(), env).expect("load");
        assert_eq!(s.cookie().expect("cookie").expose(), "HOMECOOKIE");
        let file = dir.path().join("_build/prod/rel/example/releases/COOKIE");
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, "RELEASECOOKIE\n").expect("cookie");
        let s = Settings::load_with_env(dir.path(), &Flags::default(), env).expect("load");
        assert_eq!(s.cookie().expect("cookie").expose(), "RELEASECOOKIE");
        assert!(
            s.cookie_source.contains("releases/COOKIE"),
            "{}",
            s.cookie_source
        );
        assert!(!s.cookie_source.contains("RELEASECOOKIE"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(&file, mode).expect("chmod");
            let s = Settings::load_with_env(dir.path(), &Flags::default(), env).expect("load");
            assert!(
                s.warnings.iter().any(|w| w.contains("releases/COOKIE")),
                "{:?}",
                s.warnings
            );
        }
    }

    #[test]
    fn layers_win_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "nodes = [\"a@h\"]\ncookie = \"from-file\"\napp_name = \"x\"\n",
        )
        .expect("write");
        let s = Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect("load");
        assert_eq!(s.nodes[0].to_string(), "a@h");
        assert_eq!(s.cookie().expect("cookie").expose(), "from-file");
        let env = |k: &str| match k {
            "HOTSWAP_NODES" => Some("b@h, c@h".to_owned()),
            "HOTSWAP_COOKIE" => Some("from-env".to_owned()),
            _ => None,
        };
        let s = Settings::load_with_env(dir.path(), &Flags::default(), env).expect("load");
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.cookie().expect("cookie").expose(), "from-env");
        let flags = Flags {
            nodes: vec!["d@h".into()],
            cookie: Some("from-flag".into()),
            ..Default::default()
        };
        let s = Settings::load_with_env(dir.path(), &flags, env).expect("load");
        assert_eq!(s.nodes[0].to_string(), "d@h");
        assert_eq!(s.cookie().expect("cookie").expose(), "from-flag");
    }

    #[test]
    fn the_gateway_layers_and_a_bad_name_is_refused_by_where_it_came_from() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "via = \"gw@file\"\ncookie = \"c\"\n",
        )
        .expect("write");
        let s = Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect("load");
        assert_eq!(
            s.via.as_ref().map(|v| v.to_string()).as_deref(),
            Some("gw@file")
        );
        match s.require_nodes() {
            Err(ConfigError::NoTargets(via)) => assert_eq!(via, "gw@file"),
            other => panic!("no targets behind a gateway is an error, not {other:?}"),
        }
        let env = |k: &str| (k == "HOTSWAP_VIA").then(|| "gw@env".to_owned());
        let s = Settings::load_with_env(dir.path(), &Flags::default(), env).expect("load");
        assert_eq!(
            s.via.as_ref().map(|v| v.to_string()).as_deref(),
            Some("gw@env")
        );
        let flags = Flags {
            via: Some("gw@flag".into()),
            ..Default::default()
        };
        let s = Settings::load_with_env(dir.path(), &flags, env).expect("load");
        assert_eq!(
            s.via.as_ref().map(|v| v.to_string()).as_deref(),
            Some("gw@flag")
        );
        let flags = Flags {
            via: Some("no host".into()),
            ..Default::default()
        };
        let e = Settings::load_with_env(dir.path(), &flags, no_env).expect_err("a bad name");
        assert!(e.to_string().contains("`--via`"), "{e}");
    }

    #[test]
    fn tls_settings_layer_and_incomplete_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let toml = "tls_ca = \"pki/ca.pem\"\ntls_cert = \"pki/me.pem\"\ntls_key = \"pki/me.key\"\n";
        std::fs::write(dir.path().join(FILE_NAME), toml).expect("write");
        let s = Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect("load");
        let tls = s.tls.expect("TLS on");
        assert_eq!(tls.ca, dir.path().join("pki/ca.pem"));
        assert_eq!(tls.key, Some(dir.path().join("pki/me.key")));
        assert!(!tls.skip_host_check);
        let env = |k: &str| match k {
            "HOTSWAP_TLS_CA" => Some("/env/ca.pem".to_owned()),
            "HOTSWAP_TLS_SKIP_HOST_CHECK" => Some("true".to_owned()),
            _ => None,
        };
        let s = Settings::load_with_env(dir.path(), &Flags::default(), env).expect("load");
        let tls = s.tls.expect("TLS on");
        assert_eq!(tls.ca, PathBuf::from("/env/ca.pem"));
        assert!(tls.skip_host_check);
        let flags = Flags {
            tls: TlsFlags {
                ca: Some("/flag/ca.pem".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = Settings::load_with_env(dir.path(), &flags, env).expect("load");
        assert_eq!(s.tls.expect("TLS on").ca, PathBuf::from("/flag/ca.pem"));

        for (toml, words) in [
            (
                "tls_cert = \"a.pem\"\ntls_key = \"a.key\"\n",
                "without --tls-ca",
            ),
            (
                "tls_ca = \"ca.pem\"\ntls_cert = \"a.pem\"\n",
                "without --tls-key",
            ),
            (
                "tls_ca = \"ca.pem\"\ntls_key = \"a.key\"\n",
                "without --tls-cert",
            ),
            ("tls_skip_host_check = true\n", "TLS is off"),
        ] {
            std::fs::write(dir.path().join(FILE_NAME), toml).expect("write");
            let err =
                Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect_err(toml);
            assert!(err.to_string().contains(words), "{toml}: {err}");
        }
        // The node's option file fills what nothing else gives.
        let optfile = dir.path().join("ssl_dist.conf");
        std::fs::write(
            &optfile,
            "[{server, [{certfile, \"node.pem\"}, {keyfile, \"node.key\"}, {cacertfile, \"ca.pem\"}]},\n {client, [{server_name_indication, disable}]}].\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "tls_optfile = \"ssl_dist.conf\"\n",
        )
        .expect("write");
        let s = Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect("load");
        let tls = s.tls.expect("TLS on");
        assert_eq!(tls.ca, dir.path().join("ca.pem"));
        assert_eq!(tls.cert, Some(dir.path().join("node.pem")));
        assert!(tls.skip_host_check);
        let s = Settings::load_with_env(dir.path(), &flags, no_env).expect("load");
        assert_eq!(s.tls.expect("TLS on").ca, PathBuf::from("/flag/ca.pem"));
        std::fs::write(&optfile, "[{client, [{verify, verify_peer}]}].\n").expect("write");
        let err =
            Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect_err("no CA");
        assert!(err.to_string().contains("no `cacertfile`"), "{err}");

        std::fs::write(dir.path().join(FILE_NAME), "tls_ca = \"ca.pem\"\n").expect("write");
        let env = |k: &str| (k == "HOTSWAP_TLS_SKIP_HOST_CHECK").then(|| "maybe".to_owned());
        let err = Settings::load_with_env(dir.path(), &Flags::default(), env).expect_err("bad");
        assert!(
            err.to_string().contains("HOTSWAP_TLS_SKIP_HOST_CHECK"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(FILE_NAME), "nodez = [\"a@h\"]\n").expect("write");
        let err =
            Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect_err("unknown");
        assert!(err.to_string().contains("nodez"), "{err}");
    }

    #[test]
    fn an_absurd_timeout_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tmp");
        for bad in ["1e20", "0", "-1", "0.001", "nan", "inf", "86400.5"] {
            std::fs::write(dir.path().join(FILE_NAME), format!("timeout = {bad}\n"))
                .expect("write");
            let err =
                Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect_err(bad);
            assert!(err.to_string().contains("`timeout`"), "{bad}: {err}");
        }
        for good in ["0.01", "30", "86400"] {
            std::fs::write(dir.path().join(FILE_NAME), format!("timeout = {good}\n"))
                .expect("write");
            Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect(good);
        }
        let flags = Flags {
            timeout: Some(1e20),
            ..Default::default()
        };
        std::fs::remove_file(dir.path().join(FILE_NAME)).expect("rm");
        let err = Settings::load_with_env(dir.path(), &flags, no_env).expect_err("flag");
        assert!(
            err.to_string().contains("1e20") || err.to_string().contains("100000000000000000000"),
            "{err}"
        );
    }

    #[test]
    fn a_cookie_file_or_config_exs_readable_by_others_is_warned_of() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        let secret = dir.path().join("device.cookie");
        std::fs::write(&secret, "sekrit\n").expect("write");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "cookie_file = \"device.cookie\"\n",
        )
        .expect("write");
        chmod(&dir.path().join(FILE_NAME), 0o644);
        chmod(&secret, 0o644);
        let s = Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect("load");
        assert!(
            s.warnings.iter().any(|w| w.contains("device.cookie")),
            "{:?}",
            s.warnings
        );
        chmod(&secret, 0o600);
        let s = Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect("load");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);

        let mix = tempfile::tempdir().expect("tmp");
        std::fs::write(mix.path().join("mix.exs"), "").expect("write");
        std::fs::create_dir(mix.path().join("config")).expect("mkdir");
        let exs = mix.path().join("config/config.exs");
        std::fs::write(
            &exs,
            "import Config\nconfig :mix_tasks_upload_hotswap,\n  nodes: [:\"a@h\"],\n  cookie: :\"sekrit\"\n",
        )
        .expect("write");
        chmod(&exs, 0o644);
        let s = Settings::load_with_env(mix.path(), &Flags::default(), no_env).expect("load");
        assert!(
            s.warnings.iter().any(|w| w.contains("config.exs")),
            "{:?}",
            s.warnings
        );
        // A cookie from the environment is not the file's: no warning.
        let env = |k: &str| (k == "HOTSWAP_COOKIE").then(|| "other".to_owned());
        let s = Settings::load_with_env(mix.path(), &Flags::default(), env).expect("load");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn cookie_never_shows_in_debug() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(FILE_NAME), "cookie = \"sekrit-value\"\n").expect("write");
        let s = Settings::load_with_env(dir.path(), &Flags::default(), no_env).expect("load");
        assert!(!format!("{s:?}").contains("sekrit-value"));
    }
}
