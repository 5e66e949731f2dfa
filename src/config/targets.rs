//! The nodes a run is for: the targets (`--node`, else `HOTSWAP_NODES`,
//! else `nodes` in the file), the gateway they are reached through
//! (`--via`), and their distribution port without EPMD.

use super::error::ConfigError;
use super::file::FileLayer;
use super::flags::Flags;
use crate::peer::NodeName;

/// The target nodes, once each, each name checked and an error naming the
/// layer a bad one came from.
pub(super) fn nodes(
    flags: &Flags,
    layer: &FileLayer,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<NodeName>, ConfigError> {
    let texts: Vec<(String, String)> = if !flags.nodes.is_empty() {
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
        let origin = format!("`{}`", layer.origin());
        let names = layer.config.nodes.clone().unwrap_or_default();
        names.into_iter().map(|n| (n, origin.clone())).collect()
    };
    let mut nodes = Vec::new();
    for (text, source_name) in texts {
        let node = name(&text, source_name)?;
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    Ok(nodes)
}

/// The gateway: `--via`, else `HOTSWAP_VIA`, else `via` in the file.
pub(super) fn via(
    flags: &Flags,
    layer: &FileLayer,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<NodeName>, ConfigError> {
    let via = match (&flags.via, &layer.config.via, env("HOTSWAP_VIA")) {
        (Some(text), _, _) => Some((text.clone(), "`--via`")),
        (None, _, Some(text)) if !text.trim().is_empty() => Some((text, "HOTSWAP_VIA")),
        (None, Some(text), _) => Some((text.clone(), "`via` in hotswap.toml")),
        _ => None,
    };
    via.map(|(text, source_name)| name(text.trim(), source_name.into()))
        .transpose()
}

/// The nodes' distribution port: `--dist-port`, else `dist_port` in the
/// file, else `ERL_DIST_PORT`; never 0.
pub(super) fn dist_port(
    flag: Option<u16>,
    layer: &FileLayer,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<u16>, ConfigError> {
    let port = match flag.or(layer.config.dist_port) {
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
    match port {
        Some(0) => Err(ConfigError::DistPort("0".into())),
        port => Ok(port),
    }
}

fn name(text: &str, source_name: String) -> Result<NodeName, ConfigError> {
    text.parse::<NodeName>().map_err(|e| ConfigError::Node {
        source_name,
        detail: e.to_string(),
    })
}
