//! Every command's success and failure paths, except `cp` (copy.rs), the maintenance commands
//! (maint.rs) and the progress bar (pty.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{BIN, Env, bytes, wait_until_holds};
use predicates::prelude::*;

#[test]
fn mb_creates_the_store_and_rb_removes_buckets() {
    let env = Env::new();
    assert!(!env.store.exists());
    assert_eq!(env.ok(&["mb", "photos"]), "created bucket photos\n");
    assert!(env.store.exists());
    env.ok(&["mb", "docs"]);
    let ls = env.ok(&["ls"]);
    let names: Vec<&str> = ls.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(names, ["docs", "photos"]);
    // Times are local: "YYYY-MM-DD HH:MM:SS  name".
    let re = predicate::str::is_match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  docs$").unwrap();
    assert!(re.eval(ls.lines().next().unwrap()), "{ls}");

    assert_eq!(env.ok(&["rb", "docs"]), "removed bucket docs\n");
    assert_eq!(env.ok(&["ls"]).lines().count(), 1);
}

#[test]
fn times_are_shown_in_the_local_time_zone() {
    let env = Env::with_bucket();
    env.write("f", b"x");
    env.ok(&["put", "f", "bkt/f"]);
    let utc = env.cmd(&["stat", "bkt/f"]).env("TZ", "UTC").output().unwrap();
    let india = env.cmd(&["stat", "bkt/f"]).env("TZ", "IST-5:30").output().unwrap();
    let (utc, india) = (String::from_utf8(utc.stdout).unwrap(), String::from_utf8(india.stdout).unwrap());
    assert!(utc.contains(" +00:00\n"), "{utc}");
    assert!(india.contains(" +05:30\n"), "{india}");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["stat", "--json", "bkt/f"])).unwrap();
    assert!(json["modified"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn mb_failures() {
    let env = Env::with_bucket();
    let e = env.fails(&["mb", "bkt"], 1);
    assert!(e.contains("bucket already exists: \"bkt\""), "{e}");
    let e = env.fails(&["mb", "Bad_Name"], 1);
    assert!(e.contains("invalid bucket name \"Bad_Name\""), "{e}");
    let e = env.fails(&["mb", "ab"], 1);
    assert!(e.contains("invalid bucket name \"ab\""), "{e}");
    env.fails(&["mb"], 2);
}

#[test]
fn rb_refuses_a_non_empty_bucket_unless_forced() {
    let env = Env::with_bucket();
    env.write("f.txt", b"x");
    env.ok(&["put", "f.txt", "bkt/f.txt"]);
    let e = env.fails(&["rb", "bkt"], 1);
    assert!(e.contains("bucket \"bkt\" is not empty") && e.contains("--force"), "{e}");
    env.ok(&["stat", "bkt/f.txt"]);
    env.ok(&["rb", "--force", "bkt"]);
    let e = env.fails(&["rb", "bkt"], 1);
    assert!(e.contains("no such bucket: \"bkt\""), "{e}");
    assert_eq!(env.ok(&["ls"]), "");
}

#[test]
fn commands_other_than_mb_do_not_create_a_store() {
    let env = Env::new();
    for args in [&["ls"][..], &["ls", "bkt"], &["get", "bkt/k"], &["du"], &["verify"], &["gc"], &["compact"]] {
        let e = env.fails(args, 1);
        assert!(e.contains("no store at") && e.contains("store.redb"), "{args:?}: {e}");
    }
    assert!(!env.store.exists());
}

#[test]
fn store_is_chosen_by_flag_or_environment() {
    let env = Env::new();
    let other = env.path("other.redb");
    env.cmd(&["--store", other.to_str().unwrap(), "mb", "flagged"]).assert().success();
    assert!(other.exists());
    assert!(!env.store.exists());
    // Default: ./keystone.redb in the current directory.
    let mut c = env.cmd(&["mb", "defaulted"]);
    c.env_remove("KEYSTONE_STORE").assert().success();
    assert!(env.path("keystone.redb").exists());
    env.cmd(&["ls"]).env("KEYSTONE_STORE", &other).assert().success().stdout(predicate::str::contains("flagged"));
}

#[test]
fn an_empty_keystone_store_variable_is_named_not_taken_for_a_missing_value() {
    let env = Env::with_bucket();
    for args in [&["ls"][..], &["mb", "new"], &["serve"]] {
        let out = env.cmd(args).env("KEYSTONE_STORE", "").output().unwrap();
        let e = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains("KEYSTONE_STORE is set but empty") && e.contains("--store"), "{args:?}: {e}");
        assert!(!e.contains("a value is required"), "{args:?}: {e}");
    }
    assert!(!env.path("keystone.redb").exists());
    // --store wins over the variable, empty or not.
    let store = env.store.to_str().unwrap();
    env.cmd(&["--store", store, "ls"])
        .env("KEYSTONE_STORE", "")
        .assert()
        .success()
        .stdout(predicate::str::contains("bkt"));
}

#[test]
fn ls_lists_levels_recursively_and_as_json_lines() {
    let env = Env::with_bucket();
    for (k, n) in [("a/1.txt", 10), ("a/b/2.txt", 2048), ("top.txt", 3), ("z/3.txt", 0)] {
        env.write("f", &bytes(n, 1));
        env.ok(&["put", "f", &format!("bkt/{k}")]);
    }
    let top = env.ok(&["ls", "bkt"]);
    let lines: Vec<&str> = top.lines().collect();
    assert_eq!(lines.len(), 3, "{top}");
    assert!(lines[0].ends_with("PRE  a/"), "{top}");
    assert!(lines[1].ends_with("3 B  top.txt"), "{top}");
    assert!(lines[2].ends_with("PRE  z/"), "{top}");

    let a = env.ok(&["ls", "bkt/a/"]);
    assert!(a.contains("10 B  a/1.txt") && a.contains("PRE  a/b/") && !a.contains("2.txt"), "{a}");

    let all = env.ok(&["ls", "-r", "bkt"]);
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.contains("2.00 KiB  a/b/2.txt"), "{all}");

    let json = env.ok(&["ls", "--json", "bkt"]);
    let values: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(values.len(), 3);
    assert_eq!(values[0]["type"], "prefix");
    assert_eq!(values[0]["prefix"], "a/");
    assert_eq!(values[1]["type"], "object");
    assert_eq!(values[1]["key"], "top.txt");
    assert_eq!(values[1]["size"], 3);
    assert_eq!(values[1]["content_type"], "text/plain");
    assert!(values[1]["modified"].as_str().unwrap().ends_with('Z'));

    let buckets = env.ok(&["ls", "--json"]);
    let b: serde_json::Value = serde_json::from_str(buckets.trim()).unwrap();
    assert_eq!(b["type"], "bucket");
    assert_eq!(b["name"], "bkt");

    let e = env.fails(&["ls", "nope"], 1);
    assert!(e.contains("no such bucket: \"nope\""), "{e}");
    env.fails(&["ls", "/x"], 2);
}

