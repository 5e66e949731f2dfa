//! Devices behind a real link: a network namespace of the test's own per
//! device, joined to this machine by a veth pair, so that every byte to a
//! node in it crosses a real interface and real kernel TCP.
//!
//! - Loss and cuts happen in the kernel: nftables rules on the device's
//!   end drop a share of the packets, or all of them (a cable pulled
//!   beyond the first hop: nothing comes back, TCP retransmits).
//! - Delay: this machine's kernel has no `netem`, so a transparent proxy
//!   in the test process holds every byte `delay` each way. An nftables
//!   rule redirects this machine's connections to the device's address to
//!   it; it connects on (marked, so it is not redirected again) to where
//!   each was going, EPMD and distribution alike.
//!
//! Nodes started in it ([`super::NodeSpec::behind`]) have their own EPMD
//! and are reached at the device's address, by long name. Needs root,
//! iproute2 and nftables (`scripts/setup` installs it); [`Link::new`] says
//! why not where the machine does not allow it, and the tests that need it
//! skip with that message. Each link is removed, with every process left in
//! its namespace, when dropped; those of a test process that died are
//! removed by the next one.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The prefix of every namespace and nftables table this harness makes:
/// `hsnet<pid>x<n>`.
const PREFIX: &str = "hsnet";

/// The second byte of this process's link addresses, `10.<b>.<n>.1` and
/// `.2`: one of a hundred, by the pid, so that two test processes on one
/// machine (a soak beside another run) do not give two links one address.
pub fn subnet() -> u8 {
    100 + (std::process::id() % 100) as u8
}

/// The mark on the proxy's own connections, which the redirect skips.
const MARK: u32 = 0x4853;

static NEXT: AtomicU32 = AtomicU32::new(1);

/// What the link does to every packet, each way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Delay each way: the round trip is twice this.
    pub delay: Duration,
    /// Percent of packets lost, each way.
    pub loss: f32,
    /// A rate cap each way, in Mbit/s (a token bucket, `tc tbf`).
    pub rate_mbit: Option<u32>,
}

impl Shape {
    pub fn delay_ms(each_way: u64) -> Shape {
        Shape {
            delay: Duration::from_millis(each_way),
            loss: 0.0,
            rate_mbit: None,
        }
    }

    #[allow(dead_code)]
    pub fn rate_mbit(mut self, mbit: u32) -> Shape {
        self.rate_mbit = Some(mbit);
        self
    }

    pub fn loss(mut self, percent: f32) -> Shape {
        self.loss = percent;
        self
    }
}

/// One device's link: a namespace at `device_ip`, this machine at
/// `host_ip` on the other end.
pub struct Link {
    /// The link's name: its first namespace's, and its nftables tables'.
    name: String,
    /// The device's namespace now (a new one after each power cycle).
    ns: std::cell::RefCell<String>,
    /// How many times the device's power was cycled.
    boots: std::cell::Cell<u32>,
    host_if: String,
    device_if: String,
    pub host_ip: String,
    pub device_ip: String,
    shape: Shape,
    /// Whether the link is cut now.
    cut: std::cell::Cell<bool>,
    _proxy: Option<tokio::runtime::Runtime>,
}

impl Link {
    /// A new namespace and link shaped by `shape`, or why this machine
    /// cannot make one.
    pub fn new(shape: Shape) -> Result<Link, String> {
        static CLEAN: Once = Once::new();
        CLEAN.call_once(remove_orphans);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        if n > 250 {
            return Err("more than 250 links in one test process".into());
        }
        let pid = std::process::id();
        let mut link = Link {
            name: format!("{PREFIX}{pid}x{n}"),
            ns: std::cell::RefCell::new(format!("{PREFIX}{pid}x{n}")),
            boots: std::cell::Cell::new(0),
            host_if: format!("hsh{pid}x{n}"),
            device_if: format!("hsd{pid}x{n}"),
            host_ip: format!("10.{}.{n}.1", subnet()),
            device_ip: format!("10.{}.{n}.2", subnet()),
            shape,
            cut: std::cell::Cell::new(false),
            _proxy: None,
        };
        if link.host_if.len() > 15 {
            return Err(format!("interface name {} is too long", link.host_if));
        }
        // Dropped on failure: what was made is removed.
        link.create()?;
        if !shape.delay.is_zero() {
            let (runtime, port) = delay_proxy(shape.delay)?;
            link._proxy = Some(runtime);
            link.redirect_to(port)?;
        }
        Ok(link)
    }

    /// Bytes this machine has sent to the device's end so far (IP packets
    /// and their Ethernet headers, as the kernel counts them).
    #[allow(dead_code)]
    pub fn sent_bytes(&self) -> u64 {
        self.statistic("tx_bytes")
    }

    /// One of the kernel's counters of the host's end of the link.
    #[allow(dead_code)]
    fn statistic(&self, name: &str) -> u64 {
        let path = format!("/sys/class/net/{}/statistics/{name}", self.host_if);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim()
            .parse()
            .expect("a byte count")
    }

    /// Packets this machine has sent to the device's end so far.
    #[allow(dead_code)]
    pub fn sent_packets(&self) -> u64 {
        self.statistic("tx_packets")
    }

