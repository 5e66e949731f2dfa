//! Just enough of the `Code` chunk to tell whether a module has an
//! `-on_load` function. The compiler drops `on_load` from the attributes and
//! instead plants an `on_load` instruction (opcode 149) at the start of that
//! function, so we walk the instruction stream: each instruction is an opcode
//! byte followed by a fixed number of operands in the compact term encoding
//! (see `beam_disasm.erl` in OTP's compiler).

/// Operand counts of the generic BEAM instructions, opcodes 1 to 184
/// (OTP 25's table, plus `update_record/5` and `bs_match/3` from OTP 26,
/// `executable_line/2` from 27 and `debug_line/4` from 28).
const ARITY: [u8; 184] = [
    1, 3, 0, 2, 3, 2, 2, 3, 2, 4, 5, 2, 3, 2, 3, 2, 1, 1, 0, 0, 0, 0, 2, 1, 1, 2, 4, 4, 4, 4, 4,
    4, //
    4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 1, 2, 1,
    2, //
    3, 3, 3, 3, 3, 2, 1, 1, 0, 1, 1, 3, 2, 2, 2, 5, 5, 5, 4, 2, 1, 1, 2, 2, 5, 5, 5, 2, 1, 0, 1,
    2, //
    2, 4, 4, 4, 4, 3, 1, 2, 1, 1, 1, 2, 6, 3, 5, 1, 2, 2, 3, 5, 7, 7, 7, 5, 3, 2, 2, 5, 6, 2, 2,
    2, //
    2, 1, 3, 4, 0, 8, 6, 2, 6, 5, 4, 5, 4, 5, 4, 3, 3, 3, 3, 3, 0, 1, 1, 7, 1, 5, 5, 2, 3, 3, 4,
    0, //
    0, 2, 2, 2, 3, 4, 3, 2, 2, 4, 3, 1, 2, 1, 1, 1, 6, 3, 0, 1, 5, 3, 2, 4,
];

const INT_CODE_END: u8 = 3;
const ON_LOAD: u8 = 149;

/// Whether the module runs a function when loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLoad {
    No,
    Yes,
    /// The code uses an instruction newer than this table; the deploy then
    /// learns it from the node (`atomic_load` refuses on_load modules).
    Unknown,
}

/// Scans a `Code` chunk. Never panics; malformed code gives `Unknown`.
pub fn on_load(code: &[u8]) -> OnLoad {
    scan(code).unwrap_or(OnLoad::Unknown)
}

fn scan(code: &[u8]) -> Option<OnLoad> {
    // Header: sub-header size, then (instruction set, max opcode, labels,
    // functions) inside that sub-header; instructions follow it.
    let header = u32::from_be_bytes(code.get(0..4)?.try_into().ok()?) as usize;
    let mut pos = 4usize.checked_add(header)?;
    if pos > code.len() {
        return None;
    }
    while pos < code.len() {
        let op = code[pos];
        pos += 1;
        match op {
            ON_LOAD => return Some(OnLoad::Yes),
            INT_CODE_END => return Some(OnLoad::No),
            0 => return None,
            _ => {
                let arity = *ARITY.get(usize::from(op) - 1)?;
                for _ in 0..arity {
                    pos = skip_operand(code, pos, 0)?;
                }
            }
        }
    }
    Some(OnLoad::No)
}

/// Skips one compactly encoded operand; returns the position after it.
fn skip_operand(code: &[u8], pos: usize, depth: u8) -> Option<usize> {
    if depth > 4 {
        return None;
    }
    let b = *code.get(pos)?;
    if b & 0x07 != 0x07 {
        return skip_integer(code, pos);
    }
    // Extended tag `z`: the kind sits in the high nibble.
    if b & 0x08 != 0 {
        return None;
    }
    let pos = pos + 1;
    match b >> 4 {
        0 => check(code, pos + 8),
        // A list: its length, then that many operands.
        1 => {
            let (len, mut pos) = read_unsigned(code, pos)?;
            for _ in 0..len {
                pos = skip_operand(code, pos, depth + 1)?;
            }
            Some(pos)
        }
        2 | 4 => skip_operand(code, pos, depth + 1),
        // An allocation list: length, then (kind, amount) pairs.
        3 => {
            let (len, mut pos) = read_unsigned(code, pos)?;
            for _ in 0..len.checked_mul(2)? {
                pos = skip_operand(code, pos, depth + 1)?;
            }
            Some(pos)
        }
        // A register with a type index.
        5 => {
            let pos = skip_operand(code, pos, depth + 1)?;
            skip_operand(code, pos, depth + 1)
        }
        _ => None,
    }
}

fn skip_integer(code: &[u8], pos: usize) -> Option<usize> {
    let b = *code.get(pos)?;
    if b & 0x08 == 0 {
        check(code, pos + 1)
    } else if b & 0x10 == 0 {
        check(code, pos + 2)
    } else if b >> 5 < 7 {
        check(code, pos + 1 + usize::from(b >> 5) + 2)
    } else {
        let (len, pos) = read_unsigned(code, pos + 1)?;
        check(
            code,
            pos.checked_add(usize::try_from(len).ok()?.checked_add(9)?)?,
        )
    }
}

/// Reads a small unsigned operand (list lengths); returns value and next position.
fn read_unsigned(code: &[u8], pos: usize) -> Option<(u64, usize)> {
    let b = *code.get(pos)?;
    if b & 0x07 == 0x07 {
        return None;
    }
    if b & 0x08 == 0 {
        Some((u64::from(b >> 4), pos + 1))
    } else if b & 0x10 == 0 {
        let low = *code.get(pos + 1)?;
        Some(((u64::from(b & 0xe0) << 3) | u64::from(low), pos + 2))
    } else {
        let n = usize::from(b >> 5) + 2;
        if n > 8 {
            return None;
        }
        let bytes = code.get(pos + 1..pos + 1 + n)?;
        let value = bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        Some((value, pos + 1 + n))
    }
}

fn check(code: &[u8], end: usize) -> Option<usize> {
    (end <= code.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_unknown_not_a_panic() {
        assert_eq!(on_load(&[]), OnLoad::Unknown);
        assert_eq!(on_load(&[0, 0, 0, 16]), OnLoad::Unknown);
        assert_eq!(on_load(&[0, 0, 0, 0, 3]), OnLoad::No);
        assert_eq!(on_load(&[0xff, 0xff, 0xff, 0xff, 1]), OnLoad::Unknown);
        assert_eq!(on_load(&[0, 0, 0, 0, 200]), OnLoad::Unknown);
    }
}
