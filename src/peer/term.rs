//! Erlang terms as this crate meets them: a guard that checks bytes from a
//! peer before they reach the decoder, and small typed accessors that turn a
//! [`Term`] into what a caller needs with an error that shows what came instead.
//!
//! Why a guard: `eetf` (under `erl_dist`) panics on some tags
//! (`ATOM_CACHE_REF`, a distribution header), pre-allocates vectors from
//! untrusted 32-bit counts, shifts by an unchecked bit count and recurses
//! without a bound. [`check_external_terms`] walks the bytes iteratively with
//! no allocation beyond a small stack and accepts only what the decoder can
//! take without panicking, aborting or blowing the stack.

pub use erl_dist::term::{Atom, BigInteger, Binary, FixInteger, List, Pid, Reference, Term, Tuple};
use std::sync::Arc;

/// How deep terms may nest; real RPC replies (stack traces included) stay far below.
pub const MAX_DEPTH: usize = 256;

const VERSION: u8 = 131;

/// The most elements (of lists, tuples and maps, counted through every
/// level) the terms of one frame may hold. Decoded, each takes some tens of
/// bytes whatever its size on the wire (a small integer is two bytes
/// there), so a frame's bytes alone do not bound its memory. The largest
/// honest answer, an inspect naming every process of a node of 100,000
/// that keeps old code, holds under a million.
pub const MAX_ELEMENTS: u64 = 1 << 21;

/// Why bytes were not accepted as external term format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TermError {
    #[error("term data ends early at byte {at}")]
    Truncated { at: usize },
    #[error("expected term version byte 131 at byte {at}, got {got}")]
    BadVersion { at: usize, got: u8 },
    #[error("unsupported term tag {tag} at byte {at}")]
    UnsupportedTag { at: usize, tag: u8 },
    #[error("terms nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{count} terms found where at most {max} were expected")]
    TooMany { count: usize, max: usize },
    #[error("bad bit count {bits} in a bitstring at byte {at}")]
    BadBits { at: usize, bits: u8 },
    #[error("terms hold more than {MAX_ELEMENTS} elements")]
    TooManyElements,
}

/// Checks that `buf` is a sequence of between 1 and `max` terms, each in
/// external format with its own version byte, that the decoder can read safely.
pub fn check_external_terms(buf: &[u8], max: usize) -> Result<(), TermError> {
    let mut pos = 0;
    let mut count = 0;
    let mut elements = 0;
    while pos < buf.len() || count == 0 {
        if count == max {
            return Err(TermError::TooMany {
                count: count + 1,
                max,
            });
        }
        let version = byte(buf, pos)?;
        if version != VERSION {
            return Err(TermError::BadVersion {
                at: pos,
                got: version,
            });
        }
        pos = check_term(buf, pos + 1, &mut elements)?;
        count += 1;
    }
    Ok(())
}

