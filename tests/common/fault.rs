//! The test's side of the tool's fault points (`src/fault.rs`): the tool,
//! run with [`FaultPoints::env`], stops at a named point and says so; the
//! test puts its fault there, then lets the tool go on. Nothing is left to
//! a race or a sleep. A point is held each time the tool reaches it: each
//! [`FaultPoints::reached`] waits for the next time, and each
//! [`FaultPoints::release`] lets that one go.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a test waits for the tool to reach a point before it fails.
const REACH_LIMIT: Duration = Duration::from_secs(60);

pub struct FaultPoints {
    dir: tempfile::TempDir,
    /// The holding each point is at (how many times it was reached).
    at: Mutex<HashMap<String, u32>>,
}

impl FaultPoints {
    pub fn new() -> Self {
        FaultPoints {
            dir: tempfile::tempdir().expect("tmp"),
            at: Mutex::new(HashMap::new()),
        }
    }

    /// The environment that has the tool hold at each of `points`.
    pub fn env(&self, points: &[&str]) -> Vec<(&'static str, String)> {
        for p in points {
            assert!(
                hotswap_node::fault::POINTS.contains(p),
                "no fault point `{p}` in src/fault.rs"
            );
        }
        vec![
            (
                "HOTSWAP_FAULT_DIR",
                self.dir.path().to_string_lossy().into_owned(),
            ),
            ("HOTSWAP_FAULT_HOLD", points.join(",")),
        ]
    }

    /// Has the tool hold at `point` the next time it passes it (and only
    /// then), with or without `point` in [`FaultPoints::env`]'s list.
    pub fn arm(&self, point: &str) {
        assert!(
            hotswap_node::fault::POINTS.contains(&point),
            "no fault point `{point}`"
        );
        let armed = Path::new(self.dir.path()).join(format!("{point}.armed"));
        std::fs::write(armed, b"").expect("arm the fault point");
    }

    /// Whether `point` is armed still (the tool has not passed it since).
    pub fn armed(&self, point: &str) -> bool {
        Path::new(self.dir.path())
            .join(format!("{point}.armed"))
            .exists()
    }

    /// Takes back [`FaultPoints::arm`] if the tool has not passed `point`.
    pub fn disarm(&self, point: &str) {
        let _ = std::fs::remove_file(Path::new(self.dir.path()).join(format!("{point}.armed")));
    }

    /// Waits until the tool holds at `point`: `true`; `false` at once if
    /// `running` says the tool has exited. Fails the test after a minute.
    pub fn reached(&self, point: &str, running: &mut dyn FnMut() -> bool) -> bool {
        let k = {
            let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
            let k = at.entry(point.to_owned()).or_insert(0);
            *k += 1;
            *k
        };
        let marker = self.path(point, k, "reached");
        let started = Instant::now();
        while !marker.exists() {
            if !running() {
                return false;
            }
            assert!(
                started.elapsed() < REACH_LIMIT,
                "the tool never reached fault point `{point}`"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Lets the tool go on from `point`, where it was last reached.
    pub fn release(&self, point: &str) {
        let k = self
            .at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(point)
            .copied()
            .expect("release a point once it was reached");
        std::fs::write(self.path(point, k, "go"), b"").expect("release the fault point");
    }

    fn path(&self, point: &str, k: u32, what: &str) -> std::path::PathBuf {
        Path::new(self.dir.path()).join(format!("{point}.{k}.{what}"))
    }
}
