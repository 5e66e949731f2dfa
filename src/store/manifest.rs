//! A manifest: what one deploy did, per node and module. Written before the
//! deploy changes any node (outcome `pending`) and again when it ends, so a
//! crash in between leaves a record a rollback can act on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a node ran of a module before a deploy changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Prior {
    /// Loaded with this MD5; `sha256` names its binary in the store, `None`
    /// when it could not be had (not restorable).
    Loaded { md5: String, sha256: Option<String> },
    /// Not loaded, but on the node's code path with this MD5; `sha256`
    /// names a copy of that file in the store.
    OnDisk { md5: String, sha256: Option<String> },
    /// Neither loaded nor on the code path: rolling back removes it.
    Absent,
}

impl Prior {
    /// The stored binary that puts this prior back, if one is needed and had.
    pub fn object(&self) -> Option<&str> {
        match self {
            Prior::Loaded { sha256, .. } | Prior::OnDisk { sha256, .. } => sha256.as_deref(),
            Prior::Absent => None,
        }
    }

    pub fn md5(&self) -> Option<&str> {
        match self {
            Prior::Loaded { md5, .. } | Prior::OnDisk { md5, .. } => Some(md5),
            Prior::Absent => None,
        }
    }

    /// Whether a rollback can put it back (absent ones by removing).
    pub fn restorable(&self) -> bool {
        matches!(self, Prior::Absent) || self.object().is_some()
    }
}

/// One module a deploy changed on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub module: String,
    pub prior: Prior,
    /// The MD5 the deploy loaded (`None` in manifests of older versions).
    pub deployed: Option<String>,
}

/// How a deploy ended on one node. Loading is atomic per node, so one
/// outcome covers all of its modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeOutcome {
    /// Written before loading; still so after a crash mid-run.
    Pending,
    /// Loaded (and verified if asked): a rollback candidate.
    Applied,
    /// Nothing was changed on this node.
    Refused,
    /// Loaded, then put back as it was because the deploy failed.
    Undone,
    /// Loaded, and putting it back failed for some modules.
    NotUndone,
    /// Undone later by `--rollback`.
    RolledBack,
}

impl NodeOutcome {
    /// Whether the node may still run what this deploy loaded.
    pub fn rollbackable(self) -> bool {
        matches!(
            self,
            NodeOutcome::Pending | NodeOutcome::Applied | NodeOutcome::NotUndone
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub outcome: NodeOutcome,
    pub modules: Vec<ModuleRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub id: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The tool node that ran the deploy.
    pub tool: String,
    pub nodes: BTreeMap<String, NodeRecord>,
}

impl Manifest {
    /// The manifest a snapshot file's bytes hold.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn new(tool: &str, nodes: BTreeMap<String, NodeRecord>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Manifest {
            id: format!(
                "{}-{:06}",
                super::time::utc_stamp(now.as_secs()),
                now.subsec_micros()
            ),
            created: now.as_secs(),
            tool: tool.to_owned(),
            nodes,
        }
    }

    /// The creation time as `YYYY-MM-DD HH:MM:SS UTC`.
    pub fn time(&self) -> String {
        super::time::utc_time(self.created)
    }

    /// Whether every node's part has been rolled back (or never applied).
    pub fn settled(&self) -> bool {
        self.nodes.values().all(|n| !n.outcome.rollbackable())
    }
}

/// Manifests as written by this version, or by 0.1 (a list of priors per
/// node and one `rolled_back` flag for the whole deploy).
#[derive(Deserialize)]
struct Stored {
    id: String,
    created: u64,
    #[serde(default)]
    tool: String,
    nodes: BTreeMap<String, StoredNode>,
    #[serde(default)]
    rolled_back: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StoredNode {
    Current(NodeRecord),
    Legacy(Vec<LegacyEntry>),
}

#[derive(Deserialize)]
struct LegacyEntry {
    module: String,
    #[serde(flatten)]
    prior: LegacyPrior,
}

#[derive(Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum LegacyPrior {
    Absent,
    Restorable { md5: String, sha256: String },
    Unrestorable { md5: String },
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        let legacy_outcome = if stored.rolled_back {
            NodeOutcome::RolledBack
        } else {
            NodeOutcome::Applied
        };
        let nodes = stored
            .nodes
            .into_iter()
            .map(|(node, part)| {
                let record = match part {
                    StoredNode::Current(r) => r,
                    StoredNode::Legacy(entries) => NodeRecord {
                        outcome: legacy_outcome,
                        modules: entries.into_iter().map(LegacyEntry::upgrade).collect(),
                    },
                };
                (node, record)
            })
            .collect();
        Ok(Manifest {
            id: stored.id,
            created: stored.created,
            tool: stored.tool,
            nodes,
        })
    }
}

impl LegacyEntry {
    fn upgrade(self) -> ModuleRecord {
        let prior = match self.prior {
            LegacyPrior::Absent => Prior::Absent,
            LegacyPrior::Restorable { md5, sha256 } => Prior::Loaded {
                md5,
                sha256: Some(sha256),
            },
            LegacyPrior::Unrestorable { md5 } => Prior::Loaded { md5, sha256: None },
        };
        ModuleRecord {
            module: self.module,
            prior,
            deployed: None,
        }
    }
}
