//! `.beam` files: reading, validating and fingerprinting them exactly as OTP
//! does, with no Erlang VM on this machine. Finding them in Mix, rebar3 and
//! Nerves builds is [`crate::project`]'s job.
//!
//! The chunk layer is written here rather than taken from the `beam_file`
//! crate: we need each chunk's raw bytes exactly as stored (the MD5 is over
//! them), the errors must name the file and the offset at fault, gzip'ed
//! beams must be accepted, and any input must be safe — all small, and
//! easier to guarantee in ~200 lines we own.

use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The chunks whose contents make up a module's MD5, in hashing order
/// (`beam_lib:md5_chunks/0`). The VM's `Mod:module_info(md5)` agrees.
const MD5_CHUNKS: [&[u8; 4]; 9] = [
    b"Atom", b"AtU8", b"Code", b"StrT", b"ImpT", b"ExpT", b"FunT", b"LitT", b"Meta",
];

/// Chunks without which beam_lib refuses to compute an MD5.
const MANDATORY: [&[u8; 4]; 4] = [b"Code", b"ExpT", b"ImpT", b"StrT"];

/// Chunks the running VM never reads: debug info (`Dbgi`, and `Abst` from
/// older compilers), documentation (`Docs`) and Elixir's compile-time
/// checker data (`ExCk`). Tools that want them (the debugger, `h` in IEx,
/// the Elixir compiler) read the file on disk, not the loaded code, so they
/// are left out of what is sent to load a module, as `mix release` leaves
/// them out of releases. They are not part of the MD5.
const UNREAD_WHEN_LOADED: [&[u8; 4]; 4] = [b"Dbgi", b"Abst", b"Docs", b"ExCk"];

/// The biggest file a gzip'ed beam may unpack to; beyond it is a bomb.
const MAX_UNPACKED: u64 = 256 << 20;

/// A module's MD5 as the VM reports it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Md5(pub [u8; 16]);

impl Md5 {
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Md5> {
        let bytes = unhex(text)?;
        Some(Md5(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5({})", self.to_hex())
    }
}

/// SHA-256 of a whole file: the content address in the snapshot store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Sum(pub [u8; 32]);

impl Sha256Sum {
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Sum(Sha256::digest(bytes).into())
    }

    pub fn to_hex(self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        Some(Sha256Sum(unhex(text)?.try_into().ok()?))
    }
}

impl fmt::Display for Sha256Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

/// Why bytes are not a loadable BEAM module.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BeamError {
    #[error("not a BEAM file (no `FOR1`…`BEAM` header)")]
    NotBeam,
    #[error("the gzip'ed data does not unpack: {0}")]
    Gzip(String),
    #[error("the header claims {claimed} bytes but the file has {actual}")]
    FormPastEnd { claimed: usize, actual: usize },
    #[error("truncated chunk header at byte {offset}")]
    TruncatedChunk { offset: usize },
    #[error("chunk `{id}` at byte {offset} claims {len} bytes, past the end of the file")]
    ChunkPastEnd {
        id: String,
        offset: usize,
        len: usize,
    },
    #[error("missing the `{0}` chunk")]
    MissingChunk(&'static str),
    #[error("missing the atom table (`AtU8` or `Atom` chunk)")]
    MissingAtoms,
    #[error("the atom table does not start with a valid module name")]
    BadAtoms,
}

/// A validated module, ready to send.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub md5: Md5,
    /// The file's bytes as they are on disk (gzip'ed ones too: the VM's
    /// loader takes those as they are): what the store keeps.
    pub bytes: Arc<Vec<u8>>,
    /// What is sent to load it: `bytes` without the chunks the VM never
    /// reads ([`UNREAD_WHEN_LOADED`]); the same bytes when it has none.
    /// Shared, so sending the same module to many nodes copies nothing.
    pub loadable: Arc<Vec<u8>>,
    /// Where it was read from, or a name for it when it came from elsewhere.
    pub path: PathBuf,
    /// It exports `code_change/3` or `/4`: loaded over a running version,
    /// the processes it is the callback module of are migrated.
    pub code_change: bool,
}