/// Walks one term starting at `pos`, adding its elements to `elements`;
/// returns the position after it.
fn check_term(buf: &[u8], mut pos: usize, elements: &mut u64) -> Result<usize, TermError> {
    // Each entry counts the terms still to read at one level of nesting.
    let mut pending: Vec<u64> = vec![1];
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            continue;
        }
        *top -= 1;
        let at = pos;
        let tag = byte(buf, pos)?;
        pos += 1;
        let children: u64 = match tag {
            70 => fixed(&mut pos, buf, 8)?,
            97 => fixed(&mut pos, buf, 1)?,
            98 => fixed(&mut pos, buf, 4)?,
            99 => fixed(&mut pos, buf, 31)?,
            100 | 115 | 118 | 119 => {
                pos = atom_body(buf, tag, pos)?;
                0
            }
            // PID_EXT, NEW_PID_EXT: node atom then fixed fields.
            103 | 88 => {
                pos = pid_body(buf, tag, pos)?;
                0
            }
            // REFERENCE_EXT, PORT_EXT, NEW_PORT_EXT, V4_PORT_EXT
            101 | 102 => {
                pos = atom(buf, pos)?;
                fixed(&mut pos, buf, 5)?
            }
            89 => {
                pos = atom(buf, pos)?;
                fixed(&mut pos, buf, 8)?
            }
            120 => {
                pos = atom(buf, pos)?;
                fixed(&mut pos, buf, 12)?
            }
            // NEW_REFERENCE_EXT, NEWER_REFERENCE_EXT
            114 | 90 => {
                let words = usize::from(u16_at(buf, pos)?);
                let after_node = atom(buf, pos + 2)?;
                let creation = if tag == 114 { 1 } else { 4 };
                pos = skip(buf, after_node, creation + 4 * words)?;
                0
            }
            104 => {
                let n = byte(buf, pos)?;
                pos += 1;
                u64::from(n)
            }
            105 => {
                let n = u32_at(buf, pos)?;
                pos += 4;
                u64::from(n)
            }
            106 => 0,
            107 => {
                let n = usize::from(u16_at(buf, pos)?);
                pos = skip(buf, pos + 2, n)?;
                0
            }
            // LIST_EXT: elements plus the tail.
            108 => {
                let n = u32_at(buf, pos)?;
                pos += 4;
                u64::from(n) + 1
            }
            109 => {
                let n = u32_at(buf, pos)? as usize;
                pos = skip(buf, pos + 4, n)?;
                0
            }
            77 => {
                let n = u32_at(buf, pos)? as usize;
                let bits = byte(buf, pos + 4)?;
                if !(1..=8).contains(&bits) {
                    return Err(TermError::BadBits { at, bits });
                }
                pos = skip(buf, pos + 5, n)?;
                0
            }
            110 => {
                let n = usize::from(byte(buf, pos)?);
                pos = skip(buf, pos + 2, n)?;
                0
            }
            111 => {
                let n = u32_at(buf, pos)? as usize;
                pos = skip(buf, pos + 5, n)?;
                0
            }
            116 => {
                let n = u32_at(buf, pos)?;
                pos += 4;
                2 * u64::from(n)
            }
            // EXPORT_EXT: module, function, arity.
            113 => {
                pos = atom(buf, pos)?;
                pos = atom(buf, pos)?;
                pos = small_int(buf, pos)?;
                0
            }
            // NEW_FUN_EXT: size, arity, uniq, index, numfree, module,
            // old index, old uniq, pid, then the free variables.
            112 => {
                let num_free = u32_at(buf, pos + 4 + 1 + 16 + 4)?;
                pos = skip(buf, pos, 4 + 1 + 16 + 4 + 4)?;
                pos = atom(buf, pos)?;
                pos = int_field(buf, pos)?;
                pos = int_field(buf, pos)?;
                pos = pid(buf, pos)?;
                u64::from(num_free)
            }
            // FUN_EXT (pre-R13): numfree, pid, module, index, uniq, free variables.
            117 => {
                let num_free = u32_at(buf, pos)?;
                pos = pid(buf, pos + 4)?;
                pos = atom(buf, pos)?;
                pos = int_field(buf, pos)?;
                pos = int_field(buf, pos)?;
                u64::from(num_free)
            }
            tag => return Err(TermError::UnsupportedTag { at, tag }),
        };
        if children > 0 {
            *elements += children;
            if *elements > MAX_ELEMENTS {
                return Err(TermError::TooManyElements);
            }
            // Every term takes at least one byte: a count beyond what is left
            // is a lie, and would make the decoder reserve memory for it.
            if children > (buf.len().saturating_sub(pos)) as u64 {
                return Err(TermError::Truncated { at: buf.len() });
            }
            if pending.len() >= MAX_DEPTH {
                return Err(TermError::TooDeep);
            }
            pending.push(children);
        }
    }
    Ok(pos)
}

/// Steps over `n` bytes of a fixed-size term; such a term has no children.
fn fixed(pos: &mut usize, buf: &[u8], n: usize) -> Result<u64, TermError> {
    *pos = skip(buf, *pos, n)?;
    Ok(0)
}

fn byte(buf: &[u8], at: usize) -> Result<u8, TermError> {
    buf.get(at).copied().ok_or(TermError::Truncated { at })
}

