//! Finding the modules to deploy: the build output of a Mix project (plain,
//! umbrella, or Nerves with `MIX_TARGET`), of a rebar3 project, or explicit
//! `--ebin` folders and `.beam` files.

use crate::beam::{read_all, Module, ModuleError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to look for, from configuration and the environment.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub project: PathBuf,
    /// Narrows a project (or umbrella) to these apps; for Mix and rebar3
    /// the default is what the project file declares.
    pub app_name: Option<String>,
    pub mix_env: Option<String>,
    pub mix_target: Option<String>,
    pub rebar_profile: Option<String>,
    /// Explicit folders; when any are given (or `files`), the project's
    /// own build is not searched.
    pub ebin: Vec<PathBuf>,
    pub files: Vec<PathBuf>,
}

impl Search {
    /// Reads `MIX_ENV`, `MIX_TARGET` and `REBAR_PROFILE` from the environment.
    pub fn from_env(project: PathBuf) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Search {
            project,
            mix_env: var("MIX_ENV"),
            mix_target: var("MIX_TARGET"),
            rebar_profile: var("REBAR_PROFILE"),
            ..Default::default()
        }
    }
}

/// The kind of project found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectKind {
    Mix,
    Umbrella,
    Rebar3,
    Explicit,
}

/// Where the modules are.
#[derive(Debug, Clone)]
pub struct Located {
    pub kind: ProjectKind,
    /// The applications whose modules these are (may be empty for loose files).
    pub apps: Vec<String>,
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    #[error("no `mix.exs` or `rebar.config` in `{}`; run from the project, or name the modules with `--ebin DIR` or `.beam` paths", .0.display())]
    NoProject(PathBuf),
    #[error("cannot tell the app's name from `{}`; set `app_name` in hotswap.toml (or HOTSWAP_APP_NAME)", .0.display())]
    NoAppName(PathBuf),
    #[error("no build output at `{}`; build the project first (`{build}`)", dir.display())]
    NoBuild { dir: PathBuf, build: &'static str },
    #[error("app `{app}` is not one of the project's apps ({known})")]
    UnknownApp { app: String, known: String },
    #[error("`{}` is not a folder", .0.display())]
    NotADir(PathBuf),
    #[error("`{}` is not a `.beam` file", .0.display())]
    NotABeam(PathBuf),
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Locates the `.beam` files the search describes.
pub fn find(search: &Search) -> Result<Located, DiscoverError> {
    if !search.ebin.is_empty() || !search.files.is_empty() {
        return explicit(search);
    }
    let root = &search.project;
    if root.join("mix.exs").is_file() {
        mix(search)
    } else if root.join("rebar.config").is_file() {
        rebar3(search)
    } else {
        Err(DiscoverError::NoProject(root.clone()))
    }
}

fn explicit(search: &Search) -> Result<Located, DiscoverError> {
    let mut files = Vec::new();
    let mut apps = Vec::new();
    for dir in &search.ebin {
        let dir = search.project.join(dir);
        if !dir.is_dir() {
            return Err(DiscoverError::NotADir(dir));
        }
        files.extend(beams_in(&dir)?);
        apps.extend(app_files_in(&dir)?);
    }
    for file in &search.files {
        let file = search.project.join(file);
        if file.extension().is_none_or(|e| e != "beam") {
            return Err(DiscoverError::NotABeam(file));
        }
        files.push(file);
    }
    if let Some(app) = &search.app_name {
        apps = vec![app.clone()];
    }
    apps.sort();
    apps.dedup();
    Ok(Located {
        kind: ProjectKind::Explicit,
        apps,
        files,
    })
}

fn mix(search: &Search) -> Result<Located, DiscoverError> {
    let root = &search.project;
    let env = search.mix_env.as_deref().unwrap_or("dev");
    let build = match search.mix_target.as_deref() {
        Some(target) if target != "host" => format!("{target}_{env}"),
        _ => env.to_owned(),
    };
    let lib = root.join("_build").join(build).join("lib");
    let umbrella = root.join("apps");
    let (kind, declared) = if umbrella.is_dir() && mix_app_name(root).is_none() {
        let mut apps = Vec::new();
        for entry in read_dir(&umbrella)? {
            if let Some(name) = mix_app_name(&entry) {
                apps.push(name);
            }
        }
        apps.sort();
        (ProjectKind::Umbrella, apps)
    } else {
        let app = match &search.app_name {
            Some(app) => app.clone(),
            None => {
                mix_app_name(root).ok_or_else(|| DiscoverError::NoAppName(root.join("mix.exs")))?
            }
        };
        (ProjectKind::Mix, vec![app])
    };
    let apps = narrow(kind, declared, search.app_name.as_deref())?;
    let mut files = Vec::new();
    // Protocols consolidated for this build must travel with the code that
    // implements them. A consolidated protocol replaces the plain one of the
    // same name, as in Mix's code path; umbrella apps share one set.
    let mut consolidated = BTreeMap::new();
    for app in &apps {
        files.extend(built_beams(&lib, app, "mix compile")?);
        let protocols = lib.join(app).join("consolidated");
        if protocols.is_dir() {
            for file in beams_in(&protocols)? {
                if let Some(name) = file.file_name() {
                    consolidated.entry(name.to_owned()).or_insert(file);
                }
            }
        }
    }
    files.retain(|f| f.file_name().is_none_or(|n| !consolidated.contains_key(n)));
    files.extend(consolidated.into_values());
    Ok(Located { kind, apps, files })
}

/// A rebar3 project's own apps (not its dependencies): those whose
/// `.app.src` is in `src/`, or in `apps/*/src/` or `lib/*/src/` (rebar3's
/// default `project_app_dirs`, the layout of `rebar3 new release`).
fn rebar3(search: &Search) -> Result<Located, DiscoverError> {
    let root = &search.project;
    let profile = search.rebar_profile.as_deref().unwrap_or("default");
    let lib = root.join("_build").join(profile).join("lib");
    let declared = rebar_apps(root)?;
    let apps = match (&search.app_name, declared.is_empty()) {
        (Some(app), true) => vec![app.clone()],
        (None, true) => return Err(DiscoverError::NoAppName(root.join("src"))),
        _ => narrow(ProjectKind::Umbrella, declared, search.app_name.as_deref())?,
    };
    let mut files = Vec::new();
    for app in &apps {
        files.extend(built_beams(&lib, app, "rebar3 compile")?);
    }
    Ok(Located {
        kind: ProjectKind::Rebar3,
        files,
        apps,
    })
}

/// The beams in `app`'s `ebin` under the build's `lib`; if it was never
/// built, an error naming the `build` command.
fn built_beams(lib: &Path, app: &str, build: &'static str) -> Result<Vec<PathBuf>, DiscoverError> {
    let ebin = lib.join(app).join("ebin");
    if !ebin.is_dir() {
        return Err(DiscoverError::NoBuild { dir: ebin, build });
    }
    beams_in(&ebin)
}

/// The apps of [`rebar3`], sorted.
fn rebar_apps(root: &Path) -> Result<Vec<String>, DiscoverError> {
    let sources = rebar_source_dirs(root)?;
    let mut apps: Vec<String> = sources.iter().flat_map(|src| app_srcs_in(src)).collect();
    apps.sort();
    apps.dedup();
    Ok(apps)
}

/// Where a rebar3 project's own apps keep their sources: `src/`, and
/// `apps/*/src/` and `lib/*/src/` (those that exist or not).
pub fn rebar_source_dirs(root: &Path) -> Result<Vec<PathBuf>, DiscoverError> {
    let mut sources = vec![root.join("src")];
    for group in ["apps", "lib"] {
        let dir = root.join(group);
        if dir.is_dir() {
            sources.extend(read_dir(&dir)?.into_iter().map(|app| app.join("src")));
        }
    }
    Ok(sources)
}

fn narrow(
    kind: ProjectKind,
    declared: Vec<String>,
    wanted: Option<&str>,
) -> Result<Vec<String>, DiscoverError> {
    match (kind, wanted) {
        (ProjectKind::Umbrella, Some(app)) => {
            if declared.iter().any(|a| a == app) {
                Ok(vec![app.to_owned()])
            } else {
                Err(DiscoverError::UnknownApp {
                    app: app.to_owned(),
                    known: declared.join(", "),
                })
            }
        }
        _ => Ok(declared),
    }
}

/// The `app: :name` a `mix.exs` declares; `None` for umbrella roots.
pub fn mix_app_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("mix.exs")).ok()?;
    let mut rest = text.as_str();
    while let Some(at) = rest.find("app:") {
        let before_ok = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let after = rest[at + 4..].trim_start();
        rest = &rest[at + 4..];
        if !before_ok {
            continue;
        }
        if let Some(atom) = after.strip_prefix(':') {
            let name: String = atom
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

/// The apps whose `<app>.app.src` is in `src` (none if it is not a folder).
fn app_srcs_in(src: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(src) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".app.src")
                .map(str::to_owned)
        })
        .collect()
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, DiscoverError> {
    let io = |source| DiscoverError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

fn beams_in(dir: &Path) -> Result<Vec<PathBuf>, DiscoverError> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "beam") && p.is_file())
        .collect())
}