/// A file that could not be read as a module, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is not a valid BEAM file: {source}", path.display())]
    Invalid { path: PathBuf, source: BeamError },
    #[error("`{}` defines module `{module}`, not `{expected}` as its name says", path.display())]
    NameMismatch {
        path: PathBuf,
        module: String,
        expected: String,
    },
    #[error("module `{module}` is defined twice: `{}` and `{}`", first.display(), second.display())]
    Duplicate {
        module: String,
        first: PathBuf,
        second: PathBuf,
    },
}

impl Module {
    /// The SHA-256 of the file, its address in the snapshot store. Computed
    /// on demand: only modules that are stored need it, and it costs more
    /// than everything else about reading a beam.
    pub fn sha256(&self) -> Sha256Sum {
        Sha256Sum::of(&self.bytes)
    }

    /// Reads and validates a `.beam` file; its name must match the module.
    pub fn read(path: &Path) -> Result<Module, ModuleError> {
        let bytes = std::fs::read(path).map_err(|source| ModuleError::Io {
            path: path.to_owned(),
            source,
        })?;
        let module =
            Module::from_bytes(bytes, path.to_owned()).map_err(|source| ModuleError::Invalid {
                path: path.to_owned(),
                source,
            })?;
        let expected = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if module.name != expected {
            return Err(ModuleError::NameMismatch {
                path: path.to_owned(),
                module: module.name,
                expected,
            });
        }
        Ok(module)
    }

    /// Validates bytes that came from anywhere (a snapshot, a node).
    pub fn from_bytes(bytes: Vec<u8>, path: PathBuf) -> Result<Module, BeamError> {
        let (parsed, loadable) = if bytes.starts_with(&[0x1f, 0x8b]) {
            (parse(&bytes)?, None)
        } else {
            // One walk of the chunks for both.
            let chunks = chunks_of(&bytes)?;
            (parsed_from(&chunks)?, for_loading(&chunks))
        };
        let bytes = Arc::new(bytes);
        let loadable = loadable.map_or_else(|| bytes.clone(), Arc::new);
        Ok(Module {
            name: parsed.name,
            md5: parsed.md5,
            bytes,
            loadable,
            path,
            code_change: parsed.code_change,
        })
    }
}

/// What parsing tells about a BEAM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub name: String,
    pub md5: Md5,
    /// Chunk ids in file order, with their data lengths.
    pub chunks: Vec<([u8; 4], usize)>,
    /// It exports `code_change/3` or `/4`.
    pub code_change: bool,
}

/// Parses a BEAM file (plain or gzip'ed). Safe on any input.
pub fn parse(bytes: &[u8]) -> Result<Parsed, BeamError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_UNPACKED)
            .read_to_end(&mut unpacked)
            .map_err(|e| BeamError::Gzip(e.to_string()))?;
        return parse_plain(&unpacked);
    }
    parse_plain(bytes)
}

fn parse_plain(bytes: &[u8]) -> Result<Parsed, BeamError> {
    parsed_from(&chunks_of(bytes)?)
}

