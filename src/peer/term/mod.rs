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
mod check;
mod writer;

pub use check::{check_external_terms, TermError, MAX_DEPTH, MAX_ELEMENTS};
pub(crate) use writer::encode_bare;
pub use writer::{Encoded, EtfWriter};

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
    use std::sync::Arc;
    use writer::SHARED_FROM;

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
