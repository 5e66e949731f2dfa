//! The one random source: the operating system's. Secrets (the build
//! node's cookie) fail loudly without it; the rest (a node creation, a
//! reference salt, a lock token) must only differ between runs.

/// `n` random bytes as uppercase hex, for a secret.
pub fn secret_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02X}")).collect())
}

/// A random number that need not be secret; the clock if the system has
/// no random source to give.
pub fn u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_differ_and_have_their_length() {
        let (a, b) = (
            super::secret_hex(32).expect("random"),
            super::secret_hex(32).expect("random"),
        );
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