#[test]
fn ls_of_a_prefix_that_matches_nothing_exits_1_as_aws_s3_ls_does() {
    let env = Env::with_bucket();
    // An existing bucket listed whole succeeds, empty or not (as `aws s3 ls s3://bucket`).
    assert_eq!(env.ok(&["ls", "bkt"]), "");
    assert_eq!(env.ok(&["ls", "ks://bkt/"]), "");
    env.write("f", b"x");
    env.ok(&["put", "f", "bkt/dir/file"]);
    for args in [&["ls", "ks://bkt/nosuch"][..], &["ls", "-r", "bkt/nosuch/"], &["ls", "--json", "bkt/dir/x"]] {
        let e = env.fails(args, 1);
        assert!(e.contains("no key in bucket \"bkt\" starts with"), "{args:?}: {e}");
    }
    assert!(env.ok(&["ls", "bkt/di"]).ends_with("PRE  dir/\n"));
    assert!(env.ok(&["ls", "bkt/dir/file"]).ends_with("  dir/file\n"));
}

#[test]
fn put_get_cat_round_trip_with_guessed_content_type() {
    let env = Env::with_bucket();
    let data = bytes(300_000, 7);
    env.write("in/photo.png", &data);
    let out = env.ok(&["put", "in/photo.png", "bkt/pics/photo.png"]);
    assert_eq!(out, "in/photo.png -> bkt/pics/photo.png (292.97 KiB)\n");
    let stat = env.ok(&["stat", "bkt/pics/photo.png"]);
    assert!(stat.contains("Content-Type:       image/png"), "{stat}");
    assert!(stat.contains("Size:               292.97 KiB (300000 bytes)"), "{stat}");

    // get to a named file, to a directory, to the default name, and to stdout.
    env.ok(&["get", "bkt/pics/photo.png", "copy.png"]);
    assert_eq!(std::fs::read(env.path("copy.png")).unwrap(), data);
    std::fs::create_dir(env.path("d")).unwrap();
    env.ok(&["get", "bkt/pics/photo.png", "d"]);
    assert_eq!(std::fs::read(env.path("d/photo.png")).unwrap(), data);
    env.ok(&["get", "bkt/pics/photo.png"]);
    assert_eq!(std::fs::read(env.path("photo.png")).unwrap(), data);
    env.cmd(&["get", "bkt/pics/photo.png", "-"]).assert().success().stdout(data.clone());
    env.cmd(&["cat", "bkt/pics/photo.png"]).assert().success().stdout(data.clone());

    // A trailing slash appends the file name.
    env.ok(&["put", "in/photo.png", "bkt/dir/"]);
    env.cmd(&["cat", "bkt/dir/photo.png"]).assert().success().stdout(data);
}

