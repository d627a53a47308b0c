//! `verify`, `gc` and `compact`, including a store damaged on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{BIN, Env, bytes, wait_until_holds};

const MARKER: &[u8; 32] = b"KEYSTONE-CLI-TEST-CORRUPT-MARKER";

/// Flips one byte inside every copy of the marker in the store file.
fn corrupt_store(env: &Env) -> usize {
    let mut file = std::fs::read(&env.store).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + MARKER.len() <= file.len() {
        if &file[i..i + MARKER.len()] == MARKER {
            file[i + 5] ^= 0xff;
            hits += 1;
            i += MARKER.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(&env.store, file).unwrap();
    hits
}

#[test]
fn verify_a_clean_store() {
    let env = Env::with_bucket();
    env.write("f", &bytes(2_000_000, 1));
    env.ok(&["put", "f", "bkt/a"]);
    env.ok(&["put", "f", "bkt/b"]);
    let out = env.ok(&["verify"]);
    assert_eq!(
        out,
        "checked 2 objects (3.81 MiB): 0 corrupt, 0 orphaned chunk segments, storage engine check not run (--engine runs it)\n"
    );
    let out = env.ok(&["verify", "--engine"]);
    assert!(out.ends_with("storage engine check ok\n"), "{out}");
    // The engine check ran on a copy, which is gone.
    let names: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("keystone-verify")), "{names:?}");
    let out = env.ok(&["verify", "bkt"]);
    assert!(out.starts_with("checked 2 objects"), "{out}");
    let e = env.fails(&["verify", "nope"], 1);
    assert!(e.contains("no such bucket: \"nope\""), "{e}");
}

#[test]
fn verify_lists_corrupt_objects_and_exits_1() {
    let env = Env::with_bucket();
    env.write("good", &bytes(100_000, 2));
    env.ok(&["put", "good", "bkt/good.bin"]);
    env.write("bad", &MARKER.repeat(4096)); // 128 KiB: stored in chunks, not inline
    env.ok(&["put", "bad", "bkt/bad.bin"]);
    assert!(corrupt_store(&env) > 0);

    let out = env.cmd(&["verify"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let corrupt: Vec<&str> = stdout.lines().filter(|l| l.starts_with("CORRUPT")).collect();
    assert_eq!(corrupt.len(), 1, "{stdout}");
    assert!(corrupt[0].starts_with("CORRUPT  bkt/bad.bin: "), "{stdout}");
    assert!(stdout.contains("checked 2 objects") && stdout.contains("1 corrupt"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("keystone: verification failed: 1 object corrupt"), "{stderr}");
    // The engine's own check (run on a copy) fails too.
    let engine = env.cmd(&["verify", "--engine"]).output().unwrap();
    assert_eq!(engine.status.code(), Some(1));
    let stderr = String::from_utf8(engine.stderr).unwrap();
    assert!(stderr.contains("1 object corrupt, the storage engine's integrity check failed"), "{stderr}");
    // Verifying does not make things worse: the store still opens and verifies the same.
    assert_eq!(env.ok(&["ls", "bkt"]).lines().count(), 2);
    let again = env.cmd(&["verify", "bkt"]).output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8(again.stdout).unwrap().contains("CORRUPT  bkt/bad.bin: "));

    // Reading it fails cleanly and leaves no file behind; the good object still reads.
    let e = env.fails(&["get", "bkt/bad.bin", "out.bin"], 1);
    assert!(e.contains("corrupted data"), "{e}");
    assert!(!env.path("out.bin").exists());
    let names: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".part")), "{names:?}");
    let e = env.fails(&["cat", "bkt/bad.bin"], 1);
    assert!(e.contains("corrupted data"), "{e}");
    env.ok(&["get", "bkt/good.bin", "good.out"]);
    assert_eq!(std::fs::read(env.path("good.out")).unwrap(), bytes(100_000, 2));
}

