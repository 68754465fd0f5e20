//! AWS Signature Version 4 verification: the server side of the signing
//! the AWS CLI, boto3 and the SDKs do on every request.
//!
//! [`verify`] takes a request exactly as it was received ([`Request`]: the
//! raw path and query, every header as sent, the body bytes) and either
//! names who signed it ([`Caller`]) or refuses it with an [`AuthError`]
//! that carries the error type AWS's JSON protocols answer with
//! ([`AuthError::aws_type`]), its HTTP status ([`AuthError::status`]) and an
//! AWS-shaped message, so SDK error handling works unchanged.
//!
//! What is checked, in the order AWS's JSON services check it (the order,
//! types and messages follow the answers of DynamoDB, another awsJson1_0
//! service behind the same front end, as dynalite records them in its
//! `index.js`; Step Functions answers an unknown key with
//! `UnrecognizedClientException` and status 400, and an expired signature
//! with "Signature expired: … (… - 5 min.)"):
//!
//! 1. An `Authorization` header of the `AWS4-` family is present
//!    (`MissingAuthenticationTokenException`). Query-string signing
//!    (presigned URLs) is not supported.
//! 2. It has `Credential`, `SignedHeaders` and `Signature`, and the request
//!    has an `X-Amz-Date` or `Date` header (`IncompleteSignatureException`).
//! 3. The date is in ISO 8601 basic format (`20261204T120000Z`; a `Date`
//!    header may also be an RFC 2822/HTTP date, as botocore sends it) and
//!    within 5 minutes of now, either way (`InvalidSignatureException`,
//!    "Signature expired" / "Signature not yet current").
//! 4. `host` and the date header are among `SignedHeaders`.
//! 5. The algorithm is `AWS4-HMAC-SHA256`; the credential has 5 parts
//!    `AKID/YYYYMMDD/REGION/SERVICE/aws4_request` whose date is the request's
//!    date, whose service is the server's (`states`) and whose terminator is
//!    `aws4_request`; any region (letters, digits, `-`, `_`) is accepted.
//! 6. The access key id is one of the server's [`KeyPairs`]
//!    (`UnrecognizedClientException`); no session token is sent (piflow's
//!    keys are long-term key pairs).
//! 7. The signature is the one computed from the canonical request
//!    (compared in constant time), the body's SHA-256 is the one signed, and
//!    the signature was not already accepted within the last 5 minutes
//!    ([`ReplayGuard`]).
//!
//! The canonical request is built as botocore's `SigV4Auth` builds it for
//! every service but S3 (checked against AWS's SigV4 test suite and against
//! requests signed by botocore, boto3 and the AWS CLI): the path normalized
//! (dot segments and empty segments removed) and URI-encoded again, so a
//! `%` already in the path becomes `%25` ("double encoding"); the query
//! decoded, re-encoded and sorted; the signed headers lower-cased, their
//! values trimmed with inner runs of whitespace collapsed, repeated headers
//! joined with `,`; the payload hash the hex SHA-256 of the body, or the
//! `X-Amz-Content-SHA256` header when present (which must then be that
//! hash).
//!
//! For HTTP/2 the adapter passes the `:authority` pseudo-header as `host`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

mod canonical;

use canonical::{canonical_request, hex, payload_hash, query_pairs, signature, string_to_sign};

/// The signing name of Step Functions: the service a credential scope must
/// name for [`verify`].
pub const SERVICE: &str = "states";

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far the signed time may be from the server's clock, either way.
pub const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);

/// The environment variable holding the access key id(s) [`KeyPairs::from_env`] reads.
pub const ACCESS_KEY_ID_VAR: &str = "PIFLOW_API_ACCESS_KEY_ID";

/// The environment variable holding the secret(s) [`KeyPairs::from_env`] reads.
pub const SECRET_ACCESS_KEY_VAR: &str = "PIFLOW_API_SECRET_ACCESS_KEY";

/// How many signatures a [`ReplayGuard::default`] remembers at most.
pub const REPLAY_CAPACITY: usize = 100_000;