fn parsed_from(chunks: &[Chunk<'_>]) -> Result<Parsed, BeamError> {
    // As beam_lib: the first chunk of each id counts.
    let find = |id: &[u8; 4]| chunks.iter().find(|(c, _)| c == id).map(|(_, d)| *d);
    for id in MANDATORY {
        if find(id).is_none() {
            return Err(BeamError::MissingChunk(mandatory_name(id)));
        }
    }
    let (atoms, utf8) = match (find(b"AtU8"), find(b"Atom")) {
        (Some(atoms), _) => (atoms, true),
        (None, Some(atoms)) => (atoms, false),
        (None, None) => return Err(BeamError::MissingAtoms),
    };
    let name = first_atom(atoms, utf8)?;
    let code_change = find(b"ExpT").is_some_and(|exports| exports_code_change(exports, atoms));
    let mut md5 = md5::Context::new();
    for id in MD5_CHUNKS {
        if let Some(data) = find(id) {
            if id == b"FunT" {
                consume_funt(&mut md5, data);
            } else {
                md5.consume(data);
            }
        }
    }
    Ok(Parsed {
        name,
        md5: Md5(md5.finalize().0),
        chunks: chunks.iter().map(|(id, d)| (*id, d.len())).collect(),
        code_change,
    })
}

/// Whether the export table `exports` (ExpT: a count, then function atom
/// index, arity and label, each 4 bytes) has `code_change/3` or `/4`,
/// names from the atom table `atoms`. A table it cannot read has none.
fn exports_code_change(exports: &[u8], atoms: &[u8]) -> bool {
    let count = exports.get(0..4).map_or(0, be32) as usize;
    let wanted: Vec<usize> = exports
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(12)
        .take(count)
        .filter(|e| matches!(be32(&e[4..8]), 3 | 4))
        .map(|e| be32(&e[0..4]) as usize)
        .collect();
    !wanted.is_empty()
        && atom_names(atoms)
            .enumerate()
            .any(|(i, name)| name == b"code_change" && wanted.contains(&(i + 1)))
}

/// The atoms of an atom table (AtU8 or Atom), in order, up to the first
/// that cannot be read.
fn atom_names(table: &[u8]) -> impl Iterator<Item = &[u8]> {
    let count = table.get(0..4).map_or(0, |b| be32(b) as i32);
    let mut pos = 4;
    (0..count.unsigned_abs()).map_while(move |_| {
        let (len, start) = atom_length(table, pos, count < 0)?;
        let name = table.get(start..start.checked_add(len)?)?;
        pos = start + len;
        Some(name)
    })
}

/// The length of the atom at `pos` and where its name starts: one byte
/// before OTP 28; in its compact encoding (`compact`, a negative count)
/// one or two.
fn atom_length(table: &[u8], pos: usize, compact: bool) -> Option<(usize, usize)> {
    let b = *table.get(pos)?;
    if !compact {
        return Some((usize::from(b), pos + 1));
    }
    if b & 0x08 == 0 {
        Some((usize::from(b >> 4), pos + 1))
    } else if b & 0x10 == 0 {
        let low = *table.get(pos + 1)?;
        Some(((usize::from(b & 0xe0) << 3) | usize::from(low), pos + 2))
    } else {
        None
    }
}

/// A chunk's id and data.
type Chunk<'a> = ([u8; 4], &'a [u8]);

/// A plain BEAM file's chunks, in file order.
fn chunks_of(bytes: &[u8]) -> Result<Vec<Chunk<'_>>, BeamError> {
    if bytes.len() < 12 || &bytes[0..4] != b"FOR1" || &bytes[8..12] != b"BEAM" {
        return Err(BeamError::NotBeam);
    }
    let claimed = be32(&bytes[4..8]) as usize;
    // The loader reads chunks within the form; it must fit in the file.
    let end =
        claimed
            .checked_add(8)
            .filter(|&e| e <= bytes.len())
            .ok_or(BeamError::FormPastEnd {
                claimed: claimed.saturating_add(8),
                actual: bytes.len(),
            })?;
    let mut chunks: Vec<Chunk<'_>> = Vec::new();
    let mut pos = 12;
    while pos < end {
        let header = bytes
            .get(pos..pos + 8)
            .filter(|_| pos + 8 <= end)
            .ok_or(BeamError::TruncatedChunk { offset: pos })?;
        let id: [u8; 4] = [header[0], header[1], header[2], header[3]];
        let len = be32(&header[4..8]) as usize;
        let data_start = pos + 8;
        let data = data_start
            .checked_add(len)
            .filter(|&e| e <= end)
            .map(|e| &bytes[data_start..e])
            .ok_or_else(|| BeamError::ChunkPastEnd {
                id: String::from_utf8_lossy(&id).into_owned(),
                offset: pos,
                len,
            })?;
        chunks.push((id, data));
        // Chunks are padded to 4 bytes; the last one's padding may be absent.
        pos = data_start + len.div_ceil(4) * 4;
    }
    Ok(chunks)
}

