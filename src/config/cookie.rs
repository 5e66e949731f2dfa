//! Where the cookie comes from, first found winning: `--cookie`,
//! `HOTSWAP_COOKIE`, `cookie` or `cookie_file` in the file, the project's
//! release, `~/.erlang.cookie`. Where it came from is said (`-v`); the
//! cookie itself never is.

use super::error::ConfigError;
use super::file::FileLayer;
use super::release_cookie;
use crate::peer::Cookie;
use std::path::{Path, PathBuf};

/// The cookie and where it came from; `warnings` gets what the user should
/// know about the file it is in.
pub(super) fn cookie(
    project: &Path,
    flag: Option<&str>,
    layer: &FileLayer,
    app_name: Option<&str>,
    env: &impl Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Cookie>, ConfigError> {
    let found = if let Some(c) = flag {
        Some((Cookie::new(c.to_owned()), "`--cookie`".to_owned()))
    } else if let Some(c) = env("HOTSWAP_COOKIE").filter(|c| !c.is_empty()) {
        Some((Cookie::new(c), "HOTSWAP_COOKIE".to_owned()))
    } else if let Some(c) = &layer.config.cookie {
        warnings.extend(cookie_readable(layer.cookie_origin.as_deref()));
        let source = format!("`cookie` in `{}`", layer.origin());
        Some((Cookie::new(c.clone()), source))
    } else if let Some(path) = &layer.config.cookie_file {
        let path = project.join(path);
        warnings.extend(cookie_readable(Some(&path)));
        let source = format!("`{}` (`cookie_file`)", path.display());
        Some((read_cookie_file(&path)?, source))
    } else {
        release_or_home(project, app_name, env, warnings)?
    };
    Ok(found.map(|(cookie, source)| cookie.from(source)))
}

/// The project's release, and ~/.erlang.cookie: the release's first if
/// the user named its build, else the home's first (a dev release left in
/// `_build` is no reason to pass over the cookie `iex --sname` nodes use).
fn release_or_home(
    project: &Path,
    app_name: Option<&str>,
    env: &impl Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<(Cookie, String)>, ConfigError> {
    let release = release_cookie(project, env, app_name);
    let home = env("HOME")
        .map(|h| PathBuf::from(h).join(".erlang.cookie"))
        .filter(|path| path.is_file());
    let release_first = home.is_none() || named_build(env);
    match (release, home) {
        (Some((path, c)), _) if release_first => {
            warnings.extend(cookie_readable(Some(&path)));
            let source = format!("`{}` (the project's release)", path.display());
            Ok(Some((Cookie::new(c), source)))
        }
        (_, Some(path)) => {
            if let Some(w) = loose_permissions(&path) {
                warnings.push(format!(
                    "`{}` {w}; `erl` refuses such a cookie file",
                    path.display()
                ));
            }
            let source = format!("`{}`", path.display());
            Ok(Some((read_cookie_file(&path)?, source)))
        }
        _ => Ok(None),
    }
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