const TERMINATOR: &str = "aws4_request";
const ISO_BASIC: &str = "%Y%m%dT%H%M%SZ";

const MISSING_TOKEN: &str = "Request is missing Authentication Token";
const UNKNOWN_KEY: &str = "The security token included in the request is invalid.";
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

// ---------------------------------------------------------------------------
// Key pairs

/// The key pairs the server accepts: access key id → secret access key.
///
/// `Debug` shows the access key ids only, never a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPairs {
    secrets: HashMap<String, String>,
}

impl fmt::Debug for KeyPairs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.access_key_ids().collect();
        ids.sort_unstable();
        f.debug_struct("KeyPairs")
            .field("access_key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl KeyPairs {
    /// From [`ACCESS_KEY_ID_VAR`] and [`SECRET_ACCESS_KEY_VAR`]: one pair, or
    /// several as comma-separated lists of the same length (the n-th secret
    /// goes with the n-th access key id; blanks around commas are ignored).
    ///
    /// `Ok(None)` when neither variable is set. An error names the variable
    /// when one is set without the other, when the lists differ in length,
    /// when a value is empty or blank, not UTF-8, or an access key id is
    /// listed twice or holds a character a credential cannot carry. No
    /// message ever contains a secret.
    pub fn from_env() -> Result<Option<KeyPairs>, KeyPairsError> {
        let read = |name: &'static str| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyPairsError::new(format!(
                "{name} is not valid UTF-8: set it to the access key id(s) or secret(s) as plain text"
            ))),
        };
        Self::from_values(read(ACCESS_KEY_ID_VAR)?, read(SECRET_ACCESS_KEY_VAR)?)
    }

    /// [`KeyPairs::from_env`] on the two values given instead of the
    /// environment (`None`: the variable is not set).
    pub fn from_values(
        access_key_ids: Option<String>,
        secrets: Option<String>,
    ) -> Result<Option<KeyPairs>, KeyPairsError> {
        let (ids, secrets) = match (access_key_ids, secrets) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(KeyPairsError::new(format!(
                    "{ACCESS_KEY_ID_VAR} is set but {SECRET_ACCESS_KEY_VAR} is not: set both, or neither to serve the API without authentication"
                )));
            }
            (None, Some(_)) => {
                return Err(KeyPairsError::new(format!(
                    "{SECRET_ACCESS_KEY_VAR} is set but {ACCESS_KEY_ID_VAR} is not: set both, or neither to serve the API without authentication"
                )));
            }
            (Some(ids), Some(secrets)) => (ids, secrets),
        };
        let ids: Vec<String> = ids.split(',').map(|s| s.trim().to_string()).collect();
        let secrets: Vec<String> = secrets.split(',').map(|s| s.trim().to_string()).collect();
        if ids.len() != secrets.len() {
            return Err(KeyPairsError::new(format!(
                "{ACCESS_KEY_ID_VAR} lists {} access key id(s) but {SECRET_ACCESS_KEY_VAR} lists {} secret(s): give one secret per access key id, in the same order, both comma-separated",
                ids.len(),
                secrets.len()
            )));
        }
        Self::build(
            ids.into_iter().zip(secrets),
            ACCESS_KEY_ID_VAR,
            SECRET_ACCESS_KEY_VAR,
        )
        .map(Some)
    }

    /// From (access key id, secret access key) pairs: at least one; no id
    /// twice; no empty or blank value; no id with a `/`, a `,`, `=` or
    /// whitespace (a credential could not carry it).
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<KeyPairs, KeyPairsError> {
        Self::build(pairs, "access key id", "secret access key")
    }

    fn build(
        pairs: impl IntoIterator<Item = (String, String)>,
        id_name: &str,
        secret_name: &str,
    ) -> Result<KeyPairs, KeyPairsError> {
        let mut secrets = HashMap::new();
        for (n, (id, secret)) in pairs.into_iter().enumerate() {
            let nth = n + 1;
            if id.trim().is_empty() {
                return Err(KeyPairsError::new(format!(
                    "{id_name}: access key id #{nth} is empty"
                )));
            }
            if secret.trim().is_empty() {
                return Err(KeyPairsError::new(format!(
                    "{secret_name}: secret #{nth} (for access key id '{id}') is empty"
                )));
            }
            if let Some(c) = id
                .chars()
                .find(|c| matches!(c, '/' | ',' | '=') || c.is_whitespace() || c.is_control())
            {
                return Err(KeyPairsError::new(format!(
                    "{id_name}: access key id #{nth} '{}' holds {c:?}, which a SigV4 credential cannot carry: use letters and digits",
                    id.escape_debug()
                )));
            }
            if secrets.insert(id.clone(), secret).is_some() {
                return Err(KeyPairsError::new(format!(
                    "{id_name}: access key id '{id}' is listed twice"
                )));
            }
        }
        if secrets.is_empty() {
            return Err(KeyPairsError::new(format!("{id_name}: no key pair given")));
        }
        Ok(KeyPairs { secrets })
    }

    /// The accepted access key ids, in no particular order.
    pub fn access_key_ids(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    /// How many key pairs.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Never true for key pairs that were built (there is at least one).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.secrets.get(access_key_id).map(String::as_str)
    }
}