/// What to send a node to load the file of `chunks`: the file without the
/// chunks in [`UNREAD_WHEN_LOADED`], or `None` when it has none of them.
fn for_loading(chunks: &[Chunk<'_>]) -> Option<Vec<u8>> {
    let unread = |id: &[u8; 4]| UNREAD_WHEN_LOADED.contains(&id);
    if !chunks.iter().any(|(id, _)| unread(id)) {
        return None;
    }
    let kept: Vec<_> = chunks.iter().filter(|(id, _)| !unread(id)).collect();
    let size: usize = kept
        .iter()
        .map(|(_, d)| 8 + d.len().next_multiple_of(4))
        .sum();
    let mut file = Vec::with_capacity(12 + size);
    file.extend_from_slice(b"FOR1\0\0\0\0BEAM");
    for (id, data) in kept {
        file.extend_from_slice(id);
        file.extend_from_slice(&u32::try_from(data.len()).ok()?.to_be_bytes());
        file.extend_from_slice(data);
        file.resize(file.len().next_multiple_of(4), 0);
    }
    let form = u32::try_from(file.len() - 8).ok()?;
    file[4..8].copy_from_slice(&form.to_be_bytes());
    Some(file)
}

/// beam_lib hashes the fun table with each entry's old-style unique value
/// (bytes 20..24 of every 24-byte entry) zeroed, since it varies between
/// otherwise identical compilations.
fn consume_funt(md5: &mut md5::Context, data: &[u8]) {
    let Some((count, mut rest)) = data.split_first_chunk::<4>() else {
        md5.consume(data);
        return;
    };
    md5.consume(count);
    while rest.len() >= 24 {
        md5.consume(&rest[..20]);
        md5.consume([0u8; 4]);
        rest = &rest[24..];
    }
    md5.consume(rest);
}

fn mandatory_name(id: &[u8; 4]) -> &'static str {
    match id {
        b"Code" => "Code",
        b"ExpT" => "ExpT",
        b"ImpT" => "ImpT",
        _ => "StrT",
    }
}

