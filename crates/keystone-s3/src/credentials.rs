//! Access keys: from a file, from options, or generated on first start.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ServeError;

/// One access-key/secret pair that may sign requests.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The access key id.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

impl AccessKey {
    /// A pair.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        AccessKey { access_key: access_key.into(), secret_key: secret_key.into() }
    }

    fn generate() -> Result<Self, ServeError> {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut raw = [0u8; 18 + 40];
        getrandom::fill(&mut raw).map_err(|e| ServeError::Config(format!("cannot generate credentials: {e}")))?;
        let access: String = std::iter::once('K')
            .chain(std::iter::once('S'))
            .chain(raw[..18].iter().map(|b| char::from(UPPER[usize::from(b % 32)])))
            .collect();
        let secret: String = raw[18..].iter().map(|b| char::from(SECRET[usize::from(b % 64)])).collect();
        Ok(AccessKey::new(access, secret))
    }
}

/// Parses a credentials file: one pair per line, `ACCESS_KEY:SECRET` or `ACCESS_KEY SECRET`;
/// blank lines and lines starting with `#` are ignored.
fn parse(path: &Path, text: &str) -> Result<Vec<AccessKey>, ServeError> {
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The access key ends at the first ':' or blank; the secret is the rest.
        let pair = line.split_once(|c: char| c == ':' || c.is_whitespace());
        let Some((ak, sk)) = pair.map(|(a, s)| (a.trim(), s.trim())).filter(|(a, s)| !a.is_empty() && !s.is_empty())
        else {
            return Err(ServeError::Config(format!(
                "{}:{}: expected `ACCESS_KEY:SECRET` (or the two separated by a space)",
                path.display(),
                i + 1
            )));
        };
        keys.push(AccessKey::new(ak, sk));
    }
    if keys.is_empty() {
        return Err(ServeError::Config(format!("{}: no credentials in the file", path.display())));
    }
    Ok(keys)
}

/// Where generated credentials are kept: `<store>.credentials` beside the store.
pub(crate) fn default_file(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".credentials");
    store.with_file_name(name)
}

/// Credentials to use, and whether they were just generated (and where).
#[derive(Debug)]
pub(crate) struct Resolved {
    pub keys: Vec<AccessKey>,
    pub generated: Option<PathBuf>,
    pub source: String,
}

/// Resolves credentials: an explicit pair and/or a file; otherwise the generated file beside
/// the store, created (0600) on first start.
///
/// # Errors
/// A pair given by half, an unreadable or malformed file, or a failure to write the file.
pub fn load_credentials(
    file: Option<&Path>,
    access_key: Option<&str>,
    secret_key: Option<&str>,
    store: &Path,
) -> Result<Vec<AccessKey>, ServeError> {
    resolve(file, access_key, secret_key, store).map(|r| r.keys)
}

pub(crate) fn resolve(
    file: Option<&Path>,
    access_key: Option<&str>,
    secret_key: Option<&str>,
    store: &Path,
) -> Result<Resolved, ServeError> {
    match resolve_given(file, access_key, secret_key)? {
        Some(given) => Ok(given),
        None => match read_default(store)? {
            Some(saved) => Ok(saved),
            None => generate_default(store),
        },
    }
}

/// The credentials given by flags or a file, if any; writes nothing.
pub(crate) fn resolve_given(
    file: Option<&Path>,
    access_key: Option<&str>,
    secret_key: Option<&str>,
) -> Result<Option<Resolved>, ServeError> {
    let mut keys = Vec::new();
    let mut sources = Vec::new();
    match (access_key, secret_key) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => {
            keys.push(AccessKey::new(a, s));
            sources.push("--access-key/--secret-key".to_owned());
        }
        (None, None) => {}
        _ => return Err(ServeError::Config("--access-key and --secret-key must be given together".into())),
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServeError::io(format!("cannot read credentials file {}", path.display()), e))?;
        keys.extend(parse(path, &text)?);
        sources.push(path.display().to_string());
    }
    Ok((!keys.is_empty()).then(|| Resolved { keys, generated: None, source: sources.join(" and ") }))
}

/// The credentials file beside the store, if there is one (`None`: there is none yet); writes
/// nothing. An unreadable or malformed file is an error.
pub(crate) fn read_default(store: &Path) -> Result<Option<Resolved>, ServeError> {
    let path = default_file(store);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(Resolved { keys: parse(&path, &text)?, generated: None, source: path.display().to_string() }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServeError::io(format!("cannot read credentials file {}", path.display()), e)),
    }
}

/// Generates a key pair and saves it beside the store (0600; refused if the file appeared
/// meanwhile).
pub(crate) fn generate_default(store: &Path) -> Result<Resolved, ServeError> {
    let path = default_file(store);
    let key = AccessKey::generate()?;
    write_private(
        &path,
        &format!("# keystone serve credentials (ACCESS_KEY:SECRET)\n{}:{}\n", key.access_key, key.secret_key),
    )?;
    Ok(Resolved { keys: vec![key], generated: Some(path.clone()), source: path.display().to_string() })
}

/// Creates `path` with mode 0600 (fails if it exists, so a concurrent start cannot clobber it).
fn write_private(path: &Path, text: &str) -> Result<(), ServeError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let ctx = || format!("cannot write credentials file {}", path.display());
    let mut f = opts.open(path).map_err(|e| ServeError::io(ctx(), e))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| ServeError::io(ctx(), e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_pairs_and_rejects_garbage() {
        let p = Path::new("creds");
        let keys = parse(p, "# c\n\nAK1:s1\nAK2 s2:x\n").unwrap();
        assert_eq!(keys, vec![AccessKey::new("AK1", "s1"), AccessKey::new("AK2", "s2:x")]);
        assert!(parse(p, "justone\n").unwrap_err().to_string().contains("creds:1"));
        assert!(parse(p, "# only comments\n").is_err());
        // A multi-byte blank as the separator (no panic slicing inside it).
        assert_eq!(parse(p, "AK3\u{3000}s3\n").unwrap(), vec![AccessKey::new("AK3", "s3")]);
    }

    #[test]
    fn generates_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let first = resolve(None, None, None, &store).unwrap();
        assert_eq!(first.generated.as_deref(), Some(dir.path().join("s.redb.credentials").as_path()));
        let again = resolve(None, None, None, &store).unwrap();
        assert!(again.generated.is_none());
        assert_eq!(first.keys, again.keys);
        assert_eq!(first.keys[0].access_key.len(), 20);
        assert_eq!(first.keys[0].secret_key.len(), 40);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("s.redb.credentials")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(resolve(None, Some("a"), None, &store).is_err());
    }
}
