//! Writing external term format: a payload encoded once, its big
//! binaries shared rather than copied, sent to any number of nodes.

use erl_dist::term::Term;
use std::sync::Arc;

/// The external term format's version byte.
pub(super) const VERSION: u8 = 131;

/// A term encoded once in external format (without the version byte), to
/// be sent to any number of nodes without being copied or encoded again:
/// its pieces, in order. Big binaries stay the shared buffers they came in
/// ([`EtfWriter::shared_binary`]), so megabytes of modules are never
/// copied into one more buffer.
#[derive(Debug, Clone, Default)]
pub struct Encoded(pub(crate) Arc<Vec<Arc<Vec<u8>>>>);

impl Encoded {
    pub fn len(&self) -> usize {
        self.0.iter().map(|piece| piece.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Binaries at least this big are written by reference, not copied.
pub(super) const SHARED_FROM: usize = 4096;

/// Writes external term format directly, for payloads too big to build as
/// a [`Term`] first (module binaries).
#[derive(Debug, Default)]
pub struct EtfWriter {
    buf: Vec<u8>,
    /// Pieces before `buf`, when a binary was written by reference.
    done: Vec<Arc<Vec<u8>>>,
}

impl EtfWriter {
    pub fn with_capacity(n: usize) -> Self {
        EtfWriter {
            buf: Vec::with_capacity(n),
            done: Vec::new(),
        }
    }

    pub fn list_header(&mut self, len: u32) -> &mut Self {
        self.buf.push(108);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self
    }

    pub fn map_header(&mut self, arity: u32) -> &mut Self {
        self.buf.push(116);
        self.buf.extend_from_slice(&arity.to_be_bytes());
        self
    }

    pub fn nil(&mut self) -> &mut Self {
        self.buf.push(106);
        self
    }

    pub fn tuple_header(&mut self, arity: u8) -> &mut Self {
        self.buf.extend_from_slice(&[104, arity]);
        self
    }

    pub fn binary(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.push(109);
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    /// Any small term, through the ordinary encoder.
    pub fn term(&mut self, term: &Term) -> &mut Self {
        self.buf.extend_from_slice(&encode_bare(term));
        self
    }

    /// Bytes already in external format (without the version byte).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// A binary whose bytes are shared: big ones are not copied.
    pub fn shared_binary(&mut self, bytes: &Arc<Vec<u8>>) -> &mut Self {
        if bytes.len() < SHARED_FROM {
            return self.binary(bytes);
        }
        self.buf.push(109);
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.done.push(Arc::new(std::mem::take(&mut self.buf)));
        self.done.push(bytes.clone());
        self
    }

    /// All of it in one buffer (copying any shared binary).
    pub fn into_bytes(self) -> Vec<u8> {
        let mut whole: Vec<u8> = self.done.iter().flat_map(|p| p.iter().copied()).collect();
        whole.extend_from_slice(&self.buf);
        whole
    }

    pub fn finish(mut self) -> Encoded {
        if !self.buf.is_empty() || self.done.is_empty() {
            self.done.push(Arc::new(self.buf));
        }
        Encoded(Arc::new(self.done))
    }
}

/// A term's external format without the leading version byte.
pub(crate) fn encode_bare(term: &Term) -> Vec<u8> {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for the terms this crate builds.
    let _ = term.encode(&mut buf);
    if buf.first() == Some(&VERSION) {
        buf.remove(0);
    }
    buf
}
