//! Formatting for people (human-readable sizes, local times) and scripts (JSON), and writing
//! lines to stdout with errors reported instead of panicking (as `println!` would on a closed
//! pipe).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io::Write;
use std::time::SystemTime;

use indicatif::HumanBytes;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use keystone::{BucketInfo, ObjectInfo};
use serde_json::{Value, json};

/// Writes one line to stdout.
pub fn line(text: impl fmt::Display) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// `1.20 MiB`.
pub fn size(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}

/// A time in the local time zone, `2026-11-25 21:04:05`.
pub fn local_time(t: SystemTime) -> String {
    match Timestamp::try_from(t) {
        Ok(ts) => ts.to_zoned(TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => "-".to_owned(),
    }
}

/// A time in the local time zone with its offset, `2026-11-25 21:04:05.123 +01:00`.
pub fn local_time_long(t: SystemTime) -> String {
    match Timestamp::try_from(t) {
        Ok(ts) => ts.to_zoned(TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S%.3f %:z").to_string(),
        Err(_) => "-".to_owned(),
    }
}

/// A time for machines: RFC 3339 in UTC.
pub fn rfc3339(t: SystemTime) -> Value {
    Timestamp::try_from(t).map_or(Value::Null, |ts| Value::String(ts.to_string()))
}

/// An object as one JSON value (`ls --json`, `stat --json`).
pub fn object_json(o: &ObjectInfo) -> Value {
    let m = &o.meta;
    json!({
        "type": "object",
        "bucket": o.bucket,
        "key": o.key,
        "size": o.size,
        "etag": o.etag,
        "crc32c": format!("{:08x}", o.checksum),
        "content_type": m.content_type,
        "cache_control": m.cache_control,
        "content_disposition": m.content_disposition,
        "content_encoding": m.content_encoding,
        "content_language": m.content_language,
        "expires": m.expires,
        "metadata": m.user,
        "parts": o.parts,
        "created": rfc3339(o.created),
        "modified": rfc3339(o.modified),
    })
}

/// A common prefix as one JSON value.
pub fn prefix_json(bucket: &str, prefix: &str) -> Value {
    json!({ "type": "prefix", "bucket": bucket, "prefix": prefix })
}

/// A bucket as one JSON value.
pub fn bucket_json(b: &BucketInfo) -> Value {
    json!({ "type": "bucket", "name": b.name, "created": rfc3339(b.created) })
}

/// A key (or a path made from one) as shown on a terminal: as it is, unless it holds control
/// characters (a newline or a tab would break a table, an escape sequence would act on the
/// terminal), bidirectional-text controls or invisible characters (they reorder or hide what
/// is shown), starts or ends with white space, or starts with `"`.
/// Then it is shown in double quotes, with `\n`, `\t`, `\r`, `\xNN`, `\u{NNNN}`, `\\` and
/// `\"` for those characters: a shown key that starts with `"` is always such a quoted form, so
/// the text names exactly one key.
pub fn shown_key(key: &str) -> Cow<'_, str> {
    // Leading or trailing white space shows only between quotes.
    let edges = key.starts_with(char::is_whitespace) || key.ends_with(char::is_whitespace);
    if !key.starts_with('"') && !edges && !key.chars().any(is_unseen) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 8);
    out.push('"');
    for c in key.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => push_visible(&mut out, c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// Anything shown on a terminal that holds a key: an address, a path made from a key
/// ([`shown_key`]).
pub fn shown(s: impl fmt::Display) -> String {
    let s = s.to_string();
    match shown_key(&s) {
        Cow::Borrowed(_) => s,
        Cow::Owned(quoted) => quoted,
    }
}

/// `bucket/key`, [`shown`].
pub fn shown_object(bucket: &str, key: &str) -> String {
    shown(format_args!("{bucket}/{key}"))
}

/// A message for the terminal (an error, whose text may hold a key or a path): line breaks
/// become spaces, the other characters [`is_unseen`] escapes, so that nothing in it acts on the
/// terminal.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            c => push_visible(&mut out, c),
        }
    }
    out
}

/// `c`, or its escape if it [`is_unseen`]: `\n`, `\t`, `\r`, `\xNN` or `\u{NNNN}`.
fn push_visible(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        // Writing to a String cannot fail.
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if is_unseen(c) => {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Control characters, and the characters that reorder bidirectional text (embeddings,
/// overrides, isolates, marks) or show nothing (zero-width spaces and joiners, the soft hyphen,
/// the byte-order mark), and the line and paragraph separators.
fn is_unseen(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `3 objects` / `1 object`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}
