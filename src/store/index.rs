//! The store's index: which object holds the module with a given MD5, one
//! line `<md5> <sha256> <module>` per object, in one file read once per run
//! and appended to. It is a cache: a lost or torn line only means a later
//! snapshot asks the node for a copy, and every object read is checked.
//! A line `durable <sha256>`, written once that object and its folder were
//! synced, spares a later snapshot syncing it again.

use crate::beam::{Md5, Sha256Sum};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct Index {
    by_md5: HashMap<Md5, (Sha256Sum, String)>,
    /// The same entries by module, for the MD5s of a module in one look-up.
    by_module: HashMap<String, Vec<Md5>>,
    /// Objects known to be on disk for good.
    durable: HashSet<Sha256Sum>,
}

impl Index {
    /// Reads the index at `path`; a missing file is an empty index.
    pub fn read(path: &Path) -> Index {
        Index::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// The index an index file's `text` holds; a line that does not parse
    /// (a torn last one) is skipped.
    pub fn parse(text: &str) -> Index {
        let mut index = Index::default();
        for line in text.lines() {
            if let Some(sha) = line.strip_prefix("durable ").and_then(Sha256Sum::from_hex) {
                index.durable.insert(sha);
                continue;
            }
            let mut parts = line.split(' ');
            let (Some(md5), Some(sha), Some(module), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let (Some(md5), Some(sha), Some(module)) = (
                Md5::from_hex(md5),
                Sha256Sum::from_hex(sha),
                unescape(module),
            ) {
                index.insert(md5, sha, module);
            }
        }
        index
    }

    fn insert(&mut self, md5: Md5, sha: Sha256Sum, module: String) {
        let md5s = self.by_module.entry(module.clone()).or_default();
        if !md5s.contains(&md5) {
            md5s.push(md5);
        }
        if let Some((_, old)) = self.by_md5.insert(md5, (sha, module)) {
            self.unlink(&old, md5);
        }
    }

    /// Drops `md5` from `module`'s list, unless the entry still names it.
    fn unlink(&mut self, module: &str, md5: Md5) {
        if self.by_md5.get(&md5).is_some_and(|(_, m)| m == module) {
            return;
        }
        if let Some(md5s) = self.by_module.get_mut(module) {
            md5s.retain(|m| *m != md5);
        }
    }

    pub fn get(&self, md5: Md5) -> Option<Sha256Sum> {
        self.by_md5.get(&md5).map(|(sha, _)| *sha)
    }

    /// The MD5s of `module` the index knows.
    pub fn md5s_of(&self, module: &str) -> Vec<Md5> {
        self.by_module.get(module).cloned().unwrap_or_default()
    }

    /// Adds entries not known yet, and appends them to the file at `path`
    /// in one write.
    pub fn add(
        &mut self,
        path: &Path,
        entries: impl IntoIterator<Item = (Md5, Sha256Sum, String)>,
    ) -> std::io::Result<()> {
        let mut text = String::new();
        for (md5, sha, module) in entries {
            if self.get(md5) != Some(sha) {
                text.push_str(&line(md5, sha, &module));
                self.insert(md5, sha, module);
            }
        }
        append(path, &text)
    }

    pub fn is_durable(&self, sha: Sha256Sum) -> bool {
        self.durable.contains(&sha)
    }

    /// Records that `shas` were synced, appending what is new to `path`.
    pub fn mark_durable(&mut self, path: &Path, shas: &[Sha256Sum]) -> std::io::Result<()> {
        let mut text = String::new();
        for &sha in shas {
            if self.durable.insert(sha) {
                text.push_str(&format!("durable {}\n", sha.to_hex()));
            }
        }
        append(path, &text)
    }

    /// Forgets that `sha` was synced (it is being written again).
    pub fn unmark_durable(&mut self, sha: Sha256Sum) {
        self.durable.remove(&sha);
    }

    /// Keeps only the entries `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(Md5, Sha256Sum) -> bool) {
        self.by_md5.retain(|md5, (sha, _)| keep(*md5, *sha));
        let kept: HashSet<Sha256Sum> = self.by_md5.values().map(|(sha, _)| *sha).collect();
        self.durable.retain(|sha| kept.contains(sha));
        let by_md5 = &self.by_md5;
        for md5s in self.by_module.values_mut() {
            md5s.retain(|m| by_md5.contains_key(m));
        }
        self.by_module.retain(|_, md5s| !md5s.is_empty());
    }

    /// The whole index as the file holds it.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<String> = self
            .by_md5
            .iter()
            .map(|(md5, (sha, module))| line(*md5, *sha, module))
            .collect();
        lines.sort();
        let mut durable: Vec<String> = self
            .durable
            .iter()
            .map(|sha| format!("durable {}\n", sha.to_hex()))
            .collect();
        durable.sort();
        lines.extend(durable);
        lines.concat()
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn line(md5: Md5, sha: Sha256Sum, module: &str) -> String {
    format!("{md5} {} {}\n", sha.to_hex(), escape(module))
}

/// Module names are atoms, which may hold spaces or anything: those are
/// written as `%` and the name's bytes in hex.
fn escape(module: &str) -> String {
    let plain = !module.is_empty()
        && !module.starts_with('%')
        && module.chars().all(|c| c.is_ascii_graphic());
    if plain {
        module.to_owned()
    } else {
        format!(
            "%{}",
            module
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }
}

fn unescape(text: &str) -> Option<String> {
    let Some(hex) = text.strip_prefix('%') else {
        return Some(text.to_owned());
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_torn_ones_are_skipped() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("index");
        let mut index = Index::default();
        let sha = Sha256Sum::of(b"x");
        index
            .add(
                &path,
                [
                    (Md5([1; 16]), sha, "Elixir.Foo".to_owned()),
                    (Md5([2; 16]), sha, "with space".to_owned()),
                ],
            )
            .expect("add");
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("0102 torn");
        std::fs::write(&path, text).expect("write");
        let again = Index::read(&path);
        assert_eq!(again.get(Md5([1; 16])), Some(sha));
        assert_eq!(again.md5s_of("with space"), vec![Md5([2; 16])]);
        assert_eq!(again.by_md5.len(), 2);
        let mut pruned = again.clone();
        pruned.retain(|md5, _| md5 == Md5([1; 16]));
        assert!(pruned.md5s_of("with space").is_empty());
        assert_eq!(pruned.md5s_of("Elixir.Foo"), vec![Md5([1; 16])]);
    }

    #[test]
    fn durable_marks_are_read_back_and_go_with_their_entries() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("index");
        let (kept, dropped) = (Sha256Sum::of(b"kept"), Sha256Sum::of(b"dropped"));
        let mut index = Index::default();
        let entries = [
            (Md5([1; 16]), kept, "a".to_owned()),
            (Md5([2; 16]), dropped, "b".to_owned()),
        ];
        index.add(&path, entries).expect("add");
        index.mark_durable(&path, &[kept, dropped]).expect("mark");
        let again = Index::read(&path);
        assert!(again.is_durable(kept) && again.is_durable(dropped));
        let mut pruned = again.clone();
        pruned.retain(|md5, _| md5 == Md5([1; 16]));
        std::fs::write(&path, pruned.to_text()).expect("rewrite");
        let again = Index::read(&path);
        assert!(again.is_durable(kept));
        assert!(!again.is_durable(dropped));
        assert_eq!(again.get(Md5([1; 16])), Some(kept));
    }
}
