use super::*;
use crate::beam::Md5;
use files::files_in;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::utc_stamp;

fn record(outcome: NodeOutcome, module: &str, prior: Prior, deployed: &str) -> NodeRecord {
    NodeRecord {
        outcome,
        modules: vec![ModuleRecord {
            module: module.into(),
            prior,
            deployed: Some(deployed.into()),
        }],
    }
}

fn manifest(id: &str, created: u64, nodes: &[(&str, NodeRecord)]) -> Manifest {
    Manifest {
        id: id.into(),
        created,
        tool: "hs@h".into(),
        nodes: nodes
            .iter()
            .map(|(n, r)| (n.to_string(), r.clone()))
            .collect(),
    }
}

/// A store in `dir` holding one saved snapshot, and that snapshot.
fn saved_one(dir: &Path) -> (Store, Manifest) {
    let store = Store::new(dir);
    let m = manifest(
        "a",
        1,
        &[(
            "a@h",
            record(NodeOutcome::Applied, "m", Prior::Absent, "00"),
        )],
    );
    store.save(&m).expect("save");
    (store, m)
}

#[test]
fn stamps_are_utc_calendar_times() {
    assert_eq!(utc_stamp(0), "19700101T000000Z");
    assert_eq!(utc_stamp(1_795_392_000), "20261123T000000Z");
    assert_eq!(utc_stamp(951_782_400 + 3_661), "20000229T010101Z");
    assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
}

#[test]
fn objects_are_checked_on_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::new(dir.path());
    let md5 = Md5([7; 16]);
    let sha = store.put("m", md5, b"module bytes", true).expect("put");
    assert_eq!(store.read(sha).expect("read"), b"module bytes");
    assert_eq!(store.find_by_md5(md5), Some(sha));
    assert_eq!(store.known_md5s("m"), vec![md5]);
    std::fs::write(
        dir.path().join("objects").join(sha.to_hex()),
        b"module byte",
    )
    .expect("damage");
    assert!(matches!(
        store.read(sha),
        Err(SnapshotError::CorruptObject { .. })
    ));
    assert!(store.find_by_md5(md5).is_none());
    // Putting it again repairs it.
    store.put("m", md5, b"module bytes", false).expect("put");
    assert_eq!(store.find_by_md5(md5), Some(sha));
}

#[test]
fn truncated_manifests_are_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, m) = saved_one(dir.path());
    assert_eq!(store.list().expect("list"), vec![m.clone()]);
    let path = dir.path().join("snapshots").join("a.json");
    let text = std::fs::read(&path).expect("read");
    std::fs::write(&path, &text[..text.len() / 2]).expect("truncate");
    assert!(matches!(
        store.list(),
        Err(SnapshotError::CorruptManifest { .. })
    ));
}

#[test]
fn leftover_temporary_files_are_ignored_then_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, m) = saved_one(dir.path());
    // Left by a writer that cannot exist (above Linux's highest pid, 2^22),
    // not one a busy machine may have: pid 99 was alive once here.
    let stray = dir.path().join("snapshots").join(".tmp-4194305-b.json");
    std::fs::write(&stray, b"{\"id\": \"b\", \"crea").expect("stray");
    assert_eq!(store.list().expect("stray ignored"), vec![m]);
    let lock = store.lock(|| {}).expect("lock");
    assert!(!stray.exists(), "the lock's holder removes temporaries");
    drop(lock);
}

#[test]
fn a_second_lock_waits_for_the_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::new(dir.path());
    let first = store.lock(|| panic!("nobody holds it")).expect("lock");
    let (tx, rx) = std::sync::mpsc::channel();
    let other = store.clone();
    let waiter = std::thread::spawn(move || {
        let _second = other.lock(|| tx.send("waiting").expect("send"));
    });
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(10)),
        Ok("waiting")
    );
    drop(first);
    waiter
        .join()
        .expect("second lock taken once the first is gone");
}

#[test]
fn legacy_manifests_are_read() {
    let text = r#"{"id": "20261123T232943Z-957", "created": 5,
        "nodes": {"a@h": [{"module": "m", "state": "restorable", "md5": "aa", "sha256": "bb"},
                          {"module": "n", "state": "absent"},
                          {"module": "o", "state": "unrestorable", "md5": "cc"}]},
        "rolled_back": true}"#;
    let m: Manifest = serde_json::from_str(text).expect("legacy parses");
    let r = &m.nodes["a@h"];
    assert_eq!(r.outcome, NodeOutcome::RolledBack);
    assert_eq!(r.modules[0].prior.object(), Some("bb"));
    assert_eq!(r.modules[1].prior, Prior::Absent);
    assert!(!r.modules[2].prior.restorable());
}

#[test]
fn candidates_are_per_node_and_skip_what_was_not_applied() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::new(dir.path());
    let applied = |m| record(NodeOutcome::Applied, m, Prior::Absent, "00");
    store
        .save(&manifest(
            "1",
            1,
            &[("a", applied("x")), ("b", applied("x"))],
        ))
        .expect("save");
    store
        .save(&manifest(
            "2",
            2,
            &[
                (
                    "a",
                    record(NodeOutcome::RolledBack, "y", Prior::Absent, "00"),
                ),
                ("b", record(NodeOutcome::Refused, "y", Prior::Absent, "00")),
            ],
        ))
        .expect("save");
    let found = store
        .rollback_candidates(&["a".into(), "b".into(), "c".into()])
        .expect("list");
    assert_eq!(found["a"].id, "1");
    assert_eq!(found["b"].id, "1");
    assert!(!found.contains_key("c"));
}