fn app_files_in(dir: &Path) -> Result<Vec<String>, DiscoverError> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .strip_suffix(".app")
                .map(str::to_owned)
        })
        .collect())
}

/// Reads and validates every file; all problems are reported, not just the
/// first, and two files defining one module is a problem too.
pub fn read_modules(files: &[PathBuf]) -> Result<Vec<Module>, Vec<ModuleError>> {
    let mut errors = Vec::new();
    let mut by_name: BTreeMap<String, Module> = BTreeMap::new();
    for result in read_all(files) {
        match result {
            Ok(module) => {
                if let Some(first) = by_name.get(&module.name) {
                    errors.push(ModuleError::Duplicate {
                        module: module.name.clone(),
                        first: first.path.clone(),
                        second: module.path.clone(),
                    });
                } else {
                    by_name.insert(module.name.clone(), module);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(by_name.into_values().collect())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_app_name_from_mix_exs() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("mix.exs"),
            "defmodule Example.MixProject do\n  def project do\n    [\n      app: :example,\n      version: \"0.1.0\"]\n  end\nend\n",
        )
        .expect("write");
        assert_eq!(mix_app_name(dir.path()).as_deref(), Some("example"));
    }

    #[test]
    fn nerves_target_changes_the_build_folder() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("mix.exs"), "[app: :ex]").expect("write");
        let ebin = dir.path().join("_build/rpi4_prod/lib/ex/ebin");
        std::fs::create_dir_all(&ebin).expect("mkdir");
        std::fs::write(ebin.join("a.beam"), b"x").expect("write");
        let search = Search {
            project: dir.path().to_owned(),
            mix_env: Some("prod".into()),
            mix_target: Some("rpi4".into()),
            ..Default::default()
        };
        let found = find(&search).expect("found");
        assert_eq!(found.files, vec![ebin.join("a.beam")]);
        let host = Search {
            mix_target: Some("host".into()),
            ..search
        };
        assert!(matches!(find(&host), Err(DiscoverError::NoBuild { .. })));
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, b"x").expect("write");
    }

    #[test]
    fn umbrella_apps_share_one_set_of_consolidated_protocols() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::write(root.join("mix.exs"), "[apps_path: \"apps\"]").expect("write");
        for app in ["alpha", "beta"] {
            std::fs::create_dir_all(root.join("apps").join(app)).expect("mkdir");
            std::fs::write(
                root.join("apps").join(app).join("mix.exs"),
                format!("[app: :{app}]"),
            )
            .expect("write");
            touch(&root.join(format!("_build/dev/lib/{app}/ebin/Elixir.{app}.beam")));
            touch(&root.join(format!(
                "_build/dev/lib/{app}/consolidated/Elixir.Enumerable.beam"
            )));
        }
        touch(&root.join("_build/dev/lib/alpha/ebin/Elixir.Proto.beam"));
        touch(&root.join("_build/dev/lib/alpha/consolidated/Elixir.Proto.beam"));
        let found = find(&Search {
            project: root.to_owned(),
            ..Default::default()
        })
        .expect("found");
        assert_eq!(found.kind, ProjectKind::Umbrella);
        assert_eq!(found.apps, vec!["alpha", "beta"]);
        let names: Vec<String> = found
            .files
            .iter()
            .map(|f| f.strip_prefix(root).expect("inside").display().to_string())
            .collect();
        assert_eq!(
            names,
            vec![
                "_build/dev/lib/alpha/ebin/Elixir.alpha.beam",
                "_build/dev/lib/beta/ebin/Elixir.beta.beam",
                "_build/dev/lib/alpha/consolidated/Elixir.Enumerable.beam",
                "_build/dev/lib/alpha/consolidated/Elixir.Proto.beam",
            ]
        );
        let only_beta = find(&Search {
            project: root.to_owned(),
            app_name: Some("beta".into()),
            ..Default::default()
        })
        .expect("found");
        assert_eq!(only_beta.apps, vec!["beta"]);
        assert!(matches!(
            find(&Search {
                project: root.to_owned(),
                app_name: Some("gamma".into()),
                ..Default::default()
            }),
            Err(DiscoverError::UnknownApp { .. })
        ));
    }

    #[test]
    fn rebar3_releases_take_every_app_under_apps_and_lib_but_not_deps() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::write(root.join("rebar.config"), "{erl_opts, []}.").expect("write");
        touch(&root.join("apps/shop/src/shop.app.src"));
        touch(&root.join("lib/pay/src/pay.app.src"));
        for app in ["shop", "pay", "cowlib"] {
            touch(&root.join(format!("_build/default/lib/{app}/ebin/{app}_x.beam")));
        }
        let found = find(&Search {
            project: root.to_owned(),
            ..Default::default()
        })
        .expect("found");
        assert_eq!(found.kind, ProjectKind::Rebar3);
        assert_eq!(found.apps, vec!["pay", "shop"]);
        assert_eq!(
            found.files,
            vec![
                root.join("_build/default/lib/pay/ebin/pay_x.beam"),
                root.join("_build/default/lib/shop/ebin/shop_x.beam"),
            ]
        );
        let only_shop = find(&Search {
            project: root.to_owned(),
            app_name: Some("shop".into()),
            ..Default::default()
        })
        .expect("found");
        assert_eq!(only_shop.apps, vec!["shop"]);
        let unknown = find(&Search {
            project: root.to_owned(),
            app_name: Some("cowlib".into()),
            ..Default::default()
        });
        assert!(
            matches!(unknown, Err(DiscoverError::UnknownApp { .. })),
            "{unknown:?}"
        );
    }

    #[test]
    fn rebar3_projects_use_the_profile_and_app_src() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::write(root.join("rebar.config"), "{erl_opts, []}.").expect("write");
        touch(&root.join("src/shop.app.src"));
        touch(&root.join("_build/default/lib/shop/ebin/shop_cart.beam"));
        touch(&root.join("_build/test/lib/shop/ebin/shop_cart.beam"));
        let found = find(&Search {
            project: root.to_owned(),
            ..Default::default()
        })
        .expect("found");
        assert_eq!(found.kind, ProjectKind::Rebar3);
        assert_eq!(found.apps, vec!["shop"]);
        assert_eq!(
            found.files,
            vec![root.join("_build/default/lib/shop/ebin/shop_cart.beam")]
        );
        let test = find(&Search {
            project: root.to_owned(),
            rebar_profile: Some("test".into()),
            ..Default::default()
        })
        .expect("found");
        assert_eq!(
            test.files,
            vec![root.join("_build/test/lib/shop/ebin/shop_cart.beam")]
        );
    }
}