    /// The namespace the device runs in now.
    pub fn ns(&self) -> String {
        self.ns.borrow().clone()
    }

    fn create(&self) -> Result<(), String> {
        let (ns, h, d) = (self.ns(), self.host_if.as_str(), self.device_if.as_str());
        let host_addr = format!("{}/24", self.host_ip);
        run("ip", &["netns", "add", &ns])?;
        run("ip", &["link", "add", h, "type", "veth", "peer", "name", d])?;
        run("ip", &["link", "set", d, "netns", &ns])?;
        run("ip", &["addr", "add", &host_addr, "dev", h])?;
        run("ip", &["link", "set", h, "up"])?;
        if let Some(mbit) = self.shape.rate_mbit {
            let args = token_bucket(h, mbit);
            run("tc", &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        self.bring_up_device()
    }

    /// The device's end, moved into its namespace: its address, up, and
    /// the link's rules.
    fn bring_up_device(&self) -> Result<(), String> {
        let (ns, d) = (self.ns(), self.device_if.as_str());
        let device_addr = format!("{}/24", self.device_ip);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.as_str()];
            all.extend(args);
            run("ip", &all)
        };
        inside(&["ip", "link", "set", "lo", "up"])?;
        inside(&["ip", "addr", "add", &device_addr, "dev", d])?;
        inside(&["ip", "link", "set", d, "up"])?;
        if let Some(mbit) = self.shape.rate_mbit {
            let args = token_bucket(d, mbit);
            let mut tc = vec!["tc"];
            tc.extend(args.iter().map(String::as_str));
            inside(&tc)?;
        }
        match self.cut.get() {
            true => self.device_rules("  drop\n"),
            false => self.device_rules(&self.loss_rules()),
        }
    }

    /// This machine's connections to the device go through the proxy on
    /// `port`.
    fn redirect_to(&self, port: u16) -> Result<(), String> {
        let rules = format!(
            "table ip {table} {{\n chain out {{\n  type nat hook output priority -100;\n  \
             ip daddr {ip} meta mark != {MARK} meta l4proto tcp redirect to :{port}\n }}\n}}\n",
            table = self.name,
            ip = self.device_ip,
        );
        nft(None, &rules)
    }

    /// Changes the loss from now on (the delay stays).
    pub fn set_loss(&mut self, percent: f32) {
        self.shape.loss = percent;
        self.device_rules(&self.loss_rules())
            .expect("nftables on the device's end");
    }

    /// Cuts the link both ways, silently: every packet is dropped, no
    /// error comes back.
    pub fn cut(&self) {
        self.cut.set(true);
        self.device_rules("  drop\n")
            .expect("nftables on the device's end");
        self.host_rules("  drop\n")
            .expect("nftables on this machine's end");
    }