fn u16_at(buf: &[u8], at: usize) -> Result<u16, TermError> {
    Ok(u16::from_be_bytes([byte(buf, at)?, byte(buf, at + 1)?]))
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, TermError> {
    let b = buf
        .get(at..at + 4)
        .ok_or(TermError::Truncated { at: buf.len() })?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn skip(buf: &[u8], at: usize, n: usize) -> Result<usize, TermError> {
    let end = at.checked_add(n).ok_or(TermError::Truncated { at })?;
    if end > buf.len() {
        return Err(TermError::Truncated { at: buf.len() });
    }
    Ok(end)
}

fn atom(buf: &[u8], at: usize) -> Result<usize, TermError> {
    let tag = byte(buf, at)?;
    match tag {
        100 | 115 | 118 | 119 => atom_body(buf, tag, at + 1),
        tag => Err(TermError::UnsupportedTag { at, tag }),
    }
}

fn atom_body(buf: &[u8], tag: u8, at: usize) -> Result<usize, TermError> {
    if tag == 115 || tag == 119 {
        let n = usize::from(byte(buf, at)?);
        skip(buf, at + 1, n)
    } else {
        let n = usize::from(u16_at(buf, at)?);
        skip(buf, at + 2, n)
    }
}

fn pid(buf: &[u8], at: usize) -> Result<usize, TermError> {
    let tag = byte(buf, at)?;
    match tag {
        103 | 88 => pid_body(buf, tag, at + 1),
        tag => Err(TermError::UnsupportedTag { at, tag }),
    }
}

fn pid_body(buf: &[u8], tag: u8, at: usize) -> Result<usize, TermError> {
    let after_node = atom(buf, at)?;
    skip(buf, after_node, if tag == 103 { 9 } else { 12 })
}

fn small_int(buf: &[u8], at: usize) -> Result<usize, TermError> {
    match byte(buf, at)? {
        97 => skip(buf, at + 1, 1),
        tag => Err(TermError::UnsupportedTag { at, tag }),
    }
}

fn int_field(buf: &[u8], at: usize) -> Result<usize, TermError> {
    match byte(buf, at)? {
        97 => skip(buf, at + 1, 1),
        98 => skip(buf, at + 1, 4),
        tag => Err(TermError::UnsupportedTag { at, tag }),
    }
}

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
const SHARED_FROM: usize = 4096;

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

/// A term was not of the shape a caller expected.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("expected {expected}, but got {got}")]
pub struct ShapeError {
    pub expected: &'static str,
    pub got: String,
}

impl ShapeError {
    pub fn new(expected: &'static str, got: &Term) -> Self {
        ShapeError {
            expected,
            got: show(got),
        }
    }
}

/// Renders a term for a message, cut short so a multi-megabyte binary
/// does not flood the terminal.
pub fn show(term: &Term) -> String {
    const LIMIT: usize = 300;
    if let Term::Binary(b) = term {
        if b.bytes.len() > 32 {
            return format!("<<{} bytes>>", b.bytes.len());
        }
    }
    // Rendering stops once past the limit: an unexpected answer of many
    // megabytes costs no more to show than a short one.
    let mut text = Bounded {
        text: String::new(),
        limit: LIMIT,
    };
    let whole = std::fmt::Write::write_fmt(&mut text, format_args!("{term}")).is_ok();
    let mut text = text.text;
    if whole && text.len() <= LIMIT {
        return text;
    }
    let mut cut = LIMIT.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push('…');
    text
}

/// A `fmt::Write` that takes text up to a little past `limit`, then fails.
struct Bounded {
    text: String,
    limit: usize,
}

impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() > self.limit {
            return Err(std::fmt::Error);
        }
        let room = self.limit + 1 - self.text.len();
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.text.push_str(&s[..take]);
        Ok(())
    }
}

/// An integer term. Negative values go out as bignums: `eetf` 0.11 writes a
/// list whose elements are all integers below 256 as a byte string and so
/// turns `[-3]` into `[253]`; a bignum element keeps the list a real list,
/// and the node normalises the bignum back to a small integer.
pub fn int(value: i64) -> Term {
    match i32::try_from(value) {
        Ok(v) if v >= 0 => Term::FixInteger(FixInteger::from(v)),
        _ => Term::BigInteger(BigInteger::from(value)),
    }
}

