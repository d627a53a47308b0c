//! Who may call: the access-key table and the access hook (which also records the operation
//! name for the request log).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::credentials::AccessKey;

/// The configured access keys. An unknown key is `InvalidAccessKeyId`, as in AWS (s3s's
/// `SimpleAuth` answers `NotSignedUp`).
pub(crate) struct KeyTable(HashMap<String, SecretKey>);

impl KeyTable {
    pub(crate) fn new(keys: &[AccessKey]) -> Self {
        KeyTable(keys.iter().map(|k| (k.access_key.clone(), SecretKey::from(k.secret_key.as_str()))).collect())
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyTable {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0.get(access_key).cloned().ok_or_else(|| {
            s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
        })
    }
}

/// Filled with the S3 operation name once s3s has routed the request.
#[derive(Clone, Default, Debug)]
pub(crate) struct OpSlot(pub Arc<Mutex<Option<String>>>);

impl OpSlot {
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

/// The request id, visible to handlers through the request extensions.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub String);

/// Records the operation and denies anonymous requests (replacing s3s's default check, which
/// does only the latter).
pub(crate) struct Access;

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<OpSlot>()
            && let Ok(mut g) = slot.0.lock()
        {
            *g = Some(op);
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(AccessDenied, "Signature is required")),
        }
    }
}
