//! The file layers: `hotswap.toml` (or `--config FILE`), else, in a Mix
//! project, `config/config.exs`'s `:mix_tasks_upload_hotswap` block.

use super::error::ConfigError;
use super::exs;
use super::flags::Flags;
use super::keys::{FileConfig, FILE_NAME};
use std::path::{Path, PathBuf};

/// The file a project's settings came from, if any.
#[derive(Debug, Default)]
pub(super) struct FileLayer {
    pub config: FileConfig,
    /// The files read, for messages.
    pub sources: Vec<String>,
    /// The file whose `cookie` key holds the cookie, if one does.
    pub cookie_origin: Option<PathBuf>,
}

impl FileLayer {
    /// Reads `hotswap.toml` (or `--config`), else a Mix project's
    /// `config/config.exs` for the `MIX_ENV` and `MIX_TARGET` of `env`.
    pub fn read(
        project: &Path,
        flags: &Flags,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<FileLayer, ConfigError> {
        let toml_path = flags
            .config
            .clone()
            .unwrap_or_else(|| project.join(FILE_NAME));
        if toml_path.is_file() {
            return Ok(FileLayer::of(read_toml(&toml_path)?, toml_path));
        }
        if flags.config.is_some() {
            return Err(ConfigError::Read {
                path: toml_path,
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let exs_path = project.join("config").join("config.exs");
        if !project.join("mix.exs").is_file() || !exs_path.is_file() {
            return Ok(FileLayer::default());
        }
        let target = env("MIX_TARGET").filter(|t| !t.is_empty() && t != "host");
        let mix_env = env("MIX_ENV").unwrap_or_else(|| "dev".into());
        let build = exs::MixBuild {
            env: &mix_env,
            target: target.as_deref(),
        };
        Ok(match exs::read_upload_hotswap(&exs_path, build)? {
            Some(found) => FileLayer::of(found, exs_path),
            None => FileLayer::default(),
        })
    }

    fn of(config: FileConfig, path: PathBuf) -> FileLayer {
        let cookie_origin = config.cookie.is_some().then(|| path.clone());
        FileLayer {
            config,
            sources: vec![path.display().to_string()],
            cookie_origin,
        }
    }

    /// The file the settings came from, for messages.
    pub fn origin(&self) -> &str {
        self.sources.last().map_or(FILE_NAME, String::as_str)
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