/// Why the API key pairs could not be read. The message names the variable
/// (or the pair) and never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KeyPairsError {
    message: String,
}

impl KeyPairsError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[(
        "api-keys-invalid",
        "the API key pairs (PIFLOW_API_ACCESS_KEY_ID, PIFLOW_API_SECRET_ACCESS_KEY) are not usable: one set without the other, lists of different lengths, an empty value, an access key id twice",
    )];

    fn new(message: String) -> Self {
        KeyPairsError { message }
    }

    pub fn code(&self) -> &'static str {
        "api-keys-invalid"
    }
}

// ---------------------------------------------------------------------------
// The request, the caller, the refusals

/// What is signed: the request exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// As received, e.g. `POST`.
    pub method: &'a str,
    /// The raw path as received (still percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// The raw query string without `?`; `""` when there is none.
    pub query: &'a str,
    /// Names as received (any case), values as received; a header sent
    /// several times appears several times, in the order received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The values of every header named `name` (case-insensitively), in order.
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The values of the header `name` joined with `,` (as a repeated header
    /// is read), or `None` when the header is absent.
    fn joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self.values(name).collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
    /// The region of the credential scope (any region is accepted).
    pub region: String,
    /// The service of the credential scope ([`SERVICE`] for [`verify`]).
    pub service: String,
}

/// Why a request was refused. The message (`Display`) is AWS's where AWS
/// has one; [`AuthError::aws_type`] and [`AuthError::status`] give what
/// the awsJson1_0 answer carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or one that is not AWS Signature Version 4.
    #[error("{0}")]
    Missing(String),
    /// The `Authorization` header lacks a part (`Credential`, `SignedHeaders`,
    /// `Signature`, a date header) or a part is malformed.
    #[error("{0}")]
    Incomplete(String),
    /// A form of signing piflow does not accept: presigned URLs, another
    /// algorithm, an unsigned or streaming payload.
    #[error("{0}")]
    Unsupported(String),
    /// Signed both with the `Authorization` header and in the query string.
    #[error("{0}")]
    Conflicting(String),
    /// `host` or the date header is not among the signed headers.
    #[error("{0}")]
    HeaderNotSigned(String),
    /// The credential scope names another date, service or terminator, or no region.
    #[error("{0}")]
    Scope(String),
    /// The access key id is not one of the server's.
    #[error("{0}")]
    UnknownKey(String),
    /// A session token (`X-Amz-Security-Token`) was sent.
    #[error("{0}")]
    SessionToken(String),
    /// The signature is not the one computed (wrong secret, or the request
    /// changed after signing); the message shows the canonical request and
    /// string to sign the server computed, as AWS does.
    #[error("{0}")]
    Mismatch(String),
    /// `X-Amz-Content-SHA256` is not the SHA-256 of the body received.
    #[error("{0}")]
    PayloadHash(String),
    /// Signed more than 5 minutes ago.
    #[error("{0}")]
    Expired(String),
    /// Signed more than 5 minutes in the future.
    #[error("{0}")]
    NotYetCurrent(String),
    /// The same signature was already accepted within the last 5 minutes.
    #[error("{0}")]
    Replayed(String),
}

