//! Named points of the protocol where a test can hold the tool, so that a
//! fault (a node killed, a lock lost, Ctrl-C, a link cut) lands exactly
//! there instead of wherever a race puts it.
//!
//! Compiled only with the `fault-points` feature, which the test build
//! turns on (a dev-dependency of the crate on itself); in every other build
//! [`hold`] does nothing and costs nothing.
//!
//! With `HOTSWAP_FAULT_DIR=DIR` and `HOTSWAP_FAULT_HOLD=NAME[,NAME…]` set,
//! the tool, on reaching point `NAME` for the `K`th time (from 1), creates
//! `DIR/NAME.K.reached` and waits until `DIR/NAME.K.go` exists; then it
//! goes on. A session such as `watch` passes its points at every change;
//! to hold one pass only, a test arms the point: the tool holds at it the
//! next time if `DIR/NAME.armed` exists, and removes that file.

/// Every point, in the order a run meets them. A name not listed here is a
/// test's mistake, refused at once.
pub const POINTS: &[&str] = &[
    // The local EPMD refused our name, still registered to a node that no
    // longer listens (a run of that name just gone), before asking again.
    "name_held_by_the_gone",
    // A node answered `nok` to our handshake (it still sets up an earlier
    // one from our name), before the tool waits and tries again.
    "connect_pending",
    // A flight (to one node or several): every node has been sent its
    // request and the snapshot is written (or failed); before the word.
    "flight_sent",
    // A flight to several nodes: every node has said it prepared (or
    // answered), before the word go or abort goes out.
    "flight_prepared",
    // The apply step: every node has been sent its changes and the
    // snapshot is written (or failed), before the word go or abort (to
    // several nodes: before they are waited for to prepare).
    "apply_before_word",
    // The apply step to several nodes: every node has said it prepared
    // (or answered), before the word go or abort goes out.
    "apply_prepared",
    // Every node has answered its apply step (or flight), before the
    // read-back of --verify.
    "applied",
    // A run that failed after changing nodes, before it undoes them.
    "undo",
    // A rollback has brought every node to its priors, before the store
    // records it.
    "rollback_ran",
    // The first Ctrl-C (or SIGTERM) was taken in and said, before the
    // wait for a second.
    "interrupted",
    // A second Ctrl-C (or SIGTERM) was taken in and the builds' groups
    // were told to stop, before the user is told and the process quits.
    "quitting",
    // The command's run has returned, before the process exits.
    "run_ended",
    // `watch`'s build node was seen alive for a change, before the
    // compile is sent to it.
    "build_node_compile",
];

#[cfg(feature = "fault-points")]
pub async fn hold(name: &'static str) {
    imp::hold(name).await
}

#[cfg(not(feature = "fault-points"))]
#[inline(always)]
pub async fn hold(_name: &'static str) {}

#[cfg(feature = "fault-points")]
mod imp {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// How many times each point was held.
    static HELD: Mutex<Option<HashMap<&'static str, u32>>> = Mutex::new(None);

    /// How long a held point waits for its release before it fails the
    /// run: a test that forgot to release must not hang CI.
    const LIMIT: Duration = Duration::from_secs(120);

    pub async fn hold(name: &'static str) {
        assert!(super::POINTS.contains(&name), "unknown fault point {name}");
        let Some(dir) = std::env::var_os("HOTSWAP_FAULT_DIR").map(PathBuf::from) else {
            return;
        };
        let wanted = std::env::var("HOTSWAP_FAULT_HOLD").unwrap_or_default();
        let listed = wanted.split(',').any(|w| w == name);
        let armed = std::fs::remove_file(dir.join(format!("{name}.armed"))).is_ok();
        if !listed && !armed {
            return;
        }
        let k = count(name);
        let reached = dir.join(format!("{name}.{k}.reached"));
        let go = dir.join(format!("{name}.{k}.go"));
        if let Err(e) = std::fs::write(&reached, b"") {
            panic!(
                "fault point {name}: cannot write {}: {e}",
                reached.display()
            );
        }
        let started = Instant::now();
        while !go.exists() {
            assert!(
                started.elapsed() < LIMIT,
                "fault point {name} ({k}) was never released"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// This holding's number at `name`, from 1.
    fn count(name: &'static str) -> u32 {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        let n = held
            .get_or_insert_with(HashMap::new)
            .entry(name)
            .or_insert(0);
        *n += 1;
        *n
    }
}