#[test]
fn pruning_keeps_the_newest_per_node_and_what_they_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::new(dir.path());
    let mut shas = Vec::new();
    for i in 0..4u8 {
        let md5 = Md5([i; 16]);
        let sha = store.put("m", md5, &[i; 8], false).expect("put");
        shas.push(sha);
        let prior = Prior::Loaded {
            md5: md5.to_hex(),
            sha256: Some(sha.to_hex()),
        };
        let node = if i == 0 { "lonely" } else { "busy" };
        store
            .save(&manifest(
                &format!("{i}"),
                u64::from(i),
                &[(node, record(NodeOutcome::Applied, "m", prior, "ff"))],
            ))
            .expect("save");
    }
    assert!(store.prune_due(2));
    let pruned = store.prune(2).expect("prune");
    assert!(
        !store.prune_due(2),
        "3 left for 2 nodes: nothing more to prune yet"
    );
    assert_eq!(
        pruned.snapshots, 1,
        "busy keeps 2 of 3; lonely keeps its one"
    );
    let ids: Vec<String> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["0", "2", "3"]);
    assert!(store.read(shas[1]).is_err(), "its object went with it");
    assert!(store.find_by_md5(Md5([1; 16])).is_none());
    let known = store.known_md5s("m");
    assert!(
        !known.contains(&Md5([1; 16])),
        "pruned from the module's index"
    );
    assert!(known.contains(&Md5([3; 16])));
    for i in [0, 2, 3] {
        assert!(store.read(shas[i]).is_ok());
    }
}

/// Every file under `dir`, with its inode and size: a rewrite shows as a
/// new inode (files are written under a temporary name and renamed).
fn files_with_inodes(dir: &Path) -> BTreeMap<PathBuf, (u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    for path in files_in(dir).expect("list") {
        let meta = std::fs::metadata(&path).expect("stat");
        if meta.is_dir() {
            out.extend(files_with_inodes(&path));
        } else {
            out.insert(path, (meta.ino(), meta.len()));
        }
    }
    out
}

fn believed_absent(node: String) -> (String, BTreeMap<String, Option<String>>) {
    (node, BTreeMap::from([("m".into(), Some("absent".into()))]))
}

#[test]
fn a_run_rewrites_only_its_own_nodes_beliefs() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::new(dir.path());
    store.update_beliefs(
        (0..200)
            .map(|i| believed_absent(format!("n{i}@h")))
            .collect(),
    );
    let before = files_with_inodes(dir.path());
    store.update_beliefs([believed_absent("n7@h".into())].into());
    let after = files_with_inodes(dir.path());
    let rewritten: Vec<_> = after
        .iter()
        .filter(|(path, file)| before.get(*path) != Some(file))
        .collect();
    assert_eq!(rewritten.len(), 1, "{rewritten:?}");
    let (path, (_, size)) = rewritten[0];
    assert!(
        *size < 100,
        "{} holds other nodes: {size} bytes",
        path.display()
    );
}

#[test]
fn pruning_forgets_nodes_unseen_for_a_month() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::new(dir.path());
    store.update_beliefs(
        ["gone@h", "here@h"]
            .map(|n| believed_absent(n.into()))
            .into(),
    );
    let month_ago = std::time::SystemTime::now() - FORGET_AFTER - Duration::from_secs(60);
    let gone = dir.path().join("beliefs").join("gone@h.json");
    std::fs::File::options()
        .write(true)
        .open(&gone)
        .and_then(|f| f.set_modified(month_ago))
        .expect("age the file");
    let ports = ["gone@h", "here@h", "never@h"].map(|n| (n.to_string(), 4000));
    store.remember_ports(&ports.into());
    std::fs::write(dir.path().join("beliefs.json"), b"{}").expect("legacy file");

    let pruned = store.prune(10).expect("prune");
    assert_eq!(pruned.nodes, 1);
    assert!(store.beliefs_of("gone@h").is_empty());
    assert_eq!(store.beliefs_of("here@h").len(), 1);
    let left: Vec<String> = store.ports().into_keys().collect();
    assert_eq!(left, ["here@h"], "ports only of nodes still known");
    assert!(!dir.path().join("beliefs.json").exists());
}

#[test]
fn only_the_temporaries_of_writers_that_are_gone_are_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::new(dir.path());
    let mut gone = std::process::Command::new("true").spawn().expect("true");
    let gone_pid = gone.id();
    gone.wait().expect("reaped");
    let ours = std::process::id();
    let live = dir.path().join(format!(".tmp-{ours}-ports.json"));
    let dead = dir.path().join(format!(".tmp-{gone_pid}-ports.json"));
    let odd = dir.path().join(".tmp-garbage");
    for f in [&live, &dead, &odd] {
        std::fs::write(f, b"{").expect("write");
    }
    let _lock = store.lock(|| {}).expect("lock");
    assert!(live.exists(), "a live writer's file was removed");
    assert!(!dead.exists());
    assert!(!odd.exists());
}