impl AuthError {
    /// Every code [`Self::code`] returns, with its meaning (docs/codes.md).
    pub const CODES: &[(&str, &str)] = &[
        (
            "api-auth-missing",
            "the request has no Authorization header of AWS Signature Version 4 (MissingAuthenticationTokenException)",
        ),
        (
            "api-auth-incomplete",
            "the Authorization header lacks Credential, SignedHeaders or Signature, the request has no X-Amz-Date or Date header, or a part is malformed (IncompleteSignatureException)",
        ),
        (
            "api-auth-unsupported",
            "a form of signing piflow does not accept: a presigned URL (query-string signing), an algorithm other than AWS4-HMAC-SHA256, an unsigned or streaming payload (IncompleteSignatureException)",
        ),
        (
            "api-auth-conflicting",
            "the request is signed both in the Authorization header and in the query string (InvalidSignatureException)",
        ),
        (
            "api-auth-header-not-signed",
            "host or the date header is not among the signed headers (InvalidSignatureException)",
        ),
        (
            "api-auth-scope",
            "the credential scope names another date than the request's, another service than states, another terminator than aws4_request, or no region (InvalidSignatureException)",
        ),
        (
            "api-auth-unknown-key",
            "the access key id is not one of the server's key pairs (UnrecognizedClientException)",
        ),
        (
            "api-auth-session-token",
            "a session token (X-Amz-Security-Token) was sent; piflow's key pairs take none (UnrecognizedClientException)",
        ),
        (
            "api-auth-signature-mismatch",
            "the signature is not the one computed with the key pair's secret: a wrong secret, or the request changed after it was signed (InvalidSignatureException)",
        ),
        (
            "api-auth-payload-hash",
            "X-Amz-Content-SHA256 is not the SHA-256 of the body received (InvalidSignatureException)",
        ),
        (
            "api-auth-expired",
            "the request was signed more than 5 minutes before the server's time (InvalidSignatureException)",
        ),
        (
            "api-auth-not-yet-current",
            "the request was signed more than 5 minutes after the server's time (InvalidSignatureException)",
        ),
        (
            "api-auth-replayed",
            "a request with the same signature was already accepted within the last 5 minutes (InvalidSignatureException)",
        ),
    ];

    /// The stable piflow code, one of [`Self::CODES`].
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "api-auth-missing",
            AuthError::Incomplete(_) => "api-auth-incomplete",
            AuthError::Unsupported(_) => "api-auth-unsupported",
            AuthError::Conflicting(_) => "api-auth-conflicting",
            AuthError::HeaderNotSigned(_) => "api-auth-header-not-signed",
            AuthError::Scope(_) => "api-auth-scope",
            AuthError::UnknownKey(_) => "api-auth-unknown-key",
            AuthError::SessionToken(_) => "api-auth-session-token",
            AuthError::Mismatch(_) => "api-auth-signature-mismatch",
            AuthError::PayloadHash(_) => "api-auth-payload-hash",
            AuthError::Expired(_) => "api-auth-expired",
            AuthError::NotYetCurrent(_) => "api-auth-not-yet-current",
            AuthError::Replayed(_) => "api-auth-replayed",
        }
    }

    /// AWS's error type for the awsJson1_0 `__type` field (AWS sends it
    /// prefixed with `com.amazon.coral.service#`, which the SDKs strip).
    pub fn aws_type(&self) -> &'static str {
        match self {
            AuthError::Missing(_) => "MissingAuthenticationTokenException",
            AuthError::Incomplete(_) | AuthError::Unsupported(_) => "IncompleteSignatureException",
            AuthError::UnknownKey(_) | AuthError::SessionToken(_) => "UnrecognizedClientException",
            AuthError::Conflicting(_)
            | AuthError::HeaderNotSigned(_)
            | AuthError::Scope(_)
            | AuthError::Mismatch(_)
            | AuthError::PayloadHash(_)
            | AuthError::Expired(_)
            | AuthError::NotYetCurrent(_)
            | AuthError::Replayed(_) => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS answers these with on its JSON protocols: 400 for
    /// every one (Step Functions and DynamoDB answer
    /// `UnrecognizedClientException`, `InvalidSignatureException`,
    /// `IncompleteSignatureException` and
    /// `MissingAuthenticationTokenException` with 400 Bad Request; the 403s
    /// of AWS's "Common Errors" pages are the query protocol's).
    pub fn status(&self) -> u16 {
        400
    }
}

