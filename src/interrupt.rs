//! Ctrl-C and SIGTERM, the one way for every command: the first asks the
//! run to stop between steps (a deploy undoes what it changed, a build is
//! stopped, `watch` finishes the change in flight); a second quits at
//! once, saying what that may leave behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Whether the user asked to stop, as a flag (read between steps) and as
/// a signal to wait for.
#[derive(Clone)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    stopped: watch::Receiver<bool>,
}

impl Interrupt {
    /// Listens for Ctrl-C and SIGTERM; says `first` on the first.
    pub fn listen(first: &'static str) -> Interrupt {
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, stopped) = watch::channel(false);
        let set = flag.clone();
        tokio::spawn(async move {
            signal().await;
            set.store(true, Ordering::SeqCst);
            eprintln!("{first}");
            let _ = tx.send(true);
            signal().await;
            eprintln!(
                "quitting now: a change in flight may be left half-done on some node; \
                 `hotswap-node status` shows what each node runs"
            );
            std::process::exit(130);
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

/// The next Ctrl-C or SIGTERM.
async fn signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
