//! `cp`: trees and single files, up, down and within the store, compared byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Env, bytes, tree};

/// A tree with nested directories, empty files, odd names and a file of a few MiB.
fn make_tree(env: &Env, root: &str) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("readme.md", b"# hello\n".to_vec()),
        ("empty", Vec::new()),
        ("a/empty.txt", Vec::new()),
        ("a/b/c/deep.bin", bytes(70_000, 1)),
        ("a/b/big.dat", bytes(3 * 1024 * 1024 + 123, 2)),
        ("sp ace/ünï códe.txt", b"names with spaces and accents".to_vec()),
        ("z/one-chunk-exactly", bytes(1024 * 1024, 3)),
    ];
    for (rel, data) in &files {
        env.write(&format!("{root}/{rel}"), data);
    }
    let mut expected: Vec<(String, Vec<u8>)> = files.into_iter().map(|(r, d)| (r.to_owned(), d)).collect();
    expected.sort();
    expected
}

#[test]
fn tree_round_trip_keeps_every_byte_and_relative_path() {
    let env = Env::with_bucket();
    let expected = make_tree(&env, "src");
    let out = env.ok(&["cp", "-r", "./src", "bkt/backup/2024"]);
    assert!(out.starts_with("uploaded 7 files (4.07 MiB) to bkt/backup/2024/"), "{out}");

    let listed = env.ok(&["ls", "-r", "--json", "bkt/backup/2024/"]);
    let mut keys: Vec<String> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    let want: Vec<String> = expected.iter().map(|(r, _)| format!("backup/2024/{r}")).collect();
    assert_eq!(keys, want);
    let md = env.ok(&["stat", "--json", "bkt/backup/2024/readme.md"]);
    assert!(md.contains("\"content_type\":\"text/markdown\""), "{md}");

    // Down again, into a directory that does not exist yet; `backup/2024` means `backup/2024/`.
    let out = env.ok(&["cp", "-r", "bkt/backup/2024", "restored"]);
    assert!(out.starts_with("downloaded 7 files (4.07 MiB) to restored"), "{out}");
    assert_eq!(tree(&env.path("restored")), expected);

    // Into an existing directory, with the prefix written with its slash.
    std::fs::create_dir(env.path("again")).unwrap();
    env.ok(&["cp", "-r", "bkt/backup/2024/a/", "again"]);
    let sub: Vec<(String, Vec<u8>)> =
        expected.iter().filter_map(|(r, d)| r.strip_prefix("a/").map(|r| (r.to_owned(), d.clone()))).collect();
    assert_eq!(tree(&env.path("again")), sub);
}

#[test]
fn tree_upload_to_the_bucket_root_and_download_of_a_whole_bucket() {
    let env = Env::with_bucket();
    let expected = make_tree(&env, "src");
    env.ok(&["cp", "-r", "src", "bkt"]);
    env.ok(&["stat", "bkt/a/b/big.dat"]);
    env.ok(&["cp", "-r", "bkt", "./whole"]);
    assert_eq!(tree(&env.path("whole")), expected);
}

#[test]
fn tree_copy_within_the_store() {
    let env = Env::with_bucket();
    env.ok(&["mb", "other"]);
    let expected = make_tree(&env, "src");
    env.ok(&["cp", "-r", "src", "bkt/v1/"]);
    let out = env.ok(&["cp", "-r", "ks://bkt/v1", "ks://other/v2"]);
    assert!(out.starts_with("copied 7 files (4.07 MiB) to other/v2/"), "{out}");
    env.ok(&["cp", "-r", "other/v2/", "./down"]);
    assert_eq!(tree(&env.path("down")), expected);
    // A single object within the store, into a prefix and to a key.
    env.ok(&["cp", "ks://bkt/v1/readme.md", "ks://other/docs/"]);
    env.ok(&["cp", "ks://bkt/v1/readme.md", "ks://other/renamed.md"]);
    env.cmd(&["cat", "other/docs/readme.md"]).assert().success().stdout("# hello\n");
    env.cmd(&["cat", "other/renamed.md"]).assert().success().stdout("# hello\n");
}

