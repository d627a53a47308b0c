//! Progress bars on stderr (indicatif): drawn only when stderr is a terminal and `--quiet` is
//! not given; otherwise every bar is hidden and costs nothing.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// How often a bar is redrawn at most.
const REFRESH_HZ: u8 = 10;

/// Makes the bars of one command.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress { enabled: !quiet && std::io::stderr().is_terminal() }
    }

    fn bar(self, len: Option<u64>, template: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr_with_hz(REFRESH_HZ))
            .with_style(style.progress_chars("=> "))
            // A bar dropped unfinished (the command failed) is cleared, so the error line
            // does not continue it.
            .with_finish(ProgressFinish::AndClear);
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// One transfer: bytes, rate and ETA when the length is known; bytes and rate otherwise.
    pub fn transfer(self, label: &str, len: Option<u64>) -> ProgressBar {
        let template = if len.is_some() {
            "{msg} [{wide_bar}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
        } else {
            "{spinner} {msg} {bytes} {binary_bytes_per_sec} {elapsed}"
        };
        self.bar(len, template).with_message(short(label))
    }

    /// A tree copy: files done/total in the prefix, bytes, rate and ETA, the current file.
    pub fn tree(self, files: u64, bytes: u64) -> ProgressBar {
        let bar = self.bar(
            Some(bytes),
            "{prefix} files [{bar:20}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
        );
        bar.set_prefix(format!("0/{files}"));
        bar
    }

    /// A count of items (objects deleted, say).
    pub fn count(self, label: &str, len: u64) -> ProgressBar {
        self.bar(Some(len), "{msg} [{wide_bar}] {pos}/{len} {per_sec} ETA {eta}").with_message(short(label))
    }

    /// A spinner for work of unknown length.
    pub fn spinner(self, label: &str) -> ProgressBar {
        self.bar(None, "{spinner} {msg} {elapsed}").with_message(label.to_owned())
    }
}

/// Ends a finished bar: draws it complete once more, then clears it, so that the summary
/// line printed next starts on a line of its own instead of after the bar.
pub fn done(bar: &ProgressBar) {
    bar.finish();
    bar.finish_and_clear();
}

/// Longest label shown before a bar, in characters.
const LABEL_MAX: usize = 32;

/// `label`, shortened from the left to [`LABEL_MAX`] characters (the end of a path says most).
fn short(label: &str) -> String {
    let label = crate::output::shown(label);
    let n = label.chars().count();
    if n <= LABEL_MAX {
        return label;
    }
    let tail: String = label.chars().skip(n - (LABEL_MAX - 1)).collect();
    format!("…{tail}")
}