pub fn atom_term(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}

pub fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(elements))
}

pub fn list(elements: Vec<Term>) -> Term {
    Term::List(List::from(elements))
}

pub fn binary(bytes: Vec<u8>) -> Term {
    Term::Binary(Binary::from(bytes))
}

/// A charlist, as Erlang functions that take file names expect.
pub fn charlist(text: &str) -> Term {
    list(text.chars().map(|c| int(i64::from(u32::from(c)))).collect())
}

pub fn as_atom(term: &Term) -> Result<&str, ShapeError> {
    match term {
        Term::Atom(a) => Ok(&a.name),
        other => Err(ShapeError::new("an atom", other)),
    }
}

pub fn is_atom(term: &Term, name: &str) -> bool {
    matches!(term, Term::Atom(a) if a.name == name)
}

pub fn as_tuple(term: &Term) -> Result<&[Term], ShapeError> {
    match term {
        Term::Tuple(t) => Ok(&t.elements),
        other => Err(ShapeError::new("a tuple", other)),
    }
}

/// A tuple of exactly `N` elements.
pub fn as_tuple_n<const N: usize>(term: &Term) -> Result<&[Term; N], ShapeError> {
    as_tuple(term)?
        .try_into()
        .map_err(|_| ShapeError::new(tuple_name(N), term))
}

fn tuple_name(n: usize) -> &'static str {
    match n {
        2 => "a 2-tuple",
        3 => "a 3-tuple",
        4 => "a 4-tuple",
        _ => "a tuple of another size",
    }
}

/// The elements of a proper list; a charlist sent as `STRING_EXT` counts too.
pub fn as_list(term: &Term) -> Result<Vec<Term>, ShapeError> {
    match term {
        Term::List(l) => Ok(l.elements.clone()),
        Term::ByteList(b) => Ok(b
            .bytes
            .iter()
            .map(|&x| Term::FixInteger(FixInteger::from(i32::from(x))))
            .collect()),
        other => Err(ShapeError::new("a list", other)),
    }
}

pub fn as_binary(term: &Term) -> Result<&[u8], ShapeError> {
    match term {
        Term::Binary(b) => Ok(&b.bytes),
        other => Err(ShapeError::new("a binary", other)),
    }
}

pub fn as_pid(term: &Term) -> Result<&Pid, ShapeError> {
    match term {
        Term::Pid(p) => Ok(p),
        other => Err(ShapeError::new("a pid", other)),
    }
}

pub fn as_int(term: &Term) -> Result<i64, ShapeError> {
    match term {
        Term::FixInteger(i) => Ok(i64::from(i.value)),
        Term::BigInteger(b) => {
            i64::try_from(&b.value).map_err(|_| ShapeError::new("a 64-bit integer", term))
        }
        other => Err(ShapeError::new("an integer", other)),
    }
}