#[test]
fn single_files_copy_the_same_way_with_or_without_r() {
    let env = Env::with_bucket();
    let data = bytes(2 * 1024 * 1024 + 1, 4);
    env.write("one.bin", &data);
    env.ok(&["cp", "one.bin", "bkt/files/one.bin"]);
    env.ok(&["cp", "-r", "one.bin", "bkt/files/"]);
    env.ok(&["cp", "-r", "./one.bin", "bkt/files/two.bin"]);
    assert_eq!(env.ok(&["ls", "bkt/files/"]).lines().count(), 2);

    env.ok(&["cp", "bkt/files/one.bin", "copy1"]);
    env.ok(&["cp", "-r", "bkt/files/two.bin", "copy2"]);
    std::fs::create_dir(env.path("d")).unwrap();
    env.ok(&["cp", "bkt/files/two.bin", "d"]);
    env.ok(&["cp", "bkt/files/one.bin", "./"]);
    for f in ["copy1", "copy2", "d/two.bin", "one.bin"] {
        assert_eq!(std::fs::read(env.path(f)).unwrap(), data, "{f}");
    }
    env.write("empty", b"");
    env.ok(&["cp", "empty", "bkt/empty"]);
    env.ok(&["cp", "bkt/empty", "empty.out"]);
    assert_eq!(std::fs::read(env.path("empty.out")).unwrap(), b"");
}

#[test]
fn cp_failures() {
    let env = Env::with_bucket();
    make_tree(&env, "src");
    let e = env.fails(&["cp", "src", "bkt/x"], 1);
    assert!(e.contains("src is a directory") && e.contains("cp -r"), "{e}");
    let e = env.fails(&["cp", "./missing", "bkt/x"], 1);
    assert!(e.contains("cannot read ./missing"), "{e}");
    let e = env.fails(&["cp", "-r", "src", "nobucket/x"], 1);
    assert!(e.contains("no such bucket: \"nobucket\""), "{e}");
    let e = env.fails(&["cp", "-r", "bkt/nothing", "out"], 1);
    assert!(e.contains("no objects under bkt/nothing/"), "{e}");
    let e = env.fails(&["cp", "bkt/nothing", "out"], 1);
    assert!(e.contains("no such key: \"nothing\""), "{e}");
    env.ok(&["cp", "-r", "src", "bkt/t"]);
    let e = env.fails(&["cp", "bkt/t", "out"], 1);
    assert!(e.contains("there are objects under bkt/t/"), "{e}");
    let e = env.fails(&["cp", "bkt/t/", "out"], 1);
    assert!(e.contains("is a prefix"), "{e}");
    env.write("afile", b"x");
    let e = env.fails(&["cp", "-r", "bkt/t", "afile"], 1);
    assert!(e.contains("afile exists and is not a directory"), "{e}");
    env.fails(&["cp", "./a", "./b"], 2);
    env.fails(&["cp", "-", "bkt/x"], 2);
    env.fails(&["cp", "src"], 2);
    assert!(!env.path("out").exists());
}

#[test]
fn unreadable_files_in_a_tree_are_reported_and_the_rest_copied() {
    let env = Env::with_bucket();
    env.write("src/good.txt", b"good");
    env.write("src/sub/also-good.txt", b"also");
    // A link to itself cannot be read (root reads files of any mode).
    #[cfg(unix)]
    std::os::unix::fs::symlink(env.path("src/loop"), env.path("src/loop")).unwrap();
    let out = env.cmd(&["cp", "-r", "src", "bkt/t/"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].contains("src/loop") && lines[0].contains("cannot read"), "{stderr}");
    assert_eq!(lines[1], "keystone: 1 of 3 files failed");
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("uploaded 2 files"));
    env.cmd(&["cat", "bkt/t/good.txt"]).assert().success().stdout("good");
    env.cmd(&["cat", "bkt/t/sub/also-good.txt"]).assert().success().stdout("also");
}

