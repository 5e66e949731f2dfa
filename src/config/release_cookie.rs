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
/// `app` names the release; without it, the Mix project's app if it has
/// one, else the only release there is (of several, none is guessed).
pub fn find(
    project: &Path,
    mix_build: &str,
    rebar_profile: &str,
    app: Option<&str>,
) -> Option<(PathBuf, String)> {
    if project.join("mix.exs").is_file() {
        let rel = project.join("_build").join(mix_build).join("rel");
        let file = match app {
            Some(app) => Some(rel.join(app)),
            None => release(
                &rel,
                crate::project::discover::mix_app_name(project).as_deref(),
            ),
        }?
        .join("releases")
        .join("COOKIE");
        let cookie = mix_cookie(&file)?;
        return Some((file, cookie));
    }
    if project.join("rebar.config").is_file() {
        let rel = project.join("_build").join(rebar_profile).join("rel");
        // releases/<vsn>/vm.args, the newest version first.
        let named = app.map(|a| rel.join(a));
        let built = named
            .or_else(|| release(&rel, None))
            .into_iter()
            .flat_map(|r| {
                let mut versions = dirs(&r.join("releases"));
                versions.sort_by(|a, b| version_order(b, a));
                versions.into_iter().map(|v| v.join("vm.args"))
            });
        return built
            .chain([project.join("config").join("vm.args")])
            .find_map(|file| Some((file.clone(), setcookie(&file)?)));
    }
    None
}

/// The release folder under `rel`: `app`'s if it has one, else the only
/// one there is.
fn release(rel: &Path, app: Option<&str>) -> Option<PathBuf> {
    if let Some(dir) = app.map(|a| rel.join(a)).filter(|d| d.is_dir()) {
        return Some(dir);
    }
    match <[PathBuf; 1]>::try_from(dirs(rel)) {
        Ok([only]) => Some(only),
        Err(_) => None,
    }
}

/// Two release folders by the version each is named for, as versions:
/// `0.10.0` after `0.9.0`, `1.0.0-rc.1` before `1.0.0`.
fn version_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (a, b) = (name(a), name(b));
    let split = |v: &str| {
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) => (c.to_owned(), Some(p.to_owned())),
            None => (v.to_owned(), None),
        };
        (pieces(&core), pre.map(|p| pieces(&p)))
    };
    let ((core_a, pre_a), (core_b, pre_b)) = (split(&a), split(&b));
    core_a.cmp(&core_b).then_with(|| match (pre_a, pre_b) {
        // A pre-release comes before its release.
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    })
}

/// A version's dot-separated pieces: numbers as numbers, before words.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Piece {
    Number(u64),
    Word(String),
}

fn pieces(text: &str) -> Vec<Piece> {
    text.split(['.', '+'])
        .map(|p| match p.parse() {
            Ok(n) => Piece::Number(n),
            Err(_) => Piece::Word(p.to_owned()),
        })
        .collect()
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
    fn of_several_mix_releases_the_projects_app_is_taken_and_none_is_guessed() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(&root.join("mix.exs"), "[app: :example]");
        for app in ["another", "example", "zeta"] {
            let file = root.join(format!("_build/prod/rel/{app}/releases/COOKIE"));
            write(&file, &format!("{app}_cookie"));
        }
        assert_eq!(
            find(root, "prod", "default", None).map(|(_, c)| c),
            Some("example_cookie".into())
        );
        assert_eq!(
            find(root, "prod", "default", Some("zeta")).map(|(_, c)| c),
            Some("zeta_cookie".into()),
            "the configured app first"
        );
        write(&root.join("mix.exs"), "[app: :unreleased]");
        assert_eq!(find(root, "prod", "default", None), None, "not guessed");
    }

    #[test]
    fn rebar3_release_versions_are_compared_as_versions() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(&root.join("rebar.config"), "");
        for (vsn, cookie) in [("0.9.0", "nine"), ("0.10.0", "ten"), ("0.10.1-rc.1", "rc")] {
            let file = root.join(format!("_build/default/rel/rel/releases/{vsn}/vm.args"));
            write(&file, &format!("-setcookie {cookie}\n"));
        }
        assert_eq!(
            find(root, "prod", "default", None).map(|(_, c)| c),
            Some("rc".into())
        );
        let file = root.join("_build/default/rel/rel/releases/0.10.1/vm.args");
        write(&file, "-setcookie released\n");
        assert_eq!(
            find(root, "prod", "default", None).map(|(_, c)| c),
            Some("released".into()),
            "a release after its release candidate"
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
