//! Where a run's wall time goes (`--timings`), as `cargo build --timings`
//! says where a build's went. Every stage of a run is always measured (two
//! clock reads and a push under a lock each, a few microseconds in a run of
//! milliseconds); `--timings` only prints them ([`table`]).
//!
//! A stage is a span of wall time, of the whole run or of one node. The
//! spans of stages that run alongside each other overlap (the beams are
//! read while the nodes are reached; the snapshot is written while they
//! prepare), so shares can add up to more than the whole. Each request a
//! node is sent and answers is a round trip, counted against that node;
//! connecting counts its own (EPMD two, TCP one, TLS one or two, the
//! distribution handshake two).

pub mod table;

use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// One stage's span of wall time.
#[derive(Debug, Clone)]
pub struct Span {
    pub stage: &'static str,
    /// The node it was of; `None` for the whole run's.
    pub node: Option<String>,
    pub from: Instant,
    pub to: Instant,
    /// Round trips it took that no request counts (connecting).
    pub trips: u32,
}

/// What was recorded since the last [`take`].
#[derive(Debug, Default)]
struct Record {
    spans: Vec<Span>,
    /// Each request sent to a node that waits for its answer.
    trips: Vec<(String, Instant)>,
}

static ORIGIN: OnceLock<Instant> = OnceLock::new();
static RECORD: Mutex<Record> = Mutex::new(Record {
    spans: Vec::new(),
    trips: Vec::new(),
});

fn record() -> std::sync::MutexGuard<'static, Record> {
    RECORD.lock().unwrap_or_else(|p| p.into_inner())
}

/// The instant the process started: the first call's (`main` calls it
/// first thing). What ran before `main` (loading the binary) is not seen.
pub fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// Records `stage` (of `node`, if one) from `from` until now.
pub fn since(stage: &'static str, node: Option<&str>, from: Instant) {
    span(stage, node, from, 0);
}

/// Records `stage` from `from` until now, which took `trips` round trips
/// of its own.
pub fn span(stage: &'static str, node: Option<&str>, from: Instant, trips: u32) {
    let span = Span {
        stage,
        node: node.map(str::to_owned),
        from,
        to: Instant::now(),
        trips,
    };
    record().spans.push(span);
}

/// Records `stage` (of `node`, if one) from `from` to `to`.
pub fn between(stage: &'static str, node: Option<&str>, from: Instant, to: Instant) {
    let span = Span {
        stage,
        node: node.map(str::to_owned),
        from,
        to,
        trips: 0,
    };
    record().spans.push(span);
}

/// Records a request to `node` that waits for its answer: one round trip.
pub fn trip(node: &str) {
    record().trips.push((node.to_owned(), Instant::now()));
}

/// A stage under way, recorded when dropped (on an early return too).
pub struct Timed {
    stage: Option<&'static str>,
    from: Instant,
}

impl Timed {
    /// `stage`, from now.
    pub fn start(stage: &'static str) -> Timed {
        Timed {
            stage: Some(stage),
            from: Instant::now(),
        }
    }

    /// What the stage turned out to be.
    pub fn name(&mut self, stage: &'static str) {
        self.stage = Some(stage);
    }

    /// Nothing happened worth a row.
    pub fn forget(mut self) {
        self.stage = None;
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        if let Some(stage) = self.stage {
            since(stage, None, self.from);
        }
    }
}

/// Runs `work`, recorded as `stage`.
pub async fn measure<T>(
    stage: &'static str,
    node: Option<&str>,
    work: impl Future<Output = T>,
) -> T {
    let from = Instant::now();
    let value = work.await;
    since(stage, node, from);
    value
}

/// What was recorded since the last take, from `origin` until now; the
/// record starts again empty (a watch takes each change's).
pub fn take(origin: Instant) -> table::Timings {
    let taken = std::mem::take(&mut *record());
    table::Timings::new(origin, Instant::now(), taken.spans, taken.trips)
}

/// Forgets what was recorded (a watch, before a change's run).
pub fn clear() {
    *record() = Record::default();
}