#[test]
fn put_from_stdin_with_content_type_and_metadata() {
    let env = Env::with_bucket();
    let data = bytes(2 * 1024 * 1024 + 5, 3);
    let out = env
        .cmd(&[
            "put",
            "-",
            "bkt/blob.bin",
            "--content-type",
            "application/x-test",
            "--meta",
            "owner=ann",
            "--meta",
            "k=v=w",
        ])
        .write_stdin(data.clone())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "standard input -> bkt/blob.bin (2.00 MiB)\n");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["stat", "--json", "bkt/blob.bin"])).unwrap();
    assert_eq!(json["content_type"], "application/x-test");
    assert_eq!(json["metadata"]["owner"], "ann");
    assert_eq!(json["metadata"]["k"], "v=w");
    assert_eq!(json["size"], data.len());
    assert_eq!(json["etag"].as_str().unwrap().len(), 32);
    let stat = env.ok(&["stat", "bkt/blob.bin"]);
    assert!(stat.contains("Metadata:           owner=ann"), "{stat}");
    let modified = predicate::str::is_match(r"Modified:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \+00:00").unwrap();
    assert!(modified.eval(&stat), "{stat}");
    env.cmd(&["cat", "bkt/blob.bin"]).assert().success().stdout(data);
    // Without --content-type, standard input's type comes from the key's extension.
    env.cmd(&["put", "-", "bkt/page.html"]).write_stdin("<p>").assert().success();
    assert!(env.ok(&["stat", "bkt/page.html"]).contains("Content-Type:       text/html"));
    env.cmd(&["put", "-", "bkt/noext"]).write_stdin("x").assert().success();
    assert!(env.ok(&["stat", "bkt/noext"]).contains("Content-Type:       binary/octet-stream (unset)"));
}

