//! Ctrl-C and SIGTERM, the one way for every command: the first asks the
//! run to stop between steps (a deploy undoes what it changed, a build is
//! stopped, `watch` finishes the change in flight); a second quits at
//! once, saying what that may leave behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// Whether the user asked to stop, as a flag (read between steps) and as
/// a signal to wait for.
#[derive(Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    stopped: watch::Receiver<bool>,
}

impl Interrupt {
    /// Listens for Ctrl-C and SIGTERM; says `first` on the first. Both
    /// signals are listened for from here on, before anything is said, so
    /// that a second one that comes while the first is being handled is
    /// not lost.
    pub fn listen(first: &'static str) -> Interrupt {
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, stopped) = watch::channel(false);
        let set = flag.clone();
        let mut signals = Signals::new();
        tokio::spawn(async move {
            signals.next().await;
            set.store(true, Ordering::SeqCst);
            eprintln!("{first}");
            let _ = tx.send(true);
            crate::fault::hold("interrupted").await;
            signals.next().await;
            // Said first: a run that ends meanwhile (its build stopped
            // below) still exits as asked to quit.
            QUITTING.store(true, Ordering::SeqCst);
            stop_groups();
            crate::fault::hold("quitting").await;
            eprintln!(
                "quitting now: a change in flight may be left half-done on some node; \
                 `hotswap-node status` shows what each node runs"
            );
            QUIT_DONE.store(true, Ordering::SeqCst);
            quit().notify_one();
        });
        Interrupt { flag, stopped }
    }

    /// The flag a deploy reads between its steps.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Returns once the user asked to stop.
    pub async fn wait(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// Set as soon as a second Ctrl-C or SIGTERM came, before anything is
/// done about it.
static QUITTING: AtomicBool = AtomicBool::new(false);

/// Set once the quitting is done: the builds' groups stopped, the user
/// told.
static QUIT_DONE: AtomicBool = AtomicBool::new(false);

/// Whether a second Ctrl-C or SIGTERM asked to quit: a run that ended
/// meanwhile exits as interrupted all the same, once [`quit_done`].
pub fn quitting() -> bool {
    QUITTING.load(Ordering::SeqCst)
}

/// Returns once the quitting a second Ctrl-C asked for is done (at once
/// if it is).
pub async fn quit_done() {
    while !QUIT_DONE.load(Ordering::SeqCst) {
        quit().notified().await;
    }
}

/// Told once a second Ctrl-C came: `main` then exits at once.
fn quit() -> &'static tokio::sync::Notify {
    static QUIT: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    QUIT.get_or_init(tokio::sync::Notify::new)
}

/// Returns once a second Ctrl-C or SIGTERM asked to quit at once, its
/// groups stopped and the user told what that may leave behind.
pub async fn quit_requested() {
    quit().notified().await;
}

/// Ctrl-C (SIGINT) and SIGTERM, listened for from their creation on.
struct Signals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Signals {
    fn new() -> Signals {
        let listen = |kind| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!("cannot listen for {kind:?}: {e}");
                None
            }
        };
        Signals {
            interrupt: listen(SignalKind::interrupt()),
            terminate: listen(SignalKind::terminate()),
        }
    }

    /// The next of either.
    async fn next(&mut self) {
        tokio::select! {
            () = recv(self.interrupt.as_mut()) => {}
            () = recv(self.terminate.as_mut()) => {}
        }
    }
}

/// The next signal of `s`; never, if it is not listened for.
async fn recv(s: Option<&mut Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The process groups of the builds under way, which a second Ctrl-C
/// stops before it quits: they run in groups of their own, which the
/// terminal's signal does not reach, and quitting drops nothing.
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A build's process group, stopped by a second Ctrl-C while this lives.
pub struct Group(u32);

impl Group {
    /// Has a second Ctrl-C stop process group `pid` (a build's), until
    /// the returned value is dropped.
    pub fn stop_on_quit(pid: u32) -> Group {
        if let Ok(mut groups) = GROUPS.lock() {
            groups.push(pid);
        }
        Group(pid)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(mut groups) = GROUPS.lock() {
            groups.retain(|g| *g != self.0);
        }
    }
}

/// Asks every registered process group to stop (SIGTERM).
fn stop_groups() {
    let groups = match GROUPS.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for group in groups {
        stop_group(group);
    }
}

/// Asks every process of group `pid` to stop (SIGTERM).
pub fn stop_group(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals that process group; it
    // touches no memory of ours.
    unsafe {
        libc::kill(-pid, libc::SIGTERM);
    }
}
