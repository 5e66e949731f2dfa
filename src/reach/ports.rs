//! The distribution port each node had last time this project reached it:
//! tried first, it saves the two round trips of an EPMD lookup (a port
//! that no longer leads to the node costs one failed attempt, then EPMD is
//! asked). Only a cache: kept in the store's folder beside the snapshots,
//! which forgets the ports of nodes it forgets; a failure to write it is
//! not an error.

use crate::peer::NodeName;
use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Ports {
    store: Store,
    /// Held from a read to its write: routes opening at once must not
    /// each write the file from their own stale read of it.
    writing: Mutex<()>,
}

impl Ports {
    pub fn new(store: Store) -> Ports {
        Ports {
            store,
            writing: Mutex::new(()),
        }
    }

    /// Every port remembered.
    pub fn all(&self) -> BTreeMap<String, u16> {
        self.store.ports()
    }

    /// The port `node` had last time.
    pub fn of(&self, node: &NodeName) -> Option<u16> {
        self.all().get(&node.to_string()).copied()
    }

    /// Remembers each node's port, where it changed.
    pub fn remember(&self, found: &[(NodeName, u16)]) {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut ports = self.all();
        let before = ports.clone();
        for (node, port) in found {
            ports.insert(node.to_string(), *port);
        }
        if ports != before {
            self.store.remember_ports(&ports);
        }
    }
}