#[test]
fn put_and_get_failures() {
    let env = Env::with_bucket();
    env.write("f.txt", b"hello");
    let e = env.fails(&["put", "missing.txt", "bkt/k"], 1);
    assert!(e.contains("cannot read missing.txt") && e.contains("No such file"), "{e}");
    std::fs::create_dir(env.path("adir")).unwrap();
    let e = env.fails(&["put", "adir", "bkt/k"], 1);
    assert!(e.contains("adir is a directory"), "{e}");
    let e = env.fails(&["put", "f.txt", "nobucket/k"], 1);
    assert!(e.contains("no such bucket: \"nobucket\""), "{e}");
    let long = format!("bkt/{}", "k".repeat(2000));
    let e = env.fails(&["put", "f.txt", &long], 1);
    assert!(e.contains("invalid object key") && e.contains("at most 1024 bytes"), "{e}");
    env.fails(&["put", "-", "bkt/"], 2);
    env.fails(&["put", "f.txt", "/k"], 2);
    env.fails(&["put", "f.txt", "bkt/k", "--meta", "novalue"], 2);
    env.fails(&["put", "f.txt"], 2);

    let e = env.fails(&["get", "bkt/nothing", "out"], 1);
    assert!(e.contains("no such key: \"nothing\" in bucket \"bkt\""), "{e}");
    assert!(!env.path("out").exists());
    let e = env.fails(&["cat", "bkt/nothing"], 1);
    assert!(e.contains("no such key"), "{e}");
    let e = env.fails(&["get", "nob/k", "out"], 1);
    assert!(e.contains("no such bucket: \"nob\""), "{e}");
    env.fails(&["get", "bkt"], 2);
    env.ok(&["put", "f.txt", "bkt/k"]);
    // Missing directories are created; a file where a directory must be is named.
    env.ok(&["get", "bkt/k", "no/such/dir/out"]);
    let e = env.fails(&["get", "bkt/k", "f.txt/dir/out"], 1);
    assert!(e.contains("cannot create f.txt/dir"), "{e}");
}

#[test]
fn a_prefix_given_where_a_key_is_expected_gets_a_hint() {
    let env = Env::with_bucket();
    env.write("f.txt", b"x");
    env.ok(&["put", "f.txt", "bkt/dir/f.txt"]);
    let e = env.fails(&["rm", "bkt/dir"], 1);
    assert!(e.contains("there are objects under bkt/dir/") && e.contains("rm -r"), "{e}");
    let e = env.fails(&["cat", "bkt/dir"], 1);
    assert!(e.contains("there are objects under bkt/dir/"), "{e}");
}

#[test]
fn rm_and_rm_recursive() {
    let env = Env::with_bucket();
    env.write("f.txt", b"x");
    for k in ["keep.txt", "dir/a", "dir/sub/b", "dirx/c"] {
        env.ok(&["put", "f.txt", &format!("bkt/{k}")]);
    }
    assert_eq!(env.ok(&["rm", "bkt/keep.txt"]), "deleted bkt/keep.txt\n");
    let e = env.fails(&["rm", "bkt/keep.txt"], 1);
    assert!(e.contains("no such key: \"keep.txt\""), "{e}");
    // `dir` means `dir/`: `dirx/c` stays.
    assert_eq!(env.ok(&["rm", "-r", "bkt/dir"]), "deleted 2 objects under bkt/dir/\n");
    assert_eq!(env.ok(&["ls", "-r", "bkt"]).lines().count(), 1);
    env.ok(&["stat", "bkt/dirx/c"]);
    let e = env.fails(&["rm", "-r", "bkt/dir"], 1);
    assert!(e.contains("no objects under bkt/dir/"), "{e}");
    // A bare bucket with -r empties it.
    env.ok(&["rm", "-r", "bkt"]);
    assert_eq!(env.ok(&["ls", "-r", "bkt"]), "");
    env.fails(&["rm", "bkt"], 2);
}

#[test]
fn rm_recursive_deletes_more_than_one_batch() {
    let env = Env::with_bucket();
    let db = keystone::Datastore::open(&env.store).unwrap();
    let b = db.bucket("bkt").unwrap();
    db.transaction(|tx| {
        let t = tx.bucket("bkt")?;
        for i in 0..2500 {
            t.put_bytes(&format!("many/{i:05}"), b"x")?;
        }
        Ok::<_, keystone::Error>(())
    })
    .unwrap();
    b.put_bytes("other", b"y").unwrap();
    drop((b, db));
    assert_eq!(env.ok(&["rm", "-r", "bkt/many/"]), "deleted 2500 objects under bkt/many/\n");
    assert_eq!(env.ok(&["ls", "-r", "bkt"]).lines().count(), 1);
}