/// The module name: the first atom of the table. Since OTP 28 a negative
/// count means lengths are in the compact encoding.
fn first_atom(table: &[u8], utf8: bool) -> Result<String, BeamError> {
    let count = table
        .get(0..4)
        .map(|b| be32(b) as i32)
        .ok_or(BeamError::BadAtoms)?;
    if count == 0 {
        return Err(BeamError::BadAtoms);
    }
    let (len, start) = atom_length(table, 4, count < 0).ok_or(BeamError::BadAtoms)?;
    let raw = table.get(start..start + len).ok_or(BeamError::BadAtoms)?;
    if raw.is_empty() {
        return Err(BeamError::BadAtoms);
    }
    if utf8 {
        String::from_utf8(raw.to_vec()).map_err(|_| BeamError::BadAtoms)
    } else {
        Ok(raw.iter().map(|&b| char::from(b)).collect())
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Reads many files at once, in parallel when there are enough to pay for
/// the threads. Results keep the order of `paths`.
pub fn read_all(paths: &[PathBuf]) -> Vec<Result<Module, ModuleError>> {
    const PER_THREAD: usize = 64;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if paths.len() < 2 * PER_THREAD || threads == 1 {
        return paths.iter().map(|p| Module::read(p)).collect();
    }
    let chunk = paths.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|p| Module::read(p)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(ModuleError::Io {
                        path: PathBuf::new(),
                        source: std::io::Error::other("a reader thread panicked"),
                    })]
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beam(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = b"BEAM".to_vec();
        for (id, data) in chunks {
            body.extend_from_slice(*id);
            body.extend_from_slice(&(data.len() as u32).to_be_bytes());
            body.extend_from_slice(data);
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
        }
        let mut file = b"FOR1".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_be_bytes());
        file.extend(body);
        file
    }

    const ATOMS: &[u8] = &[0, 0, 0, 1, 3, b'f', b'o', b'o'];

    fn minimal() -> Vec<u8> {
        beam(&[
            (b"AtU8", ATOMS),
            (b"Code", &[0, 0, 0, 0, 3]),
            (b"StrT", &[]),
            (b"ImpT", &[0, 0, 0, 0]),
            (b"ExpT", &[0, 0, 0, 0]),
        ])
    }

    #[test]
    fn reads_a_minimal_module() {
        let p = parse(&minimal()).expect("parses");
        assert_eq!(p.name, "foo");
        assert_eq!(p.chunks.len(), 5);
    }

    #[test]
    fn chunks_the_vm_never_reads_are_not_sent() {
        let kept: [(&[u8; 4], &[u8]); 6] = [
            (b"AtU8", ATOMS),
            (b"Code", &[0, 0, 0, 0, 3]),
            (b"StrT", &[]),
            (b"ImpT", &[0, 0, 0, 0]),
            (b"ExpT", &[0, 0, 0, 0]),
            (b"Line", &[0, 0, 0, 0, 1, 2, 3]),
        ];
        let mut all = kept.to_vec();
        all.insert(2, (b"Dbgi", &[7; 13]));
        all.insert(5, (b"Docs", &[8; 6]));
        all.push((b"ExCk", &[9; 3]));
        let file = beam(&all);
        let m = Module::from_bytes(file.clone(), "foo.beam".into()).expect("valid");
        assert_eq!(*m.bytes, file, "the file itself is kept whole");
        assert_eq!(*m.loadable, beam(&kept));
        assert_eq!(parse(&m.loadable).expect("parses").md5, m.md5);

        let plain = Module::from_bytes(minimal(), "foo.beam".into()).expect("valid");
        assert!(
            Arc::ptr_eq(&plain.bytes, &plain.loadable),
            "nothing to leave out: no copy"
        );
    }

    #[test]
    fn each_defect_has_its_error() {
        let good = minimal();
        let cases: Vec<(&str, Vec<u8>, BeamError)> = vec![
            ("empty", vec![], BeamError::NotBeam),
            (
                "text",
                b"hello world, not a beam".to_vec(),
                BeamError::NotBeam,
            ),
            (
                "form past end",
                good[..good.len() - 4].to_vec(),
                BeamError::FormPastEnd {
                    claimed: good.len(),
                    actual: good.len() - 4,
                },
            ),
            (
                "chunk past end",
                {
                    let mut b = good.clone();
                    b[16..20].copy_from_slice(&1000u32.to_be_bytes());
                    b
                },
                BeamError::ChunkPastEnd {
                    id: "AtU8".into(),
                    offset: 12,
                    len: 1000,
                },
            ),
            (
                "truncated header",
                {
                    let mut b = good.clone();
                    b.extend_from_slice(b"Lin");
                    let n = (b.len() - 8) as u32;
                    b[4..8].copy_from_slice(&n.to_be_bytes());
                    b
                },
                BeamError::TruncatedChunk { offset: good.len() },
            ),
            (
                "no code",
                beam(&[
                    (b"AtU8", ATOMS),
                    (b"StrT", &[]),
                    (b"ImpT", &[]),
                    (b"ExpT", &[]),
                ]),
                BeamError::MissingChunk("Code"),
            ),
            (
                "no atoms",
                beam(&[
                    (b"Code", &[]),
                    (b"StrT", &[]),
                    (b"ImpT", &[]),
                    (b"ExpT", &[]),
                ]),
                BeamError::MissingAtoms,
            ),
            (
                "bad gzip",
                vec![0x1f, 0x8b, 1, 2, 3],
                BeamError::Gzip(String::new()),
            ),
        ];
        for (what, bytes, expected) in cases {
            let got = parse(&bytes).expect_err(what);
            match (&got, &expected) {
                (BeamError::Gzip(_), BeamError::Gzip(_)) => {}
                _ => assert_eq!(got, expected, "{what}"),
            }
        }
    }

    #[test]
    fn hex_round_trips() {
        let m = Md5([0xab; 16]);
        assert_eq!(Md5::from_hex(&m.to_hex()), Some(m));
        assert_eq!(Md5::from_hex("xyz"), None);
    }
}
