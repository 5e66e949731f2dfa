//! Layered configuration, later layers winning:
//! 1. `config/config.exs`'s `:mix_tasks_upload_hotswap` block, in a Mix
//!    project without `hotswap.toml` (what `mix upload.hotswap` users have);
//! 2. `hotswap.toml` in the project (or `--config FILE`);
//! 3. the environment: `HOTSWAP_APP_NAME`, `HOTSWAP_NODES`, `HOTSWAP_COOKIE`;
//! 4. command-line flags.
//!
//! The cookie never appears in an error, a log line or `Debug` output.

mod cookie;
mod error;
pub mod exs;
mod file;
mod flags;
mod keys;
mod release_cookie;
pub mod ssl_dist_optfile;
mod targets;
mod timeout;
mod tls;

pub use error::ConfigError;
pub use flags::{Flags, TlsFlags};
pub use keys::{FileConfig, FILE_NAME};
pub use timeout::TIMEOUT_RANGE;

use crate::peer::{Cookie, NodeName, TlsFiles};
use file::FileLayer;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        let layer = FileLayer::read(project, flags, &env)?;
        let file = &layer.config;
        let app_name = env("HOTSWAP_APP_NAME")
            .filter(|s| !s.is_empty())
            .or(file.app_name.clone());
        let mut warnings = Vec::new();
        let cookie = cookie::cookie(
            project,
            flags.cookie.as_deref(),
            &layer,
            app_name.as_deref(),
            &env,
            &mut warnings,
        )?;
        let ebin = match flags.ebin.is_empty() {
            true => file.ebin.clone().unwrap_or_default(),
            false => flags.ebin.clone(),
        };
        Ok(Settings {
            project: project.to_owned(),
            nodes: targets::nodes(flags, &layer, &env)?,
            cookie_source: cookie
                .as_ref()
                .map(|c| c.origin().to_owned())
                .unwrap_or_default(),
            cookie,
            ebin,
            build: build_command(project, file),
            timeout: timeout::timeout(flags.timeout, file).map_err(ConfigError::Timeout)?,
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
            dist_port: targets::dist_port(flags.dist_port, &layer, &env)?,
            via: targets::via(flags, &layer, &env)?,
            tls: tls::tls_files(project, &flags.tls, file, &env)?,
            name: flags.name.clone().or(file.name.clone()),
            app_name,
            sources: layer.sources.clone(),
            warnings,
        })
    }

    /// The cookie, or the error telling where to put one.
    pub fn cookie(&self) -> Result<&Cookie, ConfigError> {
        self.cookie.as_ref().ok_or(ConfigError::NoCookie)
    }

    /// Whether a command that changes nodes can run: nodes named (unless
    /// `nodes_optional`, a whole cluster through a gateway) and a cookie.
    pub fn ready(&self, nodes_optional: bool) -> Result<(), ConfigError> {
        if !(nodes_optional && self.via.is_some()) {
            self.require_nodes()?;
        }
        self.cookie().map(|_| ())
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

/// The build command: `build` in the file (empty: none), else what the
/// project's kind builds with.
fn build_command(project: &Path, file: &FileConfig) -> Option<String> {
    match file.build.clone() {
        Some(cmd) if cmd.trim().is_empty() => None,
        Some(cmd) => Some(cmd),
        None if project.join("mix.exs").is_file() => Some("mix compile".into()),
        None if project.join("rebar.config").is_file() => Some("rebar3 compile".into()),
        None => None,
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
