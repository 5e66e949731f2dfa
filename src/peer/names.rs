//! Node names: parsing a target's name, and choosing the tool's own
//! `hotswap@HOST` so that the targets accept it. All naming rules live here.
//!
//! Erlang refuses to connect a short-named node (`-sname`, host without dots)
//! to a long-named one (`-name`, fully qualified host or IP), so the tool takes
//! the kind its targets use.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The name this tool registers under unless told otherwise.
pub const DEFAULT_LOCAL_NAME: &str = "hotswap";

/// A node name, `name@host`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName {
    name: String,
    host: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    #[error("node name `{0}` has no `@host` part (write it as `name@host`)")]
    MissingHost(String),
    #[error("node name `{0}` is not valid: {1}")]
    Invalid(String, &'static str),
    #[error(
        "nodes `{short}` and `{long}` mix short and long names; Erlang cannot connect both from one node"
    )]
    Mixed { short: String, long: String },
    #[error("could not find this machine's host name: {0}")]
    NoHostName(String),
}

impl NodeName {
    pub fn new(name: &str, host: &str) -> Result<Self, NameError> {
        let full = format!("{name}@{host}");
        if name.is_empty() {
            return Err(NameError::Invalid(full, "the part before `@` is empty"));
        }
        if host.is_empty() {
            return Err(NameError::Invalid(full, "the host after `@` is empty"));
        }
        if full.len() > 255 {
            return Err(NameError::Invalid(full, "it is longer than 255 bytes"));
        }
        if name.contains('@') {
            return Err(NameError::Invalid(full, "it has more than one `@`"));
        }
        if full.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(NameError::Invalid(full, "it contains white space"));
        }
        Ok(NodeName {
            name: name.to_owned(),
            host: host.to_owned(),
        })
    }

    /// The part before `@`, as registered in EPMD.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Long names have a dotted host or an IP address.
    pub fn is_long(&self) -> bool {
        self.host.contains('.') || self.host.parse::<IpAddr>().is_ok()
    }

    pub(crate) fn to_erl_dist(&self) -> erl_dist::node::NodeName {
        // Both sides enforce the same rules, so this cannot fail for a NodeName.
        erl_dist::node::NodeName::new(&self.name, &self.host)
            .unwrap_or_else(|_| unreachable!("NodeName is validated on construction"))
    }
}

impl FromStr for NodeName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Elixir users write `:"app@host"`; accept the atom syntax too.
        let s = s
            .trim()
            .trim_start_matches(':')
            .trim_matches('"')
            .trim_matches('\'');
        match s.split_once('@') {
            Some((name, host)) => NodeName::new(name, host),
            None => Err(NameError::MissingHost(s.to_owned())),
        }
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.host)
    }
}

/// Whether the targets use short or long names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMode {
    Short,
    Long,
}

/// The one naming mode all `targets` share; short when there are none.
pub fn mode_for(targets: &[NodeName]) -> Result<NameMode, NameError> {
    let short = targets.iter().find(|t| !t.is_long());
    let long = targets.iter().find(|t| t.is_long());
    match (short, long) {
        (Some(s), Some(l)) => Err(NameError::Mixed {
            short: s.to_string(),
            long: l.to_string(),
        }),
        (_, Some(_)) => Ok(NameMode::Long),
        _ => Ok(NameMode::Short),
    }
}

/// The tool's own node name for talking to `targets`.
///
/// `name` may be `alive` alone (`hotswap`) or a whole `alive@host`, which is
/// then taken as it is. Otherwise the host is the short host name for short
/// targets; for long ones the fully qualified host name, or, when the targets
/// are addressed by IP, the local address that routes to the first of them.
pub fn local_name(name: Option<&str>, targets: &[NodeName]) -> Result<NodeName, NameError> {
    let name = name.unwrap_or(DEFAULT_LOCAL_NAME);
    if name.contains('@') {
        return name.parse();
    }
    let host = match mode_for(targets)? {
        NameMode::Short => short_host_name()?,
        NameMode::Long => {
            let by_ip = targets.iter().find_map(|t| t.host().parse::<IpAddr>().ok());
            match by_ip {
                Some(ip) => local_address_towards(ip).to_string(),
                None => long_host_name()?,
            }
        }
    };
    NodeName::new(name, &host)
}

/// This machine's host name up to the first dot, as `erl -sname` uses it.
pub fn short_host_name() -> Result<String, NameError> {
    let full = raw_host_name()?;
    Ok(full.split('.').next().unwrap_or(&full).to_owned())
}

/// This machine's fully qualified name, as `erl -name` would use it.
pub fn long_host_name() -> Result<String, NameError> {
    let raw = raw_host_name()?;
    if raw.contains('.') {
        return Ok(raw);
    }
    // `hostname -f` asks the resolver for the canonical name.
    let fqdn = std::process::Command::new("hostname")
        .arg("-f")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| s.contains('.'));
    fqdn.ok_or_else(|| {
        NameError::NoHostName(format!(
            "`{raw}` is not fully qualified; pass `--name hotswap@<fqdn>` or address the nodes by IP"
        ))
    })
}

fn raw_host_name() -> Result<String, NameError> {
    let name = gethostname::gethostname();
    let name = name
        .into_string()
        .map_err(|_| NameError::NoHostName("the host name is not UTF-8".into()))?;
    if name.is_empty() {
        return Err(NameError::NoHostName("the host name is empty".into()));
    }
    Ok(name)
}

/// The local address the kernel would use to reach `target`. A connected UDP
/// socket sends nothing; it only makes the kernel pick a route.
fn local_address_towards(target: IpAddr) -> IpAddr {
    if target.is_loopback() {
        return target;
    }
    let bind: IpAddr = match target {
        IpAddr::V4(_) => [0, 0, 0, 0].into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    std::net::UdpSocket::bind((bind, 0))
        .and_then(|s| s.connect((target, 9)).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<NodeName> {
        list.iter().map(|s| s.parse().expect("valid")).collect()
    }

    #[test]
    fn parses_plain_and_elixir_atom_syntax() {
        let n: NodeName = ":\"example@nerves.local\"".parse().expect("valid");
        assert_eq!(n.name(), "example");
        assert_eq!(n.host(), "nerves.local");
        assert!(n.is_long());
        assert!("app".parse::<NodeName>().is_err());
        assert!("@host".parse::<NodeName>().is_err());
        assert!("a@".parse::<NodeName>().is_err());
    }

    #[test]
    fn mode_follows_targets() {
        assert_eq!(mode_for(&names(&["a@box"])), Ok(NameMode::Short));
        assert_eq!(
            mode_for(&names(&["a@10.0.0.2", "b@x.lan"])),
            Ok(NameMode::Long)
        );
        assert!(matches!(
            mode_for(&names(&["a@box", "b@x.lan"])),
            Err(NameError::Mixed { .. })
        ));
    }

    #[test]
    fn local_name_for_ip_targets_is_an_ip() {
        let local = local_name(None, &names(&["a@127.0.0.1"])).expect("name");
        assert_eq!(local.to_string(), "hotswap@127.0.0.1");
        let given = local_name(Some("x@y"), &names(&["a@127.0.0.1"])).expect("name");
        assert_eq!(given.to_string(), "x@y");
    }
}
