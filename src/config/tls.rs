//! Where the TLS distribution's files are.

use super::error::ConfigError;
use super::flags::TlsFlags;
use super::keys::FileConfig;
use super::ssl_dist_optfile;
use crate::peer::TlsFiles;
use std::path::{Path, PathBuf};

/// The TLS settings, each from the flag, else `HOTSWAP_TLS_*`, else
/// `tls_*` in the file (a path there is relative to the project), else the
/// node's own `-ssl_dist_optfile` if one is given (`--tls-optfile`). Any of
/// the CA, the certificate and the key turns TLS on; the CA is then
/// needed, and a certificate needs its key.
pub(super) fn tls_files(
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