#[test]
fn stat_failures() {
    let env = Env::with_bucket();
    let e = env.fails(&["stat", "bkt/none"], 1);
    assert!(e.contains("no such key: \"none\""), "{e}");
    env.fails(&["stat", "bkt"], 2);
}

#[test]
fn du_counts_objects_and_bytes() {
    let env = Env::with_bucket();
    env.ok(&["mb", "second"]);
    env.write("a", &bytes(1000, 1));
    env.write("b", &bytes(24, 2));
    env.ok(&["put", "a", "bkt/x/a"]);
    env.ok(&["put", "b", "bkt/x/b"]);
    env.ok(&["put", "b", "bkt/y"]);
    env.ok(&["put", "a", "second/a"]);
    let all = env.ok(&["du", "--bytes"]);
    let rows: Vec<Vec<&str>> = all.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [["3", "objects", "1048", "bkt"], ["1", "object", "1000", "second"], ["4", "objects", "2048", "total"]]
    );
    assert_eq!(
        env.ok(&["du", "bkt/x/"]).split_whitespace().collect::<Vec<_>>(),
        ["2", "objects", "1.00", "KiB", "bkt/x/"]
    );
    let e = env.fails(&["du", "nope"], 1);
    assert!(e.contains("no such bucket"), "{e}");
}

