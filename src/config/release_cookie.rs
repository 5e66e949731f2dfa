//! The cookie a project's own release was built with, for nodes started
//! from that release: a Mix release keeps it in
//! `_build/<build>/rel/<app>/releases/COOKIE`, a rebar3 release in the
//! `-setcookie` line of its `vm.args` (the built release's, else the
//! project's `config/vm.args`). Used when no cookie is configured, before
//! `~/.erlang.cookie`.

use std::path::{Path, PathBuf};

/// Where the release's cookie is, if the project has a release that has
/// one: `(file, cookie)`. `mix_build` is the Mix build folder's name
/// (`dev`, `prod`, `rpi4_prod`), `rebar_profile` rebar3's profile;
/// `app` narrows to one release.
pub fn find(
    project: &Path,
    mix_build: &str,
    rebar_profile: &str,
    app: Option<&str>,
) -> Option<(PathBuf, String)> {
    if project.join("mix.exs").is_file() {
        let rel = project.join("_build").join(mix_build).join("rel");
        return releases(&rel, app)
            .into_iter()
            .map(|r| r.join("releases").join("COOKIE"))
            .find_map(|file| Some((file.clone(), mix_cookie(&file)?)));
    }
    if project.join("rebar.config").is_file() {
        let rel = project.join("_build").join(rebar_profile).join("rel");
        let built = releases(&rel, app).into_iter().flat_map(|r| {
            // releases/<vsn>/vm.args, newest version last by name.
            let mut args: Vec<PathBuf> = dirs(&r.join("releases"))
                .into_iter()
                .map(|v| v.join("vm.args"))
                .collect();
            args.reverse();
            args
        });
        return built
            .chain([project.join("config").join("vm.args")])
            .find_map(|file| Some((file.clone(), setcookie(&file)?)));
    }
    None
}

/// The release folders under `rel`: `app`'s only, or all, by name.
fn releases(rel: &Path, app: Option<&str>) -> Vec<PathBuf> {
    match app {
        Some(app) => vec![rel.join(app)],
        None => dirs(rel),
    }
}

/// The folders in `dir`, sorted by name; none if it cannot be read.
fn dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

/// A Mix release's `COOKIE` file: the cookie, trimmed, if not empty.
fn mix_cookie(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    Some(text.trim().to_owned()).filter(|c| !c.is_empty())
}

/// The cookie of a `vm.args`'s `-setcookie` line, unless it is taken from
/// the environment when the release starts (`${COOKIE}`): that one is not
/// in the file.
fn setcookie(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter_map(|line| line.strip_prefix("-setcookie"))
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .map(|rest| unquote(rest.trim()))
        .find(|c| !c.is_empty() && !c.contains("${"))
}

fn unquote(text: &str) -> String {
    for q in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn a_mix_release_keeps_its_cookie_in_releases_cookie() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(&root.join("mix.exs"), "");
        assert_eq!(find(root, "prod", "default", None), None);
        let file = root.join("_build/prod/rel/example/releases/COOKIE");
        write(&file, "  RELEASECOOKIE\n");
        assert_eq!(
            find(root, "prod", "default", None),
            Some((file.clone(), "RELEASECOOKIE".into()))
        );
        assert_eq!(find(root, "dev", "default", None), None, "another build");
        assert_eq!(find(root, "prod", "default", Some("other")), None);
        assert_eq!(
            find(root, "prod", "default", Some("example")).map(|(_, c)| c),
            Some("RELEASECOOKIE".into())
        );
    }

    #[test]
    fn a_rebar3_release_keeps_its_cookie_in_vm_args() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(&root.join("rebar.config"), "");
        write(
            &root.join("config/vm.args"),
            "-sname rel\n## a comment\n-setcookie ${COOKIE}\n",
        );
        assert_eq!(
            find(root, "prod", "default", None),
            None,
            "from the environment"
        );
        write(
            &root.join("config/vm.args"),
            "-sname rel\n-setcookie 'from_source' # set at build time\n",
        );
        assert_eq!(
            find(root, "prod", "default", None).map(|(_, c)| c),
            Some("from_source".into())
        );
        let built = root.join("_build/default/rel/rel/releases/0.1.0/vm.args");
        write(&built, "-name rel@host\n-setcookie built_cookie\n");
        assert_eq!(
            find(root, "prod", "default", None),
            Some((built, "built_cookie".into())),
            "the built release's own"
        );
        write(&root.join("x/vm.args"), "-setcookiejar no\n");
        assert_eq!(setcookie(&root.join("x/vm.args")), None);
    }
}
