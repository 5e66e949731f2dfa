//! A host's addresses, looked up once for every connection a run makes to
//! it: its EPMD, then its node, and each of its nodes. A lookup is not
//! free: "vm" from `/etc/hosts` took 4.7 ms here (the resolver still asks
//! DNS for an IPv6 address), and a device's `nerves.local` goes through
//! mDNS. An answer is kept a few seconds only, so that a long-lived session
//! (`watch`) that reconnects later looks again, and a failure not at all.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

/// How long an answer is used.
const KEPT: Duration = Duration::from_secs(5);

type Looked = Arc<OnceCell<Vec<IpAddr>>>;

static ANSWERS: Mutex<Option<HashMap<String, (Instant, Looked)>>> = Mutex::new(None);

/// `host`'s addresses, in the resolver's order.
pub async fn addresses(host: &str) -> std::io::Result<Vec<IpAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let entry = {
        let mut answers = ANSWERS.lock().unwrap_or_else(|p| p.into_inner());
        let answers = answers.get_or_insert_with(HashMap::new);
        answers.retain(|_, (at, _)| at.elapsed() < KEPT);
        answers
            .entry(host.to_owned())
            .or_insert_with(|| (Instant::now(), Arc::default()))
            .1
            .clone()
    };
    let found = entry
        .get_or_try_init(|| async {
            let found: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
                .await?
                .map(|a| a.ip())
                .collect();
            Ok::<_, std::io::Error>(found)
        })
        .await;
    match found {
        Ok(found) if !found.is_empty() => Ok(found.clone()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("`{host}` has no address"),
        )),
        Err(e) => {
            forget(host);
            Err(e)
        }
    }
}

fn forget(host: &str) {
    let mut answers = ANSWERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(answers) = answers.as_mut() {
        answers.remove(host);
    }
}

/// A TCP connection to `port` of `host`, trying its addresses in order.
pub async fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = addresses(host)
        .await?
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    TcpStream::connect(&addrs[..]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_is_its_own_answer_and_a_name_is_looked_up_once() {
        assert_eq!(
            addresses("127.0.0.1").await.expect("an address"),
            vec![IpAddr::from([127, 0, 0, 1])]
        );
        let first = addresses("localhost").await.expect("localhost");
        assert!(!first.is_empty());
        let kept = ANSWERS
            .lock()
            .expect("lock")
            .as_ref()
            .and_then(|a| a.get("localhost").map(|(_, l)| l.initialized()));
        assert_eq!(kept, Some(true));
        assert_eq!(addresses("localhost").await.expect("localhost"), first);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_not_kept() {
        assert!(addresses("no-such-host.invalid").await.is_err());
        let kept = ANSWERS
            .lock()
            .expect("lock")
            .as_ref()
            .is_some_and(|a| a.contains_key("no-such-host.invalid"));
        assert!(!kept);
    }
}
