//! The test's side of the tool's fault points (`src/fault.rs`): the tool,
//! run with [`FaultPoints::env`], stops at a named point and says so; the
//! test puts its fault there, then lets the tool go on. Nothing is left to
//! a race or a sleep.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long a test waits for the tool to reach a point before it fails.
const REACH_LIMIT: Duration = Duration::from_secs(60);

pub struct FaultPoints {
    dir: tempfile::TempDir,
}

impl FaultPoints {
    pub fn new() -> Self {
        FaultPoints {
            dir: tempfile::tempdir().expect("tmp"),
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

    /// Waits until the tool holds at `point`; fails the test after a
    /// minute, or at once if `running` says the tool has exited.
    pub fn reached(&self, point: &str, running: &mut dyn FnMut() -> bool) {
        let marker = self.path(point, "reached");
        let started = Instant::now();
        while !marker.exists() {
            assert!(running(), "the tool exited before fault point `{point}`");
            assert!(
                started.elapsed() < REACH_LIMIT,
                "the tool never reached fault point `{point}`"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Lets the tool go on from `point`.
    pub fn release(&self, point: &str) {
        std::fs::write(self.path(point, "go"), b"").expect("release the fault point");
    }

    fn path(&self, point: &str, what: &str) -> std::path::PathBuf {
        Path::new(self.dir.path()).join(format!("{point}.{what}"))
    }
}