#[test]
fn every_command_has_help_with_an_example() {
    let env = Env::new();
    for cmd in ["mb", "rb", "ls", "put", "get", "cat", "cp", "rm", "stat", "du", "verify", "gc", "compact", "serve"] {
        env.cmd(&[cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example").and(predicate::str::contains(format!("keystone {cmd}"))));
    }
    env.cmd(&["--help"]).assert().success().stdout(predicate::str::contains("keystone cp -r"));
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.cmd(&[]).assert().code(2);
    env.cmd(&["frobnicate"]).assert().code(2).stderr(predicate::str::contains("unrecognized subcommand"));
    env.cmd(&["ls", "--bogus"]).assert().code(2);
    env.cmd(&["gc", "--abort-uploads-older-than", "soon"]).assert().code(2);
    // A wait past the clock's range panicked the server on its first connection. (Bounded: a
    // server that starts instead must not hang the test.)
    for args in [["--idle-timeout", "18446744073709551615"], ["--idle-timeout", "0"], ["--shutdown-grace", "86401"]] {
        let serve = ["serve", "--addr", "127.0.0.1:0", args[0], args[1]];
        env.cmd(&serve).timeout(std::time::Duration::from_secs(20)).assert().code(2);
    }
}

#[test]
fn a_store_held_by_another_process_is_reported() {
    let env = Env::with_bucket();
    // This test process holds the store open.
    let db = keystone::Datastore::open(&env.store).unwrap();
    let e = env.fails(&["ls", "bkt"], 1);
    assert!(e.contains("is in use by another process") && e.contains("keystone serve"), "{e}");
    env.fails(&["mb", "other"], 1);
    drop(db);
    env.ok(&["ls", "bkt"]);
}

#[test]
fn a_running_keystone_holds_the_store_until_it_exits() {
    let env = Env::with_bucket();
    // `put -` keeps the store open while it waits for standard input.
    let mut writer = Command::new(BIN)
        .args(["put", "-", "bkt/streamed"])
        .env("KEYSTONE_STORE", &env.store)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    stdin.write_all(b"first part ").unwrap();
    assert!(wait_until_holds(&mut writer, &env.store), "the writer never opened the store");
    let held = env.fails(&["ls", "bkt"], 1);
    assert!(held.contains("in use by another process"), "{held}");
    stdin.write_all(b"and the rest").unwrap();
    drop(stdin);
    assert!(writer.wait().unwrap().success());
    env.cmd(&["cat", "bkt/streamed"]).assert().success().stdout("first part and the rest");
}

#[test]
fn a_running_keystone_serve_is_named_as_the_likely_holder() {
    let env = Env::with_bucket();
    let mut server = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--access-key", "test", "--secret-key", "test-secret-key"])
        .env("KEYSTONE_STORE", &env.store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let holds = wait_until_holds(&mut server, &env.store);
    let e = if holds { Some(env.fails(&["put", "-", "bkt/x"], 1)) } else { None };
    server.kill().unwrap();
    let out = server.wait_with_output().unwrap();
    let e = e.unwrap_or_else(|| panic!("serve did not hold the store: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(e.contains("is in use by another process (a running `keystone serve`"), "{e}");
    env.ok(&["ls", "bkt"]);
}

#[test]
fn closed_stdout_ends_cat_quietly() {
    let env = Env::with_bucket();
    env.write("big", &bytes(4 * 1024 * 1024, 9));
    env.ok(&["put", "big", "bkt/big"]);
    let mut child = Command::new(BIN)
        .args(["cat", "bkt/big"])
        .env("KEYSTONE_STORE", &env.store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn serve_keeps_serving_when_its_stdout_is_closed() {
    let env = Env::with_bucket();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(BIN)
        .args(["serve", "--addr", &addr, "--access-key", "test", "--secret-key", "test-secret-key"])
        .env("KEYSTONE_STORE", &env.store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader of its standard output goes away, as `keystone serve | head -1` does.
    drop(server.stdout.take());
    let up = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::net::TcpStream::connect(&addr).is_ok()
    });
    // The banner is written right after the server starts listening: give it that moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let exited = server.try_wait().unwrap();
    let still_serving = std::net::TcpStream::connect(&addr).is_ok();
    server.kill().unwrap();
    let out = server.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(up, "serve never listened: {stderr}");
    assert!(exited.is_none() && still_serving, "serve stopped ({exited:?}): {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("internal error"), "{stderr}");
}

#[test]
fn serve_errors_name_their_cause_once() {
    let env = Env::with_bucket();
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = ["serve", "--addr", &addr, "--access-key", "test", "--secret-key", "test-secret-key"];
    let e = env.fails(&args, 1);
    assert!(e.starts_with(&format!("keystone: cannot listen on {addr}: ")), "{e}");
    assert_eq!(e.matches("os error").count(), 1, "cause repeated: {e}");
    drop(taken);
    // A store already open.
    let db = keystone::Datastore::open(&env.store).unwrap();
    let e =
        env.fails(&["serve", "--addr", "127.0.0.1:0", "--access-key", "test", "--secret-key", "test-secret-key"], 1);
    assert_eq!(e.matches("already open in another process").count(), 1, "cause repeated: {e}");
    drop(db);
}

#[test]
fn serve_that_cannot_start_leaves_no_store_or_credentials_behind() {
    let env = Env::new();
    let credentials = env.path("store.redb.credentials");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = env.fails(&["serve", "--addr", &addr], 1);
    assert!(e.contains("cannot listen on"), "{e}");
    // Credentials given by half: refused before the port or the store are touched.
    let e = env.fails(&["serve", "--addr", "127.0.0.1:0", "--access-key", "only-half"], 1);
    assert!(e.contains("must be given together"), "{e}");
    // A credentials file beside the store that cannot be used is found before the store is made.
    std::fs::write(&credentials, "garbage\n").unwrap();
    let e = env.fails(&["serve", "--addr", "127.0.0.1:0"], 1);
    assert!(e.contains("store.redb.credentials"), "{e}");
    std::fs::remove_file(&credentials).unwrap();
    // Read-only: serves an existing store, never creates one.
    let e = env.fails(&["serve", "--addr", "127.0.0.1:0", "--read-only", "--access-key", "a", "--secret-key", "b"], 1);
    assert!(e.contains("cannot open the store") && e.contains("store.redb"), "{e}");
    assert!(!env.store.exists(), "a serve that never started created the store");
    assert!(!credentials.exists(), "a serve that never started generated credentials");
}

#[test]
fn ls_escapes_control_characters_in_keys() {
    let env = Env::with_bucket();
    let db = keystone::Datastore::open(&env.store).unwrap();
    let b = db.bucket("bkt").unwrap();
    b.put_bytes("line\nbreak\tand tab", b"x").unwrap();
    b.put_bytes("esc\u{1b}[31mred\\back", b"x").unwrap();
    b.put_bytes("dir\n/inner", b"x").unwrap();
    b.put_bytes("plain\\back slash", b"x").unwrap();
    // A key spelled as another's quoted form, and one with a right-to-left override.
    b.put_bytes("\"line\\nbreak\"", b"x").unwrap();
    b.put_bytes("rtl\u{202e}txt.exe", b"x").unwrap();
    b.put_bytes("zero\u{200b}width", b"x").unwrap();
    b.put_bytes("trailing space ", b"x").unwrap();
    drop((b, db));
    let out = env.ok(&["ls", "bkt"]);
    assert_eq!(out.lines().count(), 8, "one line per entry:\n{out}");
    assert!(out.lines().any(|l| l.ends_with("  \"zero\\u{200b}width\"")), "{out}");
    assert!(out.lines().any(|l| l.ends_with("  \"trailing space \"")), "{out}");
    assert!(out.lines().any(|l| l.ends_with("  \"line\\nbreak\\tand tab\"")), "{out}");
    assert!(out.lines().any(|l| l.ends_with("  \"esc\\x1b[31mred\\\\back\"")), "{out}");
    assert!(out.lines().any(|l| l.ends_with("PRE  \"dir\\n/\"")), "{out}");
    // A key without control characters is shown as it is.
    assert!(out.lines().any(|l| l.ends_with("  plain\\back slash")), "{out}");
    // Every shown text that starts with a quote is a quoted form: it names one key.
    assert!(out.lines().any(|l| l.ends_with("  \"\\\"line\\\\nbreak\\\"\"")), "{out}");
    assert!(out.lines().any(|l| l.ends_with("  \"rtl\\u{202e}txt.exe\"")), "{out}");
    assert!(!out.contains('\u{1b}') && !out.contains('\t') && !out.contains('\u{202e}'), "{out:?}");
    let out = env.ok(&["ls", "-r", "bkt"]);
    assert!(out.lines().any(|l| l.ends_with("  \"dir\\n/inner\"")), "{out}");
    // Summaries of commands that name a key escape it as `ls` does.
    let out = env.ok(&["rm", "bkt/esc\u{1b}[31mred\\back"]);
    assert_eq!(out.trim_end(), "deleted \"bkt/esc\\x1b[31mred\\\\back\"");
    // JSON keeps the key exact.
    let json = env.ok(&["ls", "--json", "-r", "bkt"]);
    assert!(json.contains(r#""key":"line\nbreak\tand tab""#), "{json}");
}

#[test]
fn an_s3_url_gets_a_hint_to_write_ks() {
    let env = Env::with_bucket();
    let e = env.fails(&["ls", "s3://bkt"], 2);
    assert!(e.contains("s3:// addresses are not understood") && e.contains("ks://bkt"), "{e}");
    let e = env.fails(&["get", "s3://bkt/a/b.txt", "out"], 2);
    assert!(e.contains("ks://bkt/a/b.txt"), "{e}");
    let e = env.fails(&["cp", "s3://bkt/x", "out"], 2);
    assert!(e.contains("ks://bkt/x"), "{e}");
    env.ok(&["ls", "ks://bkt"]);
}

#[test]
fn error_messages_do_not_pass_control_characters_to_the_terminal() {
    let env = Env::with_bucket();
    env.write("f.txt", b"x");
    env.ok(&["put", "f.txt", "bkt/k"]);
    // A destination path holding an escape sequence, under a file (no directory can be made).
    env.write("file\u{1b}[31m", b"x");
    let e = env.fails(&["get", "bkt/k", "file\u{1b}[31m/dir\u{202e}/out"], 1);
    assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{e:?}");
    assert!(e.contains("file\\x1b[31m"), "{e:?}");
}
