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

    /// The bytes of many secrets are spread evenly over every value, as a
    /// random source's are and a counter's or a clock's are not: a
    /// chi-squared test of 65,536 bytes over 256 values (255 degrees of
    /// freedom, mean 255, deviation 22.6), failed by a fair source about
    /// once in a trillion runs (a counter scores in the tens of thousands).
    #[test]
    fn secrets_are_evenly_spread_over_every_byte_value() {
        let mut counts = [0u32; 256];
        for _ in 0..2048 {
            let hex = super::secret_hex(32).expect("random");
            for pair in hex.as_bytes().chunks(2) {
                let text = std::str::from_utf8(pair).expect("ASCII");
                let byte = u8::from_str_radix(text, 16).expect("hex");
                counts[usize::from(byte)] += 1;
            }
        }
        let expected = 65536.0 / 256.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        assert!(
            chi2 < 450.0,
            "chi-squared {chi2:.0} over 255 degrees of freedom"
        );
    }

    /// Numbers that need not be secret still use every bit: each of the 64
    /// is set in about half of 4,096 draws (a clock's high bits never
    /// change; a counter's seldom do).
    #[test]
    fn numbers_set_every_bit_about_half_the_time() {
        let mut set = [0u32; 64];
        for _ in 0..4096 {
            let n = super::u64();
            for (bit, count) in set.iter_mut().enumerate() {
                *count += u32::from(n >> bit & 1 == 1);
            }
        }
        // 2,048 expected, deviation 32: ten deviations either way.
        for (bit, &count) in set.iter().enumerate() {
            assert!(
                (1728..=2368).contains(&count),
                "bit {bit} set {count} times of 4096"
            );
        }
    }
}
