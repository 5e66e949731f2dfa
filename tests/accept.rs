//! Out of file descriptors, the tool's listener waits between failed
//! accepts instead of spinning a core. (Its own test binary: the limit on
//! open files is this process's.)

mod common;

use common::{unique, ErlNode, NodeSpec};
use hotswap_node::peer::{epmd, Cookie, Peer, PeerOptions};
use std::time::Duration;

/// CPU time this process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The limit on open files: what it is now (soft), then sets it.
fn set_open_files(limit: u64) -> u64 {
    // SAFETY: getrlimit and setrlimit read and fill the struct given.
    unsafe {
        let mut rlimit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit);
        let was = rlimit.rlim_cur;
        rlimit.rlim_cur = limit.min(rlimit.rlim_max);
        let set = libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit);
        assert_eq!(set, 0, "setrlimit: {}", std::io::Error::last_os_error());
        was
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_listener_waits_instead_of_spinning() {
    let mut node = ErlNode::start(NodeSpec::new("fds"));
    let name = unique("hsfds");
    let mut options = PeerOptions::new(Cookie::new(node.cookie.clone())).name(name.clone());
    options.connect_timeout = Duration::from_secs(30);
    let _peer = Peer::start(options, &[node.node_name()])
        .await
        .expect("peer");
    let port = epmd::lookup("127.0.0.1", &name).await.expect("registered");

    // A few descriptors to spare, then more connections than that wait to
    // be accepted (the node opens them: its descriptors are its own).
    let open = std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64;
    let was = set_open_files(open + 3);
    let opened = node.eval(&format!(
        "length([S || {{ok, S}} <- [gen_tcp:connect(\"127.0.0.1\", {port}, []) \
         || _ <- lists:seq(1, 20)]])."
    ));
    assert_eq!(opened, "20");
    // Every connection the listener could take is taken; the rest wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cpu_time();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_time() - before;
    set_open_files(was);
    // A listener that retries at once uses the whole second of a core.
    assert!(used < Duration::from_millis(300), "{used:?} of CPU in 1 s");
}