/// Text from a charlist or a binary, as Erlang hands back paths and names.
pub fn as_text(term: &Term) -> Result<String, ShapeError> {
    match term {
        Term::Binary(b) => {
            String::from_utf8(b.bytes.clone()).map_err(|_| ShapeError::new("UTF-8 text", term))
        }
        Term::ByteList(b) => Ok(b.bytes.iter().map(|&c| char::from(c)).collect()),
        Term::List(l) => l
            .elements
            .iter()
            .map(|e| match e {
                Term::FixInteger(i) => u32::try_from(i.value).ok().and_then(char::from_u32),
                _ => None,
            })
            .collect::<Option<String>>()
            .ok_or_else(|| ShapeError::new("a charlist", term)),
        other => Err(ShapeError::new("a charlist", other)),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn show_cuts_a_long_answer_and_keeps_a_short_one() {
        let long = list((0..200_000).map(|i| int(i % 1000)).collect());
        let shown = show(&long);
        assert!(shown.ends_with('…'), "{shown}");
        assert_eq!(shown.chars().count(), 301, "{shown}");
        assert!(shown.starts_with("[0,1,2,"), "{shown}");
        assert_eq!(show(&atom_term("ok")), "'ok'");
        let exactly = atom_term(&"a".repeat(298));
        assert_eq!(show(&exactly), format!("'{}'", "a".repeat(298)));
        let wide = atom_term(&"é".repeat(200));
        assert!(show(&wide).ends_with('…'));
    }

    use super::*;

    fn encode(term: &Term) -> Vec<u8> {
        let mut buf = Vec::new();
        term.encode(&mut buf).expect("encode");
        buf
    }

    #[test]
    fn accepts_what_the_encoder_writes() {
        let term = tuple(vec![
            atom_term("ok"),
            list(vec![binary(vec![1, 2, 3]), Term::FixInteger(7.into())]),
            charlist("héllo"),
        ]);
        assert_eq!(check_external_terms(&encode(&term), 1), Ok(()));
        let mut two = encode(&term);
        two.extend(encode(&atom_term("x")));
        assert_eq!(check_external_terms(&two, 2), Ok(()));
        assert!(matches!(
            check_external_terms(&two, 1),
            Err(TermError::TooMany { .. })
        ));
    }

    #[test]
    fn shared_binaries_encode_as_copied_ones_do() {
        let big = Arc::new(vec![7u8; SHARED_FROM + 1]);
        let small = Arc::new(vec![1u8, 2, 3]);
        let write = |w: &mut EtfWriter, shared: bool| {
            w.list_header(3);
            for b in [&big, &small, &big] {
                match shared {
                    true => w.shared_binary(b),
                    false => w.binary(b),
                };
            }
            w.nil();
        };
        let mut copied = EtfWriter::default();
        write(&mut copied, false);
        let mut shared = EtfWriter::default();
        write(&mut shared, true);
        let shared = shared.finish();
        // The two big ones are not copied; the small one is.
        assert_eq!(shared.0.iter().filter(|p| Arc::ptr_eq(p, &big)).count(), 2);
        let bytes: Vec<u8> = shared.0.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(shared.len(), bytes.len());
        assert_eq!(bytes, copied.into_bytes());
    }

    #[test]
    fn rejects_lying_counts_and_panicking_tags() {
        // LIST_EXT claiming four billion elements.
        assert!(check_external_terms(&[131, 108, 255, 255, 255, 255, 106], 1).is_err());
        // ATOM_CACHE_REF, which eetf answers with unimplemented!().
        assert!(matches!(
            check_external_terms(&[131, 82, 0], 1),
            Err(TermError::UnsupportedTag { tag: 82, .. })
        ));
        // Bit count of zero, which eetf would shift by eight.
        assert!(matches!(
            check_external_terms(&[131, 77, 0, 0, 0, 1, 0, 9], 1),
            Err(TermError::BadBits { .. })
        ));
        assert!(check_external_terms(&[], 1).is_err());
    }

    #[test]
    fn rejects_deep_nesting() {
        let mut buf = vec![131];
        for _ in 0..10_000 {
            buf.extend([104, 1]);
        }
        buf.push(106);
        assert_eq!(check_external_terms(&buf, 1), Err(TermError::TooDeep));
    }

    #[test]
    fn a_list_of_more_small_integers_than_a_frame_may_hold_is_refused() {
        // [1, 1, ...]: two bytes on the wire an element, tens decoded.
        let n = MAX_ELEMENTS as u32;
        let mut buf = vec![131, 108];
        buf.extend(n.to_be_bytes());
        for _ in 0..n {
            buf.extend([97, 1]);
        }
        buf.push(106);
        assert_eq!(
            check_external_terms(&buf, 1),
            Err(TermError::TooManyElements)
        );
        // One fewer fits.
        let mut fits = vec![131, 108];
        fits.extend((n - 1).to_be_bytes());
        fits.extend(&buf[6..buf.len() - 3]);
        fits.push(106);
        assert_eq!(check_external_terms(&fits, 1), Ok(()));
    }
}