    /// Waits until nothing this machine sent to the device is waiting for
    /// its acknowledgement: a link cut then is cut while idle (no
    /// retransmission would reveal it at once when it heals).
    pub fn wait_idle(&self) {
        let started = std::time::Instant::now();
        loop {
            let out = Command::new("ss")
                .args(["-tin", "dst", &self.device_ip])
                .output()
                .expect("ss runs");
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains("unacked:") {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the link to {} never went idle:\n{text}",
                self.device_ip
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Cuts the way back only: what this machine sends still reaches the
    /// device, nothing the device sends comes back.
    pub fn cut_way_back(&self) {
        let d = &self.device_if;
        let text = format!(
            "table inet link\ndelete table inet link\n\
             table inet link {{\n chain out {{\n  \
             type filter hook output priority 0;\n  oifname != \"{d}\" accept\n  drop\n }}\n}}\n"
        );
        nft(Some(&self.ns()), &text).expect("nftables on the device's end");
    }

    /// Heals a cut link.
    pub fn heal(&self) {
        self.cut.set(false);
        self.device_rules(&self.loss_rules())
            .expect("nftables on the device's end");
        self.host_rules("").expect("nftables on this machine's end");
    }

    /// The device loses power: every process in it goes, and so does its
    /// kernel's state (no connection of its survives to be reset or closed
    /// later, as after a real reboot). It comes back at the same address,
    /// its link as it was (cut or not), with nothing running.
    pub fn power_cycle(&self) {
        // The device's end moves to a fresh namespace before the old one
        // goes: nothing the old kernel says as it goes gets out.
        let old = self.ns();
        self.boots.set(self.boots.get() + 1);
        let new = format!("{}g{}", self.name, self.boots.get());
        run("ip", &["netns", "add", &new]).expect("a new namespace");
        run(
            "ip",
            &["-n", &old, "link", "set", &self.device_if, "netns", &new],
        )
        .expect("the device's end moved");
        kill_all_in(&old);
        let _ = run("ip", &["netns", "del", &old]);
        *self.ns.borrow_mut() = new;
        self.bring_up_device().expect("the device's end up again");
    }

    fn loss_rules(&self) -> String {
        let per_mille = (self.shape.loss * 10.0).round() as u32;
        match per_mille {
            0 => String::new(),
            n => format!("  numgen random mod 1000 < {n} drop\n"),
        }
    }

    /// Replaces the rules every packet of this machine's end meets, both
    /// ways: while the link is cut, what the device's kernel says as it
    /// goes (a reset) must not come through either.
    fn host_rules(&self, rules: &str) -> Result<(), String> {
        let (h, table) = (&self.host_if, &self.name);
        let text = format!(
            "table inet {table}\ndelete table inet {table}\n\
             table inet {table} {{\n chain in {{\n  type filter hook input priority 0;\n  \
             iifname != \"{h}\" accept\n{rules} }}\n chain out {{\n  \
             type filter hook output priority 0;\n  oifname != \"{h}\" accept\n{rules} }}\n}}\n"
        );
        nft(None, &text)
    }

    /// Replaces the rules every packet of the device's end meets, both
    /// ways.
    fn device_rules(&self, rules: &str) -> Result<(), String> {
        let d = &self.device_if;
        let text = format!(
            "table inet link\ndelete table inet link\n\
             table inet link {{\n chain in {{\n  type filter hook input priority 0;\n  \
             iifname != \"{d}\" accept\n{rules} }}\n chain out {{\n  \
             type filter hook output priority 0;\n  oifname != \"{d}\" accept\n{rules} }}\n}}\n"
        );
        nft(Some(&self.ns()), &text)
    }
}

/// `tc`'s arguments that cap what leaves `interface` at `mbit` Mbit/s.
fn token_bucket(interface: &str, mbit: u32) -> Vec<String> {
    let rate = format!("{mbit}mbit");
    [
        "qdisc", "add", "dev", interface, "root", "tbf", "rate", &rate,
    ]
    .iter()
    .chain(&["burst", "64kb", "limit", "4mb"])
    .map(|s| s.to_string())
    .collect()
}

/// `command` (its program and arguments) run inside namespace `ns`.
pub fn in_namespace(ns: &str, command: &Command) -> Command {
    let mut wrapped = Command::new("ip");
    wrapped
        .args(["netns", "exec", ns])
        .arg(command.get_program())
        .args(command.get_args());
    wrapped
}

impl Drop for Link {
    fn drop(&mut self) {
        remove(&self.ns(), &self.name, &self.host_if);
    }
}

/// Kills every process in namespace `ns` (nodes, their EPMD).
fn kill_all_in(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// Removes namespace `ns` with every process in it, the link's host end
/// and the link's nftables tables (`name`).
fn remove(ns: &str, name: &str, host_if: &str) {
    kill_all_in(ns);
    let _ = run("ip", &["netns", "del", ns]);
    let _ = run("ip", &["link", "del", host_if]);
    let _ = run("nft", &["delete", "table", "ip", name]);
    let _ = run("nft", &["delete", "table", "inet", name]);
}

/// Removes the namespaces (and links, and redirects) of test processes
/// that died without dropping them.
fn remove_orphans() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let Some((pid, rest)) = ns.strip_prefix(PREFIX).and_then(|r| r.split_once('x')) else {
            continue;
        };
        let n = rest.split('g').next().unwrap_or(rest);
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove(ns, &format!("{PREFIX}{pid}x{n}"), &format!("hsh{pid}x{n}"));
        }
    }
}

/// Loads an nftables ruleset, in namespace `ns` or this machine's.
fn nft(ns: Option<&str>, rules: &str) -> Result<(), String> {
    use std::io::Write;
    let mut command = Command::new("nft");
    command.args(["-f", "-"]);
    if let Some(ns) = ns {
        command = in_namespace(ns, &command);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `nft` (scripts/setup installs nftables): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`nft` refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The transparent delaying proxy: a runtime of its own and the port it
/// listens on.
fn delay_proxy(delay: Duration) -> Result<(tokio::runtime::Runtime, u16), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("proxy runtime: {e}"))?;
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| format!("proxy bind: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("proxy address: {e}"))?
        .port();
    runtime.spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let connected = tokio::time::Instant::now();
                let Some(to) = original_destination(&client) else {
                    return;
                };
                // The connection opens over the link: its SYN travels.
                tokio::time::sleep(delay).await;
                if let Ok(server) = connect_marked(to).await {
                    let _ = super::slowlink::relay(client, server, delay, connected, None).await;
                }
            });
        }
    });
    Ok((runtime, port))
}

/// Where a redirected connection was going (`SO_ORIGINAL_DST`).
fn original_destination(stream: &TcpStream) -> Option<std::net::SocketAddr> {
    const SO_ORIGINAL_DST: libc::c_int = 80;
    // SAFETY: getsockopt writes at most `len` bytes into `addr`, a
    // sockaddr_in owned here; the fd is the stream's, open for the call.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let got = libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            SO_ORIGINAL_DST,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        if got != 0 {
            return None;
        }
        let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
        Some((ip, u16::from_be(addr.sin_port)).into())
    }
}

/// Connects to `to` with [`MARK`] on the socket, so the redirect lets it by.
async fn connect_marked(to: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let mark = MARK;
    // SAFETY: setsockopt reads `size_of::<u32>()` bytes from `mark`.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mark as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.connect(to).await
}