/// As `aws s3 cp --recursive` ("Skipping file ... File does not exist.", exit 2): a symbolic
/// link to nothing is skipped with a warning, the rest is copied, and the exit code (3) says
/// that something was left out.
#[cfg(unix)]
#[test]
fn a_dangling_symbolic_link_in_a_tree_is_skipped_with_a_warning() {
    let env = Env::with_bucket();
    env.write("src/good.txt", b"good");
    env.write("src/sub/also-good.txt", b"also");
    std::os::unix::fs::symlink(env.path("does-not-exist"), env.path("src/dangling")).unwrap();
    // A name that would act on the terminal is shown escaped.
    std::os::unix::fs::symlink("nowhere", env.path("src/sub/odd\x1b[2Jname")).unwrap();
    let out = env.cmd(&["cp", "-r", "src", "bkt/t/"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    let want = format!(
        "keystone: skipping src/dangling: it is a symbolic link to {}, which does not exist",
        env.path("does-not-exist").display()
    );
    assert_eq!(lines[0], want, "{stderr}");
    assert_eq!(
        lines[1],
        "keystone: skipping \"src/sub/odd\\x1b[2Jname\": it is a symbolic link to nowhere, which does not exist"
    );
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert_eq!(
        lines[2],
        "keystone: 2 files skipped (symbolic links to nothing or special files, named above); the rest was copied"
    );
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("uploaded 2 files"));
    assert_eq!(env.ok(&["ls", "-r", "bkt"]).lines().count(), 2);
    env.cmd(&["cat", "bkt/t/good.txt"]).assert().success().stdout("good");
    env.cmd(&["cat", "bkt/t/sub/also-good.txt"]).assert().success().stdout("also");

    // A file that fails as well: that is the exit code, and the skipped ones are counted.
    std::os::unix::fs::symlink(env.path("src/loop"), env.path("src/loop")).unwrap();
    let out = env.cmd(&["cp", "-r", "src", "bkt/t/"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.ends_with("keystone: 1 of 3 files failed (2 more skipped)\n"), "{stderr}");
}

/// A chain of links that ends nowhere names the missing end, not only the first hop (which
/// exists).
#[cfg(unix)]
#[test]
fn a_chain_of_links_to_nothing_names_the_missing_end() {
    let env = Env::with_bucket();
    env.write("src/good.txt", b"good");
    std::fs::create_dir(env.path("links")).unwrap();
    std::os::unix::fs::symlink("gone", env.path("links/hop")).unwrap();
    std::os::unix::fs::symlink("../links/hop", env.path("src/chain")).unwrap();
    let out = env.cmd(&["cp", "-r", "src", "bkt/t/"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        stderr.lines().next(),
        Some(
            "keystone: skipping src/chain: it is a symbolic link to ../links/hop, which leads to gone, which does not exist"
        ),
        "{stderr}"
    );
}

#[test]
fn keys_that_would_escape_the_destination_are_refused() {
    let env = Env::with_bucket();
    let db = keystone::Datastore::open(&env.store).unwrap();
    let b = db.bucket("bkt").unwrap();
    b.put_bytes("t/ok.txt", b"fine").unwrap();
    b.put_bytes("t/../../escaped.txt", b"evil").unwrap();
    b.put_bytes("t/a//double", b"evil").unwrap();
    b.put_bytes("t/folder/", b"").unwrap();
    drop((b, db));
    std::fs::create_dir(env.path("dl")).unwrap();
    let out = env.cmd(&["cp", "-r", "bkt/t", "dl/inner"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("t/../../escaped.txt") && stderr.contains("cannot be a local file name"), "{stderr}");
    assert!(stderr.contains("t/a//double"), "{stderr}");
    assert!(stderr.ends_with("keystone: 2 of 4 files failed\n"), "{stderr}");
    assert!(!env.path("escaped.txt").exists() && !env.path("dl/escaped.txt").exists());
    assert_eq!(std::fs::read(env.path("dl/inner/ok.txt")).unwrap(), b"fine");
    assert!(env.path("dl/inner/folder").is_dir());
}

/// The store is never uploaded into itself, and a tree copy leaves out the credentials file
/// `serve` keeps beside it (the S3 secret key; it was uploaded with the rest).
#[test]
fn the_store_file_is_never_uploaded_into_itself() {
    let env = Env::with_bucket();
    env.write("a.txt", b"a");
    env.write("store.redb.credentials", b"access-key secret-key");
    // The scratch directory holds store.redb: a tree copy of it skips the store, with a note.
    let out = env.cmd(&["cp", "-r", ".", "bkt/all/"]).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skipping ./store.redb: it is the store itself"), "{stderr}");
    assert!(stderr.contains("skipping ./store.redb.credentials: it is the store's credentials file"), "{stderr}");
    assert!(stderr.contains("skipping ./store.redb-journal: it is the store's redo journal"), "{stderr}");
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("uploaded 1 file "));
    let e = env.fails(&["put", "store.redb", "bkt/self"], 1);
    assert!(e.contains("store.redb is the store itself"), "{e}");
    let e = env.fails(&["cp", "./store.redb", "bkt/self"], 1);
    assert!(e.contains("is the store itself"), "{e}");
}

/// Asserts the store is whole: it opens and still lists `bkt` with the key `keep`.
fn assert_store_intact(env: &Env) {
    assert!(std::fs::metadata(&env.store).unwrap().len() > 1024, "the store file was replaced");
    env.cmd(&["cat", "bkt/keep"]).assert().success().stdout("kept");
}

#[test]
fn downloads_never_overwrite_the_store_or_its_companion_files() {
    let env = Env::with_bucket();
    let db = keystone::Datastore::open(&env.store).unwrap();
    let b = db.bucket("bkt").unwrap();
    b.put_bytes("keep", b"kept").unwrap();
    b.put_bytes("store.redb", b"18 bytes of nonsense").unwrap();
    b.put_bytes("store.redb.credentials", b"AKIA:attacker-secret").unwrap();
    b.put_bytes("sub/store.redb", b"nested").unwrap();
    drop((b, db));
    let refused = |args: &[&str], shown: &str| {
        let e = env.fails(args, 1);
        assert!(
            e.contains(&format!("{shown} is the store itself and cannot be overwritten by a download")),
            "{args:?}: {e}"
        );
        assert_store_intact(&env);
    };

    // A tree copy into the store's directory refuses before writing anything.
    refused(&["cp", "-r", "bkt", "."], "./store.redb");
    assert!(!env.path("keep").exists() && !env.path("sub").exists(), "a file was written before refusing");
    // get: explicit path, the directory, the default destination; cp of one object.
    refused(&["get", "bkt/store.redb", "./store.redb"], "./store.redb");
    refused(&["get", "bkt/keep", "store.redb"], "store.redb");
    refused(&["get", "bkt/store.redb", "."], "./store.redb");
    refused(&["get", "bkt/store.redb"], "store.redb");
    refused(&["cp", "bkt/store.redb", "."], "./store.redb");
    std::fs::create_dir(env.path("dir")).unwrap();
    refused(&["cp", "bkt/keep", "./dir/../store.redb"], "./dir/../store.redb");
    // The store named by its absolute path, and through --store with a relative one.
    let abs = env.store.display().to_string();
    refused(&["get", "bkt/keep", &abs], &abs);
    let e = env.fails(&["--store", "./store.redb", "get", "bkt/keep", "store.redb"], 1);
    assert!(e.contains("is the store itself"), "{e}");
    // Another name for the same file: a hard link (same device and inode) and a symbolic link.
    #[cfg(unix)]
    {
        std::fs::hard_link(&env.store, env.path("hard")).unwrap();
        refused(&["get", "bkt/keep", "hard"], "hard");
        std::os::unix::fs::symlink(&env.store, env.path("soft")).unwrap();
        refused(&["get", "bkt/keep", "soft"], "soft");
    }

    // The credentials file `keystone serve` keeps beside the store.
    let e = env.fails(&["get", "bkt/store.redb.credentials"], 1);
    assert!(e.contains("store.redb.credentials is the store's credentials file"), "{e}");
    assert!(!env.path("store.redb.credentials").exists());
    let e = env.fails(&["cp", "-r", "bkt/", "./"], 1);
    assert!(e.contains("is the store"), "{e}");

    // Elsewhere, the same objects download as usual.
    env.ok(&["cp", "-r", "bkt", "elsewhere"]);
    assert_eq!(std::fs::read(env.path("elsewhere/store.redb")).unwrap(), b"18 bytes of nonsense");
    env.ok(&["get", "bkt/store.redb", "elsewhere/again.redb"]);
    assert_store_intact(&env);
}

#[test]
fn the_folder_marker_of_the_copied_prefix_becomes_the_directory() {
    let env = Env::with_bucket();
    let db = keystone::Datastore::open(&env.store).unwrap();
    let b = db.bucket("bkt").unwrap();
    b.put_bytes("folder/", b"").unwrap();
    b.put_bytes("folder/a.txt", b"a").unwrap();
    b.put_bytes("folder/sub/", b"").unwrap();
    b.put_bytes("only/", b"").unwrap();
    drop((b, db));
    let out = env.ok(&["cp", "-r", "bkt/folder", "./d"]);
    assert!(out.starts_with("downloaded 3 files (1 B) to ./d"), "{out}");
    assert_eq!(std::fs::read(env.path("d/a.txt")).unwrap(), b"a");
    assert!(env.path("d/sub").is_dir());
    env.ok(&["cp", "-r", "bkt/folder/", "./d2"]);
    assert_eq!(std::fs::read(env.path("d2/a.txt")).unwrap(), b"a");
    // A prefix holding nothing but its marker is an empty directory.
    env.ok(&["cp", "-r", "bkt/only", "./e"]);
    assert!(env.path("e").is_dir());
    assert_eq!(std::fs::read_dir(env.path("e")).unwrap().count(), 0);
}

#[test]
fn a_file_name_near_the_file_system_limit_downloads() {
    let env = common::Env::with_bucket();
    let name = "n".repeat(250);
    env.write("src.txt", b"long");
    env.ok(&["put", "src.txt", &format!("bkt/long/{name}")]);
    env.ok(&["get", &format!("bkt/long/{name}"), &name]);
    assert_eq!(std::fs::read(env.path(&name)).unwrap(), b"long");
    env.ok(&["cp", "-r", "bkt/long", "tree"]);
    assert_eq!(std::fs::read(env.path(&format!("tree/{name}"))).unwrap(), b"long");
}

/// A FIFO (or socket, or device) in a tree upload is named on stderr as skipped and the command
/// exits 3, the CLI's rule for skipped entries (`aws s3 cp --recursive` warns and exits 2). It
/// was dropped silently with exit 0, so the user believed the whole tree copied.
#[cfg(unix)]
#[test]
fn special_files_in_a_tree_upload_are_not_skipped_silently() {
    let env = Env::with_bucket();
    env.write("src/a.txt", b"a");
    let st = std::process::Command::new("mkfifo").arg(env.path("src/pipe")).status().unwrap();
    assert!(st.success());
    let out = env.cmd(&["cp", "-r", "src", "bkt/t/"]).timeout(std::time::Duration::from_secs(20)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("exit {:?}, stdout {:?}, stderr {:?}", out.status.code(), String::from_utf8_lossy(&out.stdout), stderr);
    assert!(stderr.contains("pipe"), "the skipped FIFO is not named: {stderr:?}");
    assert_eq!(out.status.code(), Some(3), "a tree copy that left an entry out must not exit 0");
}

/// A tree copy in which a file failed exits 1 also when standard output is a closed pipe. It
/// exited 0: the summary line was written (and failed with EPIPE) before the failure was
/// returned, and a BrokenPipe ends a command quietly.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_tree_copy_does_not_exit_0_when_stdout_is_closed() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::with_bucket();
    env.write("src/ok.txt", b"ok");
    // A file name that is not UTF-8 cannot become a key: that file fails.
    let bad = env.path("src").join(std::ffi::OsStr::from_bytes(b"bad\xff"));
    std::fs::write(&bad, b"x").unwrap();
    // With stdout open: 1, as documented.
    let out = env.cmd(&["cp", "-r", "src", "bkt/t/"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // With stdout closed: should still be 1.
    let (code, stderr) = common::run_with_stdout_closed(&env, &["cp", "-r", "src", "bkt/u/"]);
    eprintln!("exit {code:?}, stderr {stderr:?}");
    assert_eq!(code, Some(1), "a failed copy reported success: {stderr}");
}

/// `cp BUCKET/KEY ./a/b/file` creates the missing directories, as a tree download and
/// `aws s3 cp` do. It failed, with a message naming the hidden `.part` file.
#[test]
fn single_object_cp_creates_the_destination_directory() {
    let env = Env::with_bucket();
    env.write("f", b"data");
    env.ok(&["put", "f", "bkt/k.txt"]);
    let out = env.cmd(&["cp", "bkt/k.txt", "./newdir/sub/k.txt"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("exit {:?}, stderr {stderr:?}", out.status.code());
    assert!(!stderr.contains(".part"), "the error names the hidden temporary file: {stderr}");
    assert!(out.status.success(), "{stderr}");
    assert_eq!(std::fs::read(env.path("newdir/sub/k.txt")).unwrap(), b"data");
}

/// A key ending in `/` that holds data (not a zero-byte folder marker; S3 clients can write
/// one) is not downloaded by `cp -r` onto the file of the key without the slash: `p/x` and
/// `p/x/` both became `DIR/x`, the second silently replaced the first, and the command
/// reported both downloaded with exit 0.
#[test]
fn two_keys_are_not_downloaded_silently_to_one_file() {
    let env = Env::with_bucket();
    {
        let db = keystone::Datastore::open(&env.store).unwrap();
        let b = db.bucket("bkt").unwrap();
        b.put_bytes("p/x", b"object p/x").unwrap();
        b.put_bytes("p/x/", b"object p/x/ (with a trailing slash)").unwrap();
    }
    let out = env.cmd(&["cp", "-r", "bkt/p", "out"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let local = std::fs::read(env.path("out/x")).unwrap();
    eprintln!(
        "exit {:?}, stdout {stdout:?}, stderr {stderr:?}, out/x = {:?}",
        out.status.code(),
        String::from_utf8_lossy(&local)
    );
    assert!(
        !out.status.success() || local == b"object p/x",
        "object p/x was overwritten on disk by p/x/ and the command succeeded"
    );
}