/// A damaged object record (here its content type no longer decodes) can be cleared as in
/// S3: `rm` deletes it, and the chunks it referred to are freed, so `verify` is clean again.
#[test]
fn rm_clears_an_object_whose_record_is_damaged() {
    let env = Env::with_bucket();
    env.write("good", &bytes(100_000, 2));
    env.ok(&["put", "good", "bkt/good.bin"]);
    let content_type = std::str::from_utf8(MARKER).unwrap();
    env.ok(&["put", "good", "bkt/bad.bin", "--content-type", content_type]);
    assert_eq!(corrupt_store(&env), 1, "the marker is in the manifest only");
    let e = env.fails(&["stat", "bkt/bad.bin"], 1);
    assert!(e.contains("corrupted data"), "{e}");
    let out = env.cmd(&["verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("1 corrupt, 0 orphaned chunk segments"), "{stdout}");

    env.ok(&["rm", "bkt/bad.bin"]);
    let out = env.ok(&["verify"]);
    assert!(out.starts_with("checked 1 object (97.66 KiB): 0 corrupt, 0 orphaned chunk segments"), "{out}");
    let used = keystone::Datastore::open(&env.store).unwrap().bucket("bkt").unwrap().head("good.bin").unwrap();
    assert_eq!(used.size, 100_000);
}

/// `verify --remove-corrupt` deletes what it finds corrupt and exits 0; `verify` is then clean.
#[test]
fn verify_remove_corrupt_deletes_the_corrupt_objects() {
    let env = Env::with_bucket();
    env.write("good", &bytes(100_000, 2));
    env.ok(&["put", "good", "bkt/good.bin"]);
    env.write("bad", &MARKER.repeat(4096)); // damaged chunks
    env.ok(&["put", "bad", "bkt/chunks.bin"]);
    let content_type = std::str::from_utf8(MARKER).unwrap();
    env.ok(&["put", "good", "bkt/manifest.bin", "--content-type", content_type]);
    assert!(corrupt_store(&env) > 1);
    let out = env.ok(&["verify", "--remove-corrupt"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("CORRUPT  ")).count(), 2, "{out}");
    assert!(lines.contains(&"REMOVED  bkt/chunks.bin") && lines.contains(&"REMOVED  bkt/manifest.bin"), "{out}");
    assert!(out.contains("removed 2 corrupt objects; verifying again"), "{out}");
    assert!(out.ends_with("checked 1 object (97.66 KiB): 0 corrupt, 0 orphaned chunk segments, storage engine check not run (--engine runs it)\n"), "{out}");
    let out = env.ok(&["verify"]);
    assert!(out.starts_with("checked 1 object (97.66 KiB): 0 corrupt, 0 orphaned chunk segments"), "{out}");
    let used = keystone::Datastore::open(&env.store).unwrap().bucket("bkt").unwrap().head("good.bin").unwrap();
    assert_eq!(used.size, 100_000);
}

#[test]
fn gc_aborts_old_multipart_uploads_and_reports_sizes() {
    let env = Env::with_bucket();
    let db = keystone::Datastore::open(&env.store).unwrap();
    let b = db.bucket("bkt").unwrap();
    let id = b.create_upload("big", keystone::ObjectMeta::default()).unwrap();
    b.upload_part(&id, 1, &bytes(3 * 1024 * 1024, 5)[..]).unwrap();
    drop((b, db));

    let out = env.ok(&["gc"]);
    assert!(out.contains("reclaimed 0 streaming uploads left unfinished by a stopped process"), "{out}");
    assert!(!out.contains("aborted"), "{out}");
    let sizes = predicates::str::is_match(r"store file \S+: \d+\.\d\d MiB before, \d+\.\d\d MiB after").unwrap();
    assert!(predicates::Predicate::eval(&sizes, &out), "{out}");
    // The upload is still there, so the bucket is not empty.
    env.fails(&["rb", "bkt"], 1);

    let out = env.ok(&["gc", "--abort-uploads-older-than", "1d"]);
    assert!(out.starts_with("aborted 0 stale multipart uploads\n"), "{out}");
    let out = env.ok(&["gc", "--abort-uploads-older-than", "0s"]);
    assert!(out.starts_with("aborted 1 stale multipart upload and freed its parts\n"), "{out}");
    env.ok(&["verify"]);
    env.ok(&["rb", "bkt"]);
}

#[test]
fn gc_says_what_each_number_counts() {
    let env = Env::with_bucket();
    let db = keystone::Datastore::open(&env.store).unwrap();
    let b = db.bucket("bkt").unwrap();
    let id = b.create_upload("big", keystone::ObjectMeta::default()).unwrap();
    b.upload_part(&id, 1, &bytes(1024 * 1024, 7)[..]).unwrap();
    drop((b, db));
    // One multipart upload aborted; no streaming upload was left behind. The two counts are
    // of different things and say so, rather than "aborted 1" then "reclaimed 0 uploads".
    let out = env.ok(&["gc", "--abort-uploads-older-than", "0s"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "aborted 1 stale multipart upload and freed its parts", "{out}");
    assert!(lines[1].starts_with("reclaimed 0 streaming uploads left unfinished by a stopped process ("), "{out}");
    assert!(!out.contains("abandoned uploads"), "{out}");
}

#[test]
fn an_upload_killed_midway_is_reclaimed() {
    let env = Env::with_bucket();
    let mut child = Command::new(BIN)
        .args(["put", "-", "bkt/never"])
        .env("KEYSTONE_STORE", &env.store)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // More than one upload batch (8 MiB), so some chunks are committed before the kill.
    for i in 0..12 {
        stdin.write_all(&bytes(1024 * 1024, i)).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    // Whether the open finds staged chunks to reclaim or the engine already rolled them back
    // with the unfinished commit depends on how far the upload got; either way nothing is left.
    // So does whether the journal holds durable commits for the open to replay, which it then
    // says, on one line of standard error.
    let out = env.cmd(&["gc"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let replayed = stderr.lines().count() == 1 && stderr.contains("was not closed cleanly; replayed");
    assert!(stderr.is_empty() || replayed, "{stderr}");
    let out = env.ok(&["verify"]);
    assert!(out.contains("0 corrupt, 0 orphaned chunk segments"), "{out}");
    env.fails(&["stat", "bkt/never"], 1);
}

#[test]
fn compact_shrinks_the_file_after_deletes() {
    let env = Env::with_bucket();
    env.write("f", &bytes(12 * 1024 * 1024, 6));
    env.ok(&["put", "f", "bkt/big"]);
    env.ok(&["rm", "bkt/big"]);
    let before = std::fs::metadata(&env.store).unwrap().len();
    let out = env.ok(&["compact"]);
    let after = std::fs::metadata(&env.store).unwrap().len();
    assert!(after < before, "{before} -> {after}: {out}");
    assert!(out.starts_with("compacted ") && out.contains(" before, ") && out.contains(" smaller)"), "{out}");
    // The sizes are the file's, before it was opened and after it was closed.
    let shown = |n: u64| indicatif::HumanBytes(n).to_string();
    assert!(out.contains(&format!(": {} before, {} after", shown(before), shown(after))), "{before} -> {after}: {out}");
    env.ok(&["verify"]);
}

#[test]
fn bucket_commands_take_ks_addresses() {
    let env = Env::new();
    env.ok(&["mb", "ks://scheme"]);
    assert!(env.ok(&["ls"]).contains("scheme"));
    env.ok(&["verify", "ks://scheme"]);
    let e = env.fails(&["rb", "scheme/key"], 2);
    assert!(e.contains("expected a bucket name"), "{e}");
    env.ok(&["rb", "ks://scheme/"]);
    assert!(!env.ok(&["ls"]).contains("scheme"));
}

#[test]
fn quiet_suppresses_summaries_but_not_data_or_errors() {
    let env = Env::new();
    assert_eq!(env.ok(&["--quiet", "mb", "bkt"]), "");
    env.write("f", b"payload");
    assert_eq!(env.ok(&["put", "-q", "f", "bkt/f"]), "");
    assert_eq!(env.ok(&["cat", "-q", "bkt/f"]), "payload");
    assert!(env.ok(&["ls", "-q", "bkt"]).ends_with("  f\n"));
    env.fails(&["-q", "cat", "bkt/missing"], 1);
}

fn interrupt(child: &std::process::Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_stops_an_upload_and_stores_nothing() {
    let env = Env::with_bucket();
    let mut child = Command::new(BIN)
        .args(["put", "-", "bkt/partial"])
        .env("KEYSTONE_STORE", &env.store)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes(1024 * 1024, 1)).unwrap();
    assert!(wait_until_holds(&mut child, &env.store));
    interrupt(&child);
    // The upload notices at its next read; it then exits and our writes fail.
    let chunk = bytes(1024 * 1024, 2);
    for _ in 0..256 {
        if stdin.write_all(&chunk).is_err() {
            break;
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "keystone: interrupted\n");
    env.fails(&["stat", "bkt/partial"], 1);
    assert!(env.ok(&["verify"]).contains("0 corrupt, 0 orphaned chunk segments"));
}

#[test]
fn ctrl_c_stops_a_download() {
    stop_a_download("-INT", 130, "keystone: interrupted\n");
}

/// SIGTERM (`kill`, `timeout`, a service manager) stops a transfer as Ctrl-C does — a file
/// download left its full-size temporary file behind — and exits 143, as a shell reports it.
#[test]
fn sigterm_stops_a_download_as_ctrl_c_does() {
    stop_a_download("-TERM", 143, "keystone: terminated\n");
}

/// `kill SIGNAL` during `get KEY -`: the download stops mid-object with exit `code`, saying `said`.
fn stop_a_download(signal: &str, code: i32, said: &str) {
    let env = Env::with_bucket();
    env.write("big", &bytes(8 * 1024 * 1024, 3));
    env.ok(&["put", "big", "bkt/big"]);
    // Nobody reads its stdout yet, so it blocks once the pipe is full, mid-object.
    let mut child = Command::new(BIN)
        .args(["get", "bkt/big", "-"])
        .env("KEYSTONE_STORE", &env.store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until_holds(&mut child, &env.store));
    let status = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), said);
    assert!(out.stdout.len() < 8 * 1024 * 1024);
}

#[test]
fn an_interrupted_tree_upload_names_each_cause_once() {
    let env = Env::with_bucket();
    // A large sparse file: quick to create, and its upload is still running when Ctrl-C comes.
    std::fs::create_dir(env.path("src")).unwrap();
    std::fs::File::create(env.path("src/a-big.bin")).unwrap().set_len(4 << 30).unwrap();
    env.write("src/b-small.txt", b"small");
    let mut child = Command::new(BIN)
        .args(["cp", "-r", "src", "bkt/t/"])
        .current_dir(env.dir.path())
        .env("KEYSTONE_STORE", &env.store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until_holds(&mut child, &env.store));
    std::thread::sleep(std::time::Duration::from_millis(100));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.ends_with("keystone: interrupted\n"), "{stderr}");
    // The file cut off is reported once, its cause not repeated.
    let first = stderr.lines().next().unwrap();
    assert!(first.contains("src/a-big.bin") && first.ends_with("interrupted"), "{stderr}");
    assert!(!first.contains("interrupted: interrupted"), "{stderr}");
    env.fails(&["stat", "bkt/t/a-big.bin"], 1);
}

/// `salvage`: a store with a damaged leaf of objects (which no command can read, delete or
/// compact away) is copied into a new store with everything else; the lost stretch is named.
#[test]
fn salvage_copies_what_can_be_read_into_a_new_store() {
    let env = Env::new();
    let value = |i: u32| {
        format!("object {i:04} ....................................................................").into_bytes()
    };
    {
        let db = keystone::Datastore::open(&env.store).unwrap();
        db.create_bucket("bkt").unwrap();
        db.transaction(|tx| {
            let b = tx.bucket("bkt")?;
            for i in 0..2000u32 {
                b.put_bytes(&format!("k{i:04}"), value(i))?;
            }
            Ok::<_, keystone::Error>(())
        })
        .unwrap();
    }
    // A healthy store first: everything, exit 0.
    let out = env.ok(&["salvage", "whole.keystone"]);
    assert!(out.contains("salvaged 2000 objects") && out.contains("0 unreadable stretches"), "{out}");

    // The type byte of the leaf page holding object 1000.
    let mut file = std::fs::read(&env.store).unwrap();
    let at = file.windows(11).position(|w| w == &value(1000)[..11]).unwrap();
    let mut page = at / 4096 * 4096;
    while !(file[page] == 1 && (file[page + 1] == 0 || file[page + 1] == 0xff)) {
        page -= 4096;
    }
    file[page] = 0xff;
    std::fs::write(&env.store, &file).unwrap();
    env.fails(&["cat", "bkt/k1000"], 1);

    let out = env.cmd(&["salvage", "rescued.keystone"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.starts_with("keystone: salvage lost data: rescued.keystone is a consistent store"), "{stderr}");
    let unreadable: Vec<&str> = stdout.lines().filter(|l| l.starts_with("UNREADABLE")).collect();
    assert_eq!(unreadable.len(), 1, "{stdout}");
    assert!(unreadable[0].contains("of bucket \"bkt\""), "{stdout}");
    assert_eq!(std::fs::read(&env.store).unwrap(), file, "the damaged store is only read");

    // The new store verifies clean and holds every object but the damaged page's.
    let rescued = env.path("rescued.keystone");
    let out = env.ok(&["--store", rescued.to_str().unwrap(), "verify"]);
    assert!(out.contains(" 0 corrupt, 0 orphaned"), "{out}");
    let listed = env.ok(&["--store", rescued.to_str().unwrap(), "ls", "bkt"]);
    let kept = listed.lines().count();
    assert!((1900..2000).contains(&kept), "{kept} kept\n{listed}");
    assert_eq!(env.ok(&["--store", rescued.to_str().unwrap(), "cat", "bkt/k0000"]).as_bytes(), value(0));

    // Never into an existing file.
    let e = env.fails(&["salvage", "rescued.keystone"], 1);
    assert!(e.contains("rescued.keystone") && e.contains("exists"), "{e}");
}

/// A store that was not closed cleanly needs a recovery, which writes: salvage, which only
/// reads, says how to recover a copy instead of opening the damaged original for writing.
#[test]
fn salvage_of_a_store_not_closed_cleanly_says_to_recover_a_copy() {
    let env = Env::new();
    let db = keystone::Datastore::open(&env.store).unwrap();
    db.create_bucket("bkt").unwrap().put_bytes("k", b"v").unwrap();
    let crashed = env.path("crashed.keystone");
    std::fs::copy(&env.store, &crashed).unwrap();
    drop(db);
    let e = env.fails(&["--store", crashed.to_str().unwrap(), "salvage", "out.keystone"], 1);
    assert!(e.contains("not closed cleanly") && e.contains("recover the copy"), "{e}");
    assert!(!env.path("out.keystone").exists());
}

/// A store closed and then cut short (a copy that stopped): reading commands call it damaged,
/// naming both lengths (they called it not closed cleanly, and recovering it failed), and
/// salvage copies what lies before the cut, saying the source was cut short.
#[test]
fn a_store_cut_short_is_named_so_and_salvaged_up_to_the_cut() {
    let env = Env::new();
    {
        let db = keystone::Datastore::open(&env.store).unwrap();
        let b = db.create_bucket("bkt").unwrap();
        for i in 0..3u8 {
            b.put_bytes(&format!("f{i}"), vec![i; 300_000]).unwrap();
        }
    }
    let whole = std::fs::read(&env.store).unwrap();
    let cut = whole.len() * 3 / 4;
    std::fs::write(&env.store, &whole[..cut]).unwrap();
    let e = env.fails(&["ls", "bkt"], 1);
    assert!(e.contains(&format!("is cut short: {cut} bytes of the {}", whole.len())), "{e}");
    assert!(!e.contains("not closed cleanly"), "{e}");
    let out = env.cmd(&["salvage", "rescued.keystone"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.starts_with("CUT SHORT   "), "{stdout}");
    let rescued = env.path("rescued.keystone");
    assert_eq!(env.ok(&["--store", rescued.to_str().unwrap(), "cat", "bkt/f0"]).len(), 300_000);
    let out = env.ok(&["--store", rescued.to_str().unwrap(), "verify"]);
    assert!(out.contains(" 0 corrupt, 0 orphaned"), "{out}");
}

/// A process killed while it creates a new store (`mb` on a path with no store) never leaves a
/// file that later opens refuse. Before stores were created under a temporary name, 15 of 200
/// such kills left a half-made redb file under the store's name (no magic number yet, or no
/// Keystone table), which every later command refused until it was deleted by hand.
/// The kills land at delays spread over the ~4 ms a creation takes.
#[test]
fn a_store_killed_while_being_created_still_opens() {
    let env = Env::new();
    for i in 0..120u64 {
        let _ = std::fs::remove_file(&env.store);
        let mut child = Command::new(BIN)
            .args(["-q", "mb", "bbb"])
            .env("KEYSTONE_STORE", &env.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(i * 50));
        let _ = child.kill();
        child.wait().unwrap();
        let out = env.cmd(&["-q", "mb", "ccc"]).output().unwrap();
        assert!(out.status.success(), "after a kill at {} µs: {}", i * 50, String::from_utf8_lossy(&out.stderr));
    }
    // Creating the store again removes what the kills left beside it once it is old enough
    // that no creation can still be under way (a minute), on Unix.
    #[cfg(unix)]
    {
        let names = |dir: &std::path::Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        for name in names(env.dir.path()).iter().filter(|n| n.starts_with(".store.redb.creating-")) {
            let file = std::fs::File::options().write(true).open(env.path(name)).unwrap();
            file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_mins(2)).unwrap();
        }
        std::fs::remove_file(&env.store).unwrap();
        env.ok(&["-q", "mb", "ddd"]);
        assert_eq!(names(env.dir.path()), ["store.redb"]);
    }
}

/// `keystone verify | head -n 1` (or any reader that stops early) on a store with corrupt
/// objects exits 1. It exited 0: the first line that met the closed pipe ended the command
/// "quietly" as a success, so `set -o pipefail` scripts saw a clean store.
#[test]
fn verify_of_a_corrupt_store_does_not_exit_0_when_stdout_is_closed() {
    let env = Env::with_bucket();
    env.write("good", &bytes(100_000, 2));
    env.ok(&["put", "good", "bkt/good.bin"]);
    env.write("bad", &MARKER.repeat(4096));
    env.ok(&["put", "bad", "bkt/bad.bin"]);
    assert!(corrupt_store(&env) > 0);
    assert_eq!(env.cmd(&["verify"]).output().unwrap().status.code(), Some(1));
    let (code, stderr) = common::run_with_stdout_closed(&env, &["verify"]);
    eprintln!("exit {code:?}, stderr {stderr:?}");
    assert_eq!(code, Some(1), "verification of a corrupt store reported success");
}
