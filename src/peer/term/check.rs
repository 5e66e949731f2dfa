//! The guard on bytes from a peer: [`check_external_terms`] walks them
//! iteratively, with no allocation beyond a small stack, and accepts only
//! what the decoder can take without panicking, aborting or blowing the
//! stack.

use super::writer::VERSION;

/// How deep terms may nest; real RPC replies (stack traces included) stay far below.
pub const MAX_DEPTH: usize = 256;

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
