//! How long a node has to answer each request: `--timeout`, else
//! `timeout` in the file, else 30 seconds.

use super::keys::FileConfig;
use std::time::Duration;

/// The seconds `timeout` may take: below a hundredth no node answers; a
/// day is far past any link, and the lock's lease (six timeouts) and every
/// deadline computed from it stay well within what a clock can add.
pub const TIMEOUT_RANGE: (f64, f64) = (0.01, 86_400.0);

/// The timeout the flag or the file sets, checked against [`TIMEOUT_RANGE`]:
/// one out of it is the error.
pub(super) fn timeout(flag: Option<f64>, file: &FileConfig) -> Result<Duration, f64> {
    match flag.or(file.timeout) {
        Some(t) if (TIMEOUT_RANGE.0..=TIMEOUT_RANGE.1).contains(&t) => {
            Ok(Duration::from_secs_f64(t))
        }
        Some(t) => Err(t),
        None => Ok(Duration::from_secs(30)),
    }
}
