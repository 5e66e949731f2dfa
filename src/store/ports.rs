//! The distribution port each node had when last connected to: a cache
//! the way a node is reached reads before asking EPMD.

use super::files::write_atomic;
use super::objects::Store;
use std::collections::BTreeMap;

impl Store {
    /// The distribution port each node had when last connected to.
    pub fn ports(&self) -> BTreeMap<String, u16> {
        std::fs::read(self.root().join("ports.json"))
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default()
    }

    /// Remembers `ports`; only a cache (a stale port costs one failed
    /// attempt), so a failure to write it is not an error.
    pub fn remember_ports(&self, ports: &BTreeMap<String, u16>) {
        if let Ok(text) = serde_json::to_vec_pretty(ports) {
            let _ = write_atomic(&self.root().join("ports.json"), &text, false);
        }
    }
}