// ---------------------------------------------------------------------------
// Replay guard

/// Remembers the signatures accepted in the last 5 minutes, so that a
/// request replayed as is is refused.
///
/// A signature is remembered until its request could no longer be accepted
/// anyway (its signed time plus [`MAX_SKEW`]); expired ones are dropped on
/// every check. The memory is bounded: when full, the signature closest to
/// expiring is forgotten, so a full guard may let that one replay through
/// but never refuses a request it should accept.
///
/// Note that an identical request signed within the same second (same
/// body, same signed headers) has the same signature, so a client that sends
/// the very same call twice in one second has the second refused.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// signature → when it may be forgotten
    expiry: HashMap<[u8; 32], DateTime<Utc>>,
    /// the same, ordered by expiry
    by_expiry: BTreeSet<(DateTime<Utc>, [u8; 32])>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::with_capacity(REPLAY_CAPACITY)
    }
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` signatures (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// How many signatures are remembered now.
    pub fn len(&self) -> usize {
        self.lock().expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // The map stays consistent even if a holder panicked: keep going.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `signature` (remembered until `expires`); false when it was
    /// already recorded and has not expired at `now`.
    fn admit(&self, signature: [u8; 32], expires: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let mut seen = self.lock();
        let Seen { expiry, by_expiry } = &mut *seen;
        while let Some(first) = by_expiry.first().copied() {
            if first.0 >= now {
                break;
            }
            by_expiry.remove(&first);
            expiry.remove(&first.1);
        }
        if expiry.contains_key(&signature) {
            return false;
        }
        while expiry.len() >= self.capacity {
            let Some(first) = by_expiry.pop_first() else {
                break;
            };
            expiry.remove(&first.1);
        }
        expiry.insert(signature, expires);
        by_expiry.insert((expires, signature));
        true
    }
}

// ---------------------------------------------------------------------------
// Verification

/// Verifies a Step Functions request: [`verify_for_service`] with [`SERVICE`].
pub fn verify(
    req: &Request,
    keys: &KeyPairs,
    now: DateTime<Utc>,
    replay: &ReplayGuard,
) -> Result<Caller, AuthError> {
    verify_for_service(req, keys, SERVICE, now, replay)
}

/// Verifies the Signature Version 4 of `req`, signed for `service`, at time
/// `now`; records its signature in `replay` when it is accepted.
pub fn verify_for_service(
    req: &Request,
    keys: &KeyPairs,
    service: &str,
    now: DateTime<Utc>,
    replay: &ReplayGuard,
) -> Result<Caller, AuthError> {
    let auth = parse_authorization(req)?;
    let signed_at = signed_time(req)?;
    check_skew(&signed_at, now)?;
    let signed_names: Vec<&str> = auth.signed_headers.split(';').collect();
    check_signed_headers(&signed_names, &signed_at)?;
    if auth.algorithm != ALGORITHM {
        return Err(AuthError::Unsupported(format!(
            "Unsupported AWS 'algorithm': '{}' (only {ALGORITHM} for now).",
            auth.algorithm
        )));
    }
    let scope = parse_credential(&auth.credential)?;
    check_scope(&scope, service, &signed_at.stamp)?;
    let Some(secret) = keys.secret(scope.access_key_id) else {
        return Err(AuthError::UnknownKey(UNKNOWN_KEY.to_string()));
    };
    if req.values("x-amz-security-token").next().is_some() {
        return Err(AuthError::SessionToken(format!(
            "{UNKNOWN_KEY} piflow's API key pairs take no session token (X-Amz-Security-Token): call piflow without AWS_SESSION_TOKEN or a session profile"
        )));
    }
    let payload_hash = payload_hash(req)?;
    let canonical = canonical_request(req, &auth.signed_headers, &signed_names, &payload_hash);
    let to_sign = string_to_sign(&signed_at.stamp, &scope, &canonical);
    let expected = signature(secret, &scope, &to_sign).ok_or_else(|| {
        AuthError::Mismatch(format!(
            "{SIGNATURE_MISMATCH} (the signing key could not be derived)"
        ))
    })?;
    let expected_hex = hex(&expected);
    if !bool::from(expected_hex.as_bytes().ct_eq(auth.signature.as_bytes())) {
        return Err(AuthError::Mismatch(format!(
            "{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{to_sign}'\n"
        )));
    }
    if let Some(declared) = req.joined("x-amz-content-sha256") {
        let actual = hex(&Sha256::digest(req.body));
        if !declared.trim().eq_ignore_ascii_case(&actual) {
            return Err(AuthError::PayloadHash(format!(
                "The provided 'x-amz-content-sha256' header does not match what was computed: '{declared}' was signed but the body received hashes to '{actual}'."
            )));
        }
    }
    if !replay.admit(expected, signed_at.time + MAX_SKEW, now) {
        return Err(AuthError::Replayed(format!(
            "Signature already used: a request with this signature (signed at {}) was accepted within the last 5 minutes, and piflow accepts each signed request once. Sign the request again to repeat it; an identical request signed within the same second has the same signature.",
            signed_at.stamp
        )));
    }
    Ok(Caller {
        access_key_id: scope.access_key_id.to_string(),
        region: scope.region.to_string(),
        service: scope.service.to_string(),
    })
}

/// The parts of the `Authorization` header.
struct Authorization {
    algorithm: String,
    credential: String,
    signed_headers: String,
    signature: String,
}

fn parse_authorization(req: &Request) -> Result<Authorization, AuthError> {
    let headers: Vec<&str> = req.values("authorization").collect();
    let presigned = query_pairs(req.query)
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(b"X-Amz-Algorithm"));
    let header = match headers.as_slice() {
        [] if presigned => {
            return Err(AuthError::Unsupported(
                "piflow accepts Signature Version 4 in the Authorization header only: query-string signing (a presigned URL, X-Amz-Algorithm in the query) is not supported. Send the request with an Authorization header, as the AWS CLI and SDKs do.".to_string(),
            ));
        }
        [] => return Err(AuthError::Missing(MISSING_TOKEN.to_string())),
        [one] => one.trim(),
        [..] => {
            return Err(AuthError::Incomplete(format!(
                "The request has {} Authorization headers: send exactly one.",
                headers.len()
            )));
        }
    };
    if !header.starts_with("AWS4-") {
        return Err(AuthError::Missing(MISSING_TOKEN.to_string()));
    }
    if presigned {
        return Err(AuthError::Conflicting(
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.".to_string(),
        ));
    }
    let (algorithm, rest) = header
        .split_once(|c: char| c.is_ascii_whitespace() || c == ',')
        .unwrap_or((header, ""));
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|p| !p.is_empty())
    {
        let Some((key, value)) = part.split_once('=') else {
            return Err(AuthError::Incomplete(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'."
            )));
        };
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let mut missing = String::new();
    if credential.is_none_or(str::is_empty) {
        missing.push_str("Authorization header requires 'Credential' parameter. ");
    }
    if signature.is_none_or(str::is_empty) {
        missing.push_str("Authorization header requires 'Signature' parameter. ");
    }
    if signed_headers.is_none() {
        missing.push_str("Authorization header requires 'SignedHeaders' parameter. ");
    }
    if req.values("x-amz-date").next().is_none() && req.values("date").next().is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    if !missing.is_empty() {
        return Err(AuthError::Incomplete(format!(
            "{missing}Authorization={header}"
        )));
    }
    Ok(Authorization {
        algorithm: algorithm.to_string(),
        credential: credential.unwrap_or_default().to_string(),
        signed_headers: signed_headers.unwrap_or_default().to_string(),
        signature: signature.unwrap_or_default().to_string(),
    })
}

/// The time a request was signed at, and where it came from.
struct SignedAt {
    time: DateTime<Utc>,
    /// ISO 8601 basic, as it goes in the string to sign.
    stamp: String,
    /// The header it came from: `x-amz-date` or `date`.
    header: &'static str,
}

fn signed_time(req: &Request) -> Result<SignedAt, AuthError> {
    if let Some(value) = req.joined("x-amz-date") {
        let time = parse_iso_basic(value.trim()).ok_or_else(|| bad_date(&value))?;
        return Ok(SignedAt {
            time,
            stamp: value.trim().to_string(),
            header: "x-amz-date",
        });
    }
    let value = req.joined("date").unwrap_or_default();
    let trimmed = value.trim();
    let time = parse_iso_basic(trimmed)
        .or_else(|| {
            DateTime::parse_from_rfc2822(trimmed)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
        .ok_or_else(|| bad_date(&value))?;
    Ok(SignedAt {
        time,
        stamp: time.format(ISO_BASIC).to_string(),
        header: "date",
    })
}

fn bad_date(value: &str) -> AuthError {
    AuthError::Incomplete(format!(
        "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
    ))
}

/// `YYYYMMDD'T'HHMMSS'Z'`, strictly.
fn parse_iso_basic(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(4..6)?, digits(6..8)?)?;
    let time = date.and_hms_opt(digits(9..11)?, digits(11..13)?, digits(13..15)?)?;
    Some(time.and_utc())
}

fn check_skew(signed: &SignedAt, now: DateTime<Utc>) -> Result<(), AuthError> {
    let fmt = |t: DateTime<Utc>| t.format(ISO_BASIC).to_string();
    if signed.time < now - MAX_SKEW {
        return Err(AuthError::Expired(format!(
            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
            signed.stamp,
            fmt(now - MAX_SKEW),
            fmt(now)
        )));
    }
    if signed.time > now + MAX_SKEW {
        return Err(AuthError::NotYetCurrent(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            signed.stamp,
            fmt(now + MAX_SKEW),
            fmt(now)
        )));
    }
    Ok(())
}

fn check_signed_headers(names: &[&str], signed: &SignedAt) -> Result<(), AuthError> {
    let has = |wanted: &str| names.iter().any(|n| n.eq_ignore_ascii_case(wanted));
    if !has("host") {
        return Err(AuthError::HeaderNotSigned(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".to_string(),
        ));
    }
    if !has(signed.header) {
        let shown = if signed.header == "date" {
            "Date"
        } else {
            "X-Amz-Date"
        };
        return Err(AuthError::HeaderNotSigned(format!(
            "'{shown}' must be a 'SignedHeader' in the AWS Authorization: it carries the time the request was signed."
        )));
    }
    Ok(())
}

/// The five parts of a credential.
struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
}

fn parse_credential(credential: &str) -> Result<Scope<'_>, AuthError> {
    let parts: Vec<&str> = credential.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [access_key_id, date, region, service, terminator] => Ok(Scope {
            access_key_id,
            date,
            region,
            service,
            terminator,
        }),
        _ => Err(AuthError::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        ))),
    }
}

fn check_scope(scope: &Scope, service: &str, stamp: &str) -> Result<(), AuthError> {
    let mut wrong = Vec::new();
    if scope.region.is_empty()
        || !scope
            .region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        wrong.push(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            scope.region
        ));
    }
    if scope.service != service {
        wrong.push(format!(
            "Credential should be scoped to correct service: '{service}'."
        ));
    }
    if scope.terminator != TERMINATOR {
        wrong.push(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
            scope.terminator
        ));
    }
    let day = stamp.get(..8).unwrap_or(stamp);
    if scope.date != day {
        wrong.push(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{day}', from '{stamp}'.",
            scope.date
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(AuthError::Scope(wrong.join(" ")))
    }
}

#[cfg(test)]
mod tests;
