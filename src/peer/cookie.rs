//! The shared secret every node of a cluster holds.

use std::fmt;

/// The shared secret, and where it was found (for a node that refuses
/// it). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(String, String);

impl Cookie {
    pub fn new(secret: impl Into<String>) -> Self {
        Cookie(secret.into(), String::new())
    }

    /// This cookie, found in `origin` (a flag, a variable, a file).
    pub fn from(self, origin: impl Into<String>) -> Self {
        Cookie(self.0, origin.into())
    }

    /// The secret itself, for the handshake digest and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Where it was found; empty if nobody said.
    pub fn origin(&self) -> &str {
        &self.1
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(<hidden>)")
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}
