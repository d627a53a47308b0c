//! Transfers run in a pseudo-terminal: the progress bar must render and complete there, and
//! `--quiet` must keep it away. (Without a terminal nothing is drawn: every other test checks
//! that stderr stays empty.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;

use common::{BIN, Env, bytes};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// Runs `keystone ARGS` with stdin, stdout and stderr on a 120-column pseudo-terminal;
/// returns its exit status and everything it wrote, with ANSI escape sequences removed.
fn run_in_pty(env: &Env, args: &[&str]) -> (bool, String, String) {
    run_program_in_pty(env, BIN, args)
}

fn run_program_in_pty(env: &Env, program: &str, args: &[&str]) -> (bool, String, String) {
    let pair = native_pty_system()
        .openpty(PtySize { rows: 30, cols: 120, pixel_width: 0, pixel_height: 0 })
        .expect("a pseudo-terminal");
    let mut cmd = CommandBuilder::new(program);
    cmd.args(args);
    cmd.cwd(env.dir.path());
    cmd.env("KEYSTONE_STORE", &env.store);
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let collector = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        // Ends at EOF, or EIO once the child has exited and the terminal is closed.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let status = child.wait().unwrap();
    drop(pair.master);
    let raw = String::from_utf8_lossy(&collector.join().unwrap()).into_owned();
    (status.success(), strip_ansi(&raw), raw)
}

/// Removes CSI escape sequences (`ESC [ ... letter`) and carriage returns.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c == '\r' {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// The last rendering of the bar: the last line mentioning `needle`.
fn last_line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines().rfind(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn put_and_get_draw_a_bar_that_completes() {
    let env = Env::with_bucket();
    env.write("big.bin", &bytes(8 * 1024 * 1024, 1));

    let (ok, text, raw) = run_in_pty(&env, &["put", "big.bin", "bkt/big.bin"]);
    assert!(ok, "{text}");
    assert!(raw.contains('\u{1b}'), "no terminal control sequences drawn: {raw:?}");
    let bar = last_line_with(&text, "big.bin [");
    assert!(bar.contains("100%") && bar.contains("8.00 MiB/8.00 MiB"), "{bar:?}\n{text}");
    assert!(bar.contains("/s") && bar.contains("ETA"), "rate and ETA shown: {bar:?}");
    assert!(bar.contains("[====="), "bar filled: {bar:?}");
    assert!(text.contains("big.bin -> bkt/big.bin (8.00 MiB)"), "{text}");

    let (ok, text, _) = run_in_pty(&env, &["get", "bkt/big.bin", "back.bin"]);
    assert!(ok, "{text}");
    let bar = last_line_with(&text, "big.bin [");
    assert!(bar.contains("100%") && bar.contains("8.00 MiB/8.00 MiB"), "{bar:?}\n{text}");
    assert_eq!(std::fs::read(env.path("back.bin")).unwrap(), bytes(8 * 1024 * 1024, 1));
}

#[test]
fn tree_copies_show_files_done_of_total() {
    let env = Env::with_bucket();
    env.write("tree/a.bin", &bytes(3 * 1024 * 1024, 2));
    env.write("tree/sub/b.bin", &bytes(1024 * 1024, 3));
    env.write("tree/sub/c.txt", b"small");
    let (ok, text, _) = run_in_pty(&env, &["cp", "-r", "tree", "bkt/t/"]);
    assert!(ok, "{text}");
    let bar = last_line_with(&text, " files [");
    assert!(bar.starts_with("3/3 files [") && bar.contains("100%"), "{bar:?}\n{text}");
    assert!(text.contains("uploaded 3 files (4.00 MiB) to bkt/t/"), "{text}");

    let (ok, text, _) = run_in_pty(&env, &["cp", "-r", "bkt/t", "down"]);
    assert!(ok, "{text}");
    let bar = last_line_with(&text, " files [");
    assert!(bar.starts_with("3/3 files [") && bar.contains("4.00 MiB/4.00 MiB"), "{bar:?}\n{text}");
}

#[test]
fn quiet_draws_nothing_even_on_a_terminal() {
    let env = Env::with_bucket();
    env.write("f.bin", &bytes(1024 * 1024, 4));
    let (ok, text, _) = run_in_pty(&env, &["put", "--quiet", "f.bin", "bkt/f.bin"]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "", "{text:?}");
}

#[test]
fn get_to_a_pipe_draws_on_the_terminal_but_cat_does_not() {
    let env = Env::with_bucket();
    let data = bytes(2 * 1024 * 1024, 5);
    env.write("d.bin", &data);
    env.ok(&["put", "d.bin", "bkt/d.bin"]);
    let script = format!("'{BIN}' get bkt/d.bin - > piped.bin");
    let (ok, text, _) = run_program_in_pty(&env, "sh", &["-c", &script]);
    assert!(ok, "{text}");
    let bar = last_line_with(&text, "d.bin [");
    assert!(bar.contains("100%") && bar.contains("2.00 MiB/2.00 MiB"), "{bar:?}\n{text}");
    assert_eq!(std::fs::read(env.path("piped.bin")).unwrap(), data);

    // Bytes to the terminal itself: no bar mixed into them.
    env.cmd(&["put", "-", "bkt/t.txt"]).write_stdin("plain text").assert().success();
    let (ok, text, _) = run_in_pty(&env, &["get", "bkt/t.txt", "-"]);
    assert!(ok, "{text}");
    assert_eq!(text, "plain text");
}

/// Asserts the summary `line` starts a line of its own, not the tail of a finished bar.
fn summary_on_its_own_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l.starts_with(line)), "{line:?} does not start a line:\n{text}");
    assert!(!text.lines().any(|l| l.contains(" ETA ") && l.contains(line)), "bar and summary on one line:\n{text}");
}

#[test]
fn finished_bars_are_cleared_before_the_summary_line() {
    let env = Env::with_bucket();
    env.write("site/video.mp4", &bytes(3 * 1024 * 1024, 6));
    let runs: [(&[&str], &str); 5] = [
        (&["put", "site/video.mp4", "bkt/p.bin"], "site/video.mp4 -> bkt/p.bin (3.00 MiB)"),
        (&["get", "bkt/p.bin", "back.bin"], "bkt/p.bin -> back.bin (3.00 MiB)"),
        (&["cp", "bkt/p.bin", "copy.bin"], "bkt/p.bin -> copy.bin (3.00 MiB)"),
        (&["cp", "-r", "site", "bkt/t/"], "uploaded 1 file (3.00 MiB) to bkt/t/"),
        (&["cp", "-r", "bkt/t", "down"], "downloaded 1 file (3.00 MiB) to down"),
    ];
    for (args, summary) in runs {
        let (ok, text, _) = run_in_pty(&env, args);
        assert!(ok, "{args:?}: {text}");
        summary_on_its_own_line(&text, summary);
    }
}
