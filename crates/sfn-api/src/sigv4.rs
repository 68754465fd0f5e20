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
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
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

/// The payload hash of the canonical request: `X-Amz-Content-SHA256` when
/// sent (checked against the body once the signature is verified), else
/// the SHA-256 of the body.
fn payload_hash(req: &Request) -> Result<String, AuthError> {
    let Some(declared) = req.joined("x-amz-content-sha256") else {
        return Ok(hex(&Sha256::digest(req.body)));
    };
    let value = declared.trim();
    if value == "UNSIGNED-PAYLOAD" || value.starts_with("STREAMING-") {
        return Err(AuthError::Unsupported(format!(
            "X-Amz-Content-SHA256 '{value}' is not supported: piflow requires the body to be signed (its SHA-256 in the canonical request)."
        )));
    }
    Ok(declared)
}

/// The canonical request of AWS's "Create a canonical request for Signature
/// Version 4", as botocore's SigV4Auth builds it.
fn canonical_request(
    req: &Request,
    signed_headers: &str,
    signed_names: &[&str],
    payload_hash: &str,
) -> String {
    let mut out = String::new();
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for name in signed_names {
        let lower = name.to_ascii_lowercase();
        let values: Vec<String> = req.values(&lower).map(trim_all).collect();
        out.push_str(&lower);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// The path normalized (botocore's `normalize_url_path`: dot segments and
/// empty segments removed, `/` for an empty path), then URI-encoded again
/// with `/` kept: every byte but `A-Za-z0-9-_.~/` becomes `%XX`, `%` too.
fn canonical_uri(path: &str) -> String {
    let normalized = normalize_path(path);
    let mut out = String::with_capacity(normalized.len());
    for &b in normalized.as_bytes() {
        if b == b'/' || is_unreserved(b) {
            out.push(char::from(b));
        } else {
            push_percent(&mut out, b);
        }
    }
    out
}

/// RFC 3986 "Remove Dot Segments", with consecutive slashes collapsed, as
/// botocore's `remove_dot_segments`.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !segments.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", segments.join("/"))
}

/// The query decoded (`+` is a space, as botocore sends one) and encoded
/// again, sorted by key then value: `k=v` joined with `&`.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .into_iter()
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The decoded (key, value) pairs of a raw query string; empty pieces skipped.
fn query_pairs(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let high = b.get(i + 1).and_then(|c| char::from(*c).to_digit(16));
                let low = b.get(i + 2).and_then(|c| char::from(*c).to_digit(16));
                if let (Some(h), Some(l)) = (high, low) {
                    // Two hex digits: at most 0xFF.
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            push_percent(&mut out, b);
        }
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn push_percent(out: &mut String, b: u8) {
    const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Trims a header value and collapses inner runs of whitespace to one space
/// (botocore: `' '.join(value.split())`, Python's whitespace).
fn trim_all(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn string_to_sign(stamp: &str, scope: &Scope, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{stamp}\n{}/{}/{}/{}\n{}",
        scope.date,
        scope.region,
        scope.service,
        scope.terminator,
        hex(&Sha256::digest(canonical.as_bytes()))
    )
}

/// HMAC-SHA256 of the string to sign with the key derived from the secret:
/// ("AWS4" + secret, date, region, service, "aws4_request"). `None` only if
/// HMAC refused a key, which it never does.
fn signature(secret: &str, scope: &Scope, to_sign: &str) -> Option<[u8; 32]> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes())?;
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes())?;
    let k_signing = hmac_sha256(&k_service, scope.terminator.as_bytes())?;
    hmac_sha256(&k_signing, to_sign.as_bytes())
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac.finalize().into_bytes().into())
}

fn hex(bytes: &[u8]) -> String {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::path::{Path, PathBuf};

    // -----------------------------------------------------------------------
    // A real boto3 request. Produced by
    // crates/sfn-api/tests/fixtures/sign_with_botocore.py (case
    // `sfn-start-execution-boto3`): boto3 1.44.5 / botocore 1.44.8, a
    // `stepfunctions` client in eu-west-1 calling StartExecution, its clock
    // frozen at 2026-12-04T12:00:00Z, captured on the socket by a local
    // server. Host, User-Agent, amz-sdk-* and Accept-Encoding are as urllib3
    // sent them (only content-type, host, x-amz-date and x-amz-target are
    // signed).

    const AKID: &str = "AKIDPIFLOWEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYPIFLOWKEY";
    const BOTO3_HEADERS: &[(&str, &str)] = &[
        ("Host", "127.0.0.1:45393"),
        ("Accept-Encoding", "identity"),
        ("X-Amz-Target", "AWSStepFunctions.StartExecution"),
        ("Content-Type", "application/x-amz-json-1.0"),
        (
            "User-Agent",
            "Boto3/1.44.5 md/Botocore#1.44.8 ua/2.1 os/linux#6.18.44-fc-v1252 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/e,N,b,Z,E cfg/retry-mode#standard Botocore/1.44.8",
        ),
        ("X-Amz-Date", "20261204T120000Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDPIFLOWEXAMPLE/20261204/eu-west-1/states/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0abbdb2b71e78df45a56c790e52930f2f52bb201b2c185f1e1ea8de8cb649eda",
        ),
        (
            "amz-sdk-invocation-id",
            "c7e57db3-ee94-4b6e-b643-a9b43ded37fb",
        ),
        ("amz-sdk-request", "attempt=1; max=3"),
        ("Content-Length", "178"),
    ];
    const BOTO3_BODY: &str = r#"{"stateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:release", "name": "r-1", "input": "{\"version\": \"1.2.3\", \"note\": \"h\u00e9llo  w\u00f6rld \u2713\"}"}"#;

    fn signed_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
    }

    fn keys() -> KeyPairs {
        KeyPairs::from_pairs([
            ("AKIDOTHER".to_string(), "another secret".to_string()),
            (AKID.to_string(), SECRET.to_string()),
        ])
        .unwrap()
    }

    fn boto3_headers() -> Vec<(String, String)> {
        BOTO3_HEADERS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn set(headers: &mut [(String, String)], name: &str, value: &str) {
        let slot = headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap();
        slot.1 = value.to_string();
    }

    fn remove(headers: &mut Vec<(String, String)>, name: &str) {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn authorization(headers: &[(String, String)]) -> String {
        headers
            .iter()
            .find(|(n, _)| n == "Authorization")
            .unwrap()
            .1
            .clone()
    }

    fn check(
        headers: &[(String, String)],
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Caller, AuthError> {
        check_with(headers, body, "", now, &keys(), &ReplayGuard::default())
    }

    fn check_with(
        headers: &[(String, String)],
        body: &str,
        query: &str,
        now: DateTime<Utc>,
        keys: &KeyPairs,
        replay: &ReplayGuard,
    ) -> Result<Caller, AuthError> {
        let req = Request {
            method: "POST",
            path: "/",
            query,
            headers,
            body: body.as_bytes(),
        };
        verify(&req, keys, now, replay)
    }

    fn boto3_caller() -> Caller {
        Caller {
            access_key_id: AKID.to_string(),
            region: "eu-west-1".to_string(),
            service: "states".to_string(),
        }
    }

    /// The refusal, after checking its AWS type and status.
    fn refused(result: Result<Caller, AuthError>, aws_type: &str) -> AuthError {
        let e = result.expect_err("the request should be refused");
        assert_eq!(e.aws_type(), aws_type, "{e:?}");
        assert_eq!(e.status(), 400);
        e
    }

    #[test]
    fn a_request_signed_by_boto3_is_accepted() {
        let headers = boto3_headers();
        assert_eq!(check(&headers, BOTO3_BODY, signed_at()), Ok(boto3_caller()));
    }

    #[test]
    fn unsigned_headers_may_change_and_header_names_any_case() {
        let mut headers = boto3_headers();
        set(&mut headers, "User-Agent", "something else");
        set(&mut headers, "amz-sdk-request", "attempt=2; max=3");
        for (name, _) in &mut headers {
            *name = name.to_ascii_uppercase();
        }
        // The HTTP server may also have trimmed or kept blanks around values.
        set(
            &mut headers,
            "X-AMZ-TARGET",
            "  AWSStepFunctions.StartExecution ",
        );
        assert_eq!(check(&headers, BOTO3_BODY, signed_at()), Ok(boto3_caller()));
    }

    #[test]
    fn no_authorization_header_is_a_missing_token() {
        let mut headers = boto3_headers();
        remove(&mut headers, "Authorization");
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "MissingAuthenticationTokenException",
        );
        assert_eq!(e.code(), "api-auth-missing");
        assert_eq!(e.to_string(), "Request is missing Authentication Token");

        set_auth_and_expect_missing("Basic dXNlcjpwYXNz");
        set_auth_and_expect_missing("");
    }

    fn set_auth_and_expect_missing(value: &str) {
        let mut headers = boto3_headers();
        set(&mut headers, "Authorization", value);
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "MissingAuthenticationTokenException",
        );
        assert_eq!(e.code(), "api-auth-missing");
    }

    /// The boto3 request with its Authorization header replaced by `f(header)`.
    fn with_authorization(f: impl Fn(&str) -> String) -> Result<Caller, AuthError> {
        let mut headers = boto3_headers();
        let value = f(&authorization(&headers));
        set(&mut headers, "Authorization", &value);
        check(&headers, BOTO3_BODY, signed_at())
    }

    #[test]
    fn a_missing_part_is_an_incomplete_signature_naming_it() {
        for (part, cut) in [
            (
                "Credential",
                "Credential=AKIDPIFLOWEXAMPLE/20261204/eu-west-1/states/aws4_request, ",
            ),
            (
                "SignedHeaders",
                "SignedHeaders=content-type;host;x-amz-date;x-amz-target, ",
            ),
            (
                "Signature",
                ", Signature=0abbdb2b71e78df45a56c790e52930f2f52bb201b2c185f1e1ea8de8cb649eda",
            ),
        ] {
            let e = refused(
                with_authorization(|a| a.replace(cut, "")),
                "IncompleteSignatureException",
            );
            assert_eq!(e.code(), "api-auth-incomplete");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("Authorization header requires '{part}' parameter. Authorization=AWS4-HMAC-SHA256 ")),
                "{text}"
            );
        }
        // All missing at once, and no date header: every part is named.
        let mut headers = boto3_headers();
        set(&mut headers, "Authorization", "AWS4-HMAC-SHA256");
        remove(&mut headers, "X-Amz-Date");
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "IncompleteSignatureException",
        );
        assert_eq!(
            e.to_string(),
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256"
        );
    }

    #[test]
    fn malformed_parts_are_incomplete_signatures() {
        let e = refused(
            with_authorization(|a| a.replace("/eu-west-1/states/", "/eu-west-1/")),
            "IncompleteSignatureException",
        );
        assert_eq!(
            e.to_string(),
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKIDPIFLOWEXAMPLE/20261204/eu-west-1/aws4_request'"
        );
        let e = refused(
            with_authorization(|a| a.replace("/aws4_request,", "/aws4_request/more,")),
            "IncompleteSignatureException",
        );
        assert!(
            e.to_string()
                .starts_with("Credential must have exactly 5 slash-delimited elements"),
            "{e}"
        );
        // Trailing slashes are ignored, as AWS does.
        assert_eq!(
            with_authorization(|a| a.replace("/aws4_request,", "/aws4_request//,")),
            Ok(boto3_caller())
        );
        let e = refused(
            with_authorization(|a| a.replace(", SignedHeaders", ", SignedHeaders ")),
            "IncompleteSignatureException",
        );
        assert!(
            e.to_string()
                .starts_with("'SignedHeaders' not a valid key=value pair (missing equal-sign)"),
            "{e}"
        );

        let mut headers = boto3_headers();
        set(&mut headers, "X-Amz-Date", "2026-12-04T12:00:00Z");
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "IncompleteSignatureException",
        );
        assert_eq!(
            e.to_string(),
            "Date must be in ISO-8601 'basic format'. Got '2026-12-04T12:00:00Z'. See http://en.wikipedia.org/wiki/ISO_8601"
        );

        let mut headers = boto3_headers();
        let auth = authorization(&headers);
        headers.push(("authorization".to_string(), auth));
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "IncompleteSignatureException",
        );
        assert_eq!(e.code(), "api-auth-incomplete");
    }

    #[test]
    fn other_algorithms_and_presigned_urls_are_unsupported() {
        let e = refused(
            with_authorization(|a| a.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")),
            "IncompleteSignatureException",
        );
        assert_eq!(e.code(), "api-auth-unsupported");
        assert_eq!(
            e.to_string(),
            "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for now)."
        );

        let presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDPIFLOWEXAMPLE%2F20261204%2Feu-west-1%2Fstates%2Faws4_request&X-Amz-Date=20261204T120000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        let mut headers = boto3_headers();
        remove(&mut headers, "Authorization");
        let e = refused(
            check_with(
                &headers,
                BOTO3_BODY,
                presigned,
                signed_at(),
                &keys(),
                &ReplayGuard::default(),
            ),
            "IncompleteSignatureException",
        );
        assert_eq!(e.code(), "api-auth-unsupported");
        assert!(
            e.to_string()
                .contains("query-string signing (a presigned URL"),
            "{e}"
        );

        let headers = boto3_headers();
        let e = refused(
            check_with(
                &headers,
                BOTO3_BODY,
                presigned,
                signed_at(),
                &keys(),
                &ReplayGuard::default(),
            ),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-conflicting");
    }

    #[test]
    fn host_and_the_date_must_be_signed() {
        let e = refused(
            with_authorization(|a| {
                a.replace(
                    "SignedHeaders=content-type;host;",
                    "SignedHeaders=content-type;",
                )
            }),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-header-not-signed");
        assert_eq!(
            e.to_string(),
            "'Host' must be a 'SignedHeader' in the AWS Authorization."
        );

        let e = refused(
            with_authorization(|a| a.replace("host;x-amz-date;", "host;")),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-header-not-signed");
        assert!(
            e.to_string()
                .starts_with("'X-Amz-Date' must be a 'SignedHeader'"),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_scope_is_an_invalid_signature_naming_every_part() {
        let e = refused(
            with_authorization(|a| {
                a.replace(
                    "/20261204/eu-west-1/states/aws4_request",
                    "/20261203//lambda/aws5_request",
                )
            }),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-scope");
        assert_eq!(
            e.to_string(),
            "Credential should be scoped to a valid region, not ''. Credential should be scoped to correct service: 'states'. Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20261203' != '20261204', from '20261204T120000Z'."
        );
        // Any region is accepted, but the signature covers it.
        let e = refused(
            with_authorization(|a| a.replace("/eu-west-1/", "/us-east-1/")),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
    }

    #[test]
    fn an_unknown_access_key_is_an_unrecognized_client() {
        let e = refused(
            with_authorization(|a| {
                a.replace("Credential=AKIDPIFLOWEXAMPLE/", "Credential=AKIDSTRANGER/")
            }),
            "UnrecognizedClientException",
        );
        assert_eq!(e.code(), "api-auth-unknown-key");
        assert_eq!(
            e.to_string(),
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn a_wrong_secret_is_an_invalid_signature() {
        let headers = boto3_headers();
        let keys =
            KeyPairs::from_pairs([(AKID.to_string(), "not the secret".to_string())]).unwrap();
        let e = refused(
            check_with(
                &headers,
                BOTO3_BODY,
                "",
                signed_at(),
                &keys,
                &ReplayGuard::default(),
            ),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
        let text = e.to_string();
        assert!(
            text.starts_with("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'POST\n/\n\ncontent-type:application/x-amz-json-1.0\nhost:127.0.0.1:45393\nx-amz-date:20261204T120000Z\nx-amz-target:AWSStepFunctions.StartExecution\n\ncontent-type;host;x-amz-date;x-amz-target\n"),
            "{text}"
        );
        assert!(text.contains("\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20261204T120000Z\n20261204/eu-west-1/states/aws4_request\n"), "{text}");
        assert!(!text.contains("not the secret"));
    }

    #[test]
    fn a_changed_body_is_an_invalid_signature() {
        let headers = boto3_headers();
        let body = BOTO3_BODY.replace("r-1", "r-2");
        let e = refused(
            check(&headers, &body, signed_at()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
        let e = refused(
            check(&headers, &format!("{BOTO3_BODY} "), signed_at()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
    }

    #[test]
    fn a_changed_signed_header_is_an_invalid_signature() {
        for (name, value) in [
            ("X-Amz-Target", "AWSStepFunctions.StopExecution"),
            ("Host", "127.0.0.1:45394"),
            ("Content-Type", "application/json"),
        ] {
            let mut headers = boto3_headers();
            set(&mut headers, name, value);
            let e = refused(
                check(&headers, BOTO3_BODY, signed_at()),
                "InvalidSignatureException",
            );
            assert_eq!(e.code(), "api-auth-signature-mismatch", "{name}");
        }
        // A signed header sent twice.
        let mut headers = boto3_headers();
        headers.push((
            "x-amz-target".to_string(),
            "AWSStepFunctions.StartExecution".to_string(),
        ));
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
        // A signed header removed.
        let mut headers = boto3_headers();
        remove(&mut headers, "Content-Type");
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
        // Another path or method.
        let headers = boto3_headers();
        let req = Request {
            method: "POST",
            path: "/x",
            query: "",
            headers: &headers,
            body: BOTO3_BODY.as_bytes(),
        };
        let e = refused(
            verify(&req, &keys(), signed_at(), &ReplayGuard::default()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
        let req = Request {
            method: "PUT",
            path: "/",
            query: "",
            headers: &headers,
            body: BOTO3_BODY.as_bytes(),
        };
        let e = refused(
            verify(&req, &keys(), signed_at(), &ReplayGuard::default()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
        let req = Request {
            method: "POST",
            path: "/",
            query: "a=b",
            headers: &headers,
            body: BOTO3_BODY.as_bytes(),
        };
        let e = refused(
            verify(&req, &keys(), signed_at(), &ReplayGuard::default()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-signature-mismatch");
    }

    #[test]
    fn a_signature_from_more_than_5_minutes_ago_has_expired() {
        let headers = boto3_headers();
        let five = signed_at() + TimeDelta::minutes(5);
        assert_eq!(check(&headers, BOTO3_BODY, five), Ok(boto3_caller()));
        let e = refused(
            check(&headers, BOTO3_BODY, five + TimeDelta::seconds(1)),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-expired");
        let e = refused(
            check(
                &headers,
                BOTO3_BODY,
                Utc.with_ymd_and_hms(2026, 12, 4, 12, 10, 1).unwrap(),
            ),
            "InvalidSignatureException",
        );
        assert_eq!(
            e.to_string(),
            "Signature expired: 20261204T120000Z is now earlier than 20261204T120501Z (20261204T121001Z - 5 min.)"
        );
    }

    #[test]
    fn a_signature_from_more_than_5_minutes_ahead_is_not_yet_current() {
        let headers = boto3_headers();
        let five = signed_at() - TimeDelta::minutes(5);
        assert_eq!(check(&headers, BOTO3_BODY, five), Ok(boto3_caller()));
        let e = refused(
            check(&headers, BOTO3_BODY, five - TimeDelta::seconds(1)),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-not-yet-current");
        assert_eq!(
            e.to_string(),
            "Signature not yet current: 20261204T120000Z is still later than 20261204T115959Z (20261204T115459Z + 5 min.)"
        );
    }

    #[test]
    fn a_replayed_request_is_refused() {
        let headers = boto3_headers();
        let replay = ReplayGuard::default();
        let once = check_with(&headers, BOTO3_BODY, "", signed_at(), &keys(), &replay);
        assert_eq!(once, Ok(boto3_caller()));
        let later = signed_at() + TimeDelta::minutes(4);
        let e = refused(
            check_with(&headers, BOTO3_BODY, "", later, &keys(), &replay),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-replayed");
        assert!(e.to_string().starts_with("Signature already used: "), "{e}");
        // A refused request is not remembered: only accepted signatures are.
        let wrong = KeyPairs::from_pairs([(AKID.to_string(), "nope".to_string())]).unwrap();
        let fresh = ReplayGuard::default();
        assert!(check_with(&headers, BOTO3_BODY, "", signed_at(), &wrong, &fresh).is_err());
        assert!(fresh.is_empty());
        assert_eq!(
            check_with(&headers, BOTO3_BODY, "", signed_at(), &keys(), &fresh),
            Ok(boto3_caller())
        );
    }

    #[test]
    fn the_replay_guard_forgets_expired_signatures_and_stays_bounded() {
        let guard = ReplayGuard::with_capacity(2);
        let t = signed_at();
        assert!(guard.admit([1; 32], t + TimeDelta::minutes(5), t));
        assert!(guard.admit([2; 32], t + TimeDelta::minutes(3), t));
        assert!(!guard.admit([1; 32], t + TimeDelta::minutes(5), t));
        assert_eq!(guard.len(), 2);
        // Full: the signature closest to expiring (2) is forgotten.
        assert!(guard.admit([3; 32], t + TimeDelta::minutes(4), t));
        assert_eq!(guard.len(), 2);
        assert!(!guard.admit([1; 32], t + TimeDelta::minutes(5), t));
        assert!(!guard.admit([3; 32], t + TimeDelta::minutes(4), t));
        // Expired entries are dropped: at t+4:30, 3 has expired, 1 has not.
        let later = t + TimeDelta::seconds(270);
        assert!(guard.admit([3; 32], later + TimeDelta::minutes(5), later));
        assert!(!guard.admit([1; 32], t + TimeDelta::minutes(5), later));
        let much_later = t + TimeDelta::hours(1);
        assert!(guard.admit([4; 32], much_later, much_later));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn a_session_token_is_refused() {
        let mut headers = boto3_headers();
        headers.push((
            "X-Amz-Security-Token".to_string(),
            "FQoGZXIvYXdzEXAMPLE".to_string(),
        ));
        let e = refused(
            check(&headers, BOTO3_BODY, signed_at()),
            "UnrecognizedClientException",
        );
        assert_eq!(e.code(), "api-auth-session-token");
        assert!(
            e.to_string()
                .starts_with("The security token included in the request is invalid."),
            "{e}"
        );
    }

    // -----------------------------------------------------------------------
    // Every request of crates/sfn-api/tests/fixtures/botocore_signed.json
    // (made by sign_with_botocore.py: boto3, the AWS CLI, SigV4Auth).

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    fn botocore_cases() -> serde_json::Value {
        let text = std::fs::read_to_string(fixtures().join("botocore_signed.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn time(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn case_request(
        case: &serde_json::Value,
    ) -> (String, String, String, Vec<(String, String)>, String) {
        let s = |k: &str| case[k].as_str().unwrap().to_string();
        let headers = case["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (s("method"), s("path"), s("query"), headers, s("body"))
    }

    #[test]
    fn requests_signed_by_botocore_boto3_and_the_aws_cli_are_accepted() {
        let all = botocore_cases();
        let keys = KeyPairs::from_pairs([(
            all["access_key_id"].as_str().unwrap().to_string(),
            all["secret_access_key"].as_str().unwrap().to_string(),
        )])
        .unwrap();
        let mut seen = Vec::new();
        for case in all["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            seen.push(name);
            let now = time(
                case.get("now")
                    .and_then(|n| n.as_str())
                    .unwrap_or(all["now"].as_str().unwrap()),
            );
            let (method, path, query, headers, body) = case_request(case);
            let req = Request {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                body: body.as_bytes(),
            };
            let replay = ReplayGuard::default();
            let result = verify(&req, &keys, now, &replay);
            match name {
                "unsigned-payload" => {
                    let e = refused(result, "IncompleteSignatureException");
                    assert_eq!(e.code(), "api-auth-unsupported", "{name}");
                }
                "session-token" => {
                    let e = refused(result, "UnrecognizedClientException");
                    assert_eq!(e.code(), "api-auth-session-token", "{name}");
                }
                _ => {
                    let caller = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                    let scope = authorization(&headers);
                    let region = scope.split('/').nth(2).unwrap();
                    assert_eq!(caller.access_key_id, "AKIDPIFLOWEXAMPLE", "{name}");
                    assert_eq!(caller.region, region, "{name}");
                    assert_eq!(caller.service, "states", "{name}");
                    // And the same request again is a replay.
                    let e = refused(
                        verify(&req, &keys, now, &replay),
                        "InvalidSignatureException",
                    );
                    assert_eq!(e.code(), "api-auth-replayed", "{name}");
                }
            }
        }
        for expected in [
            "sfn-start-execution-boto3",
            "sfn-list-state-machines-aws-cli",
            "date-header",
            "path-and-query",
            "x-amz-content-sha256",
            "unsigned-payload",
            "session-token",
        ] {
            assert!(seen.contains(&expected), "no case {expected} in {seen:?}");
        }
    }

    #[test]
    fn a_body_not_matching_x_amz_content_sha256_is_refused() {
        let all = botocore_cases();
        let case = all["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "x-amz-content-sha256")
            .unwrap();
        let (method, path, query, headers, _) = case_request(case);
        // The signature covers the header, not the body: the header must be the body's hash.
        let req = Request {
            method: &method,
            path: &path,
            query: &query,
            headers: &headers,
            body: b"{\"a\":1}",
        };
        let keys = KeyPairs::from_pairs([(AKID.to_string(), SECRET.to_string())]).unwrap();
        let e = refused(
            verify(&req, &keys, signed_at(), &ReplayGuard::default()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-payload-hash");
        assert!(
            e.to_string().starts_with(
                "The provided 'x-amz-content-sha256' header does not match what was computed"
            ),
            "{e}"
        );
    }

    #[test]
    fn canonical_uris_are_botocores() {
        let all = botocore_cases();
        for pair in all["canonical_uris"].as_array().unwrap() {
            let (path, expected) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            assert_eq!(canonical_uri(path), expected, "path {path:?}");
        }
    }

    #[test]
    fn canonical_headers_are_lower_case_trimmed_and_joined() {
        let headers: Vec<(String, String)> = [
            ("HOST", "example.com"),
            ("X-Amz-Date", "20261204T120000Z"),
            ("My-Header", " a \t b  "),
            ("my-header", "c"),
            ("Unsigned", "x"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let signed = "Host;My-Header;X-Amz-Date";
        let names: Vec<&str> = signed.split(';').collect();
        assert_eq!(
            canonical_request(&req, signed, &names, "HASH"),
            "GET\n/\n\nhost:example.com\nmy-header:a b,c\nx-amz-date:20261204T120000Z\n\nHost;My-Header;X-Amz-Date\nHASH"
        );
    }

    #[test]
    fn canonical_queries_are_decoded_encoded_and_sorted() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(
            canonical_query("x=two+words&y=a%2Bb&z"),
            "x=two%20words&y=a%2Bb&z="
        );
        assert_eq!(canonical_query("k=%7e%41%zz%"), "k=~A%25zz%25");
        assert_eq!(canonical_query("&&a=%E1%88%B4&"), "a=%E1%88%B4");
    }

    // -----------------------------------------------------------------------
    // AWS's SigV4 test suite (awslabs/aws-c-auth, Apache-2.0, as vendored by
    // the aws-sigv4 crate): tests/fixtures/aws-signing-test-suite/v4, the
    // cases of every service but S3 (normalized paths).

    struct Vector {
        name: String,
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: String,
        access_key_id: String,
        secret: String,
        region: String,
        service: String,
        now: DateTime<Utc>,
    }

    /// `header-signed-request.txt`: a request line, headers (a line starting
    /// with blanks continues the previous one), a blank line, the body.
    fn read_vector(dir: &Path) -> Vector {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method, rest) = request_line.split_once(' ').unwrap();
        let target = rest.strip_suffix(" HTTP/1.1").unwrap_or(rest);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().unwrap();
                last.1 = format!("{} {}", last.1, line.trim());
            } else {
                let (n, v) = line.split_once(':').unwrap();
                headers.push((n.to_string(), v.trim().to_string()));
            }
        }
        let (access_key_id, secret, region, service, now) =
            match std::fs::read_to_string(dir.join("context.json")) {
                Ok(context) => {
                    let c: serde_json::Value = serde_json::from_str(&context).unwrap();
                    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
                    (
                        s(&c["credentials"]["access_key_id"]),
                        s(&c["credentials"]["secret_access_key"]),
                        s(&c["region"]),
                        s(&c["service"]),
                        time(c["timestamp"].as_str().unwrap()),
                    )
                }
                // The two cases the aws-sigv4 crate added without a context: its
                // test credentials (Credentials::for_tests) and the time, region
                // and service of their Authorization header.
                Err(_) if name == "double-encode-path" => (
                    "ANOTREAL".to_string(),
                    "notrealrnrELgWzOk3IfjzDKtFBhDby".to_string(),
                    "us-east-1".to_string(),
                    "service".to_string(),
                    time("2015-08-30T12:36:00Z"),
                ),
                Err(_) => (
                    "AKIDEXAMPLE".to_string(),
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string(),
                    "us-east-2".to_string(),
                    "lambda".to_string(),
                    time("2021-05-11T15:40:45Z"),
                ),
            };
        Vector {
            name,
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: body.to_string(),
            access_key_id,
            secret,
            region,
            service,
            now,
        }
    }

    fn vectors() -> Vec<(PathBuf, Vector)> {
        let root = fixtures().join("aws-signing-test-suite/v4");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs.into_iter()
            .map(|d| (d.clone(), read_vector(&d)))
            .collect()
    }

    /// The canonical request the verifier builds for `req`.
    fn canonical_of(req: &Request) -> String {
        let auth = parse_authorization(req).unwrap();
        let names: Vec<&str> = auth.signed_headers.split(';').collect();
        canonical_request(
            req,
            &auth.signed_headers,
            &names,
            &payload_hash(req).unwrap(),
        )
    }

    #[test]
    fn the_aws_sigv4_test_suite() {
        let vectors = vectors();
        assert_eq!(vectors.len(), 33);
        for (dir, v) in &vectors {
            let name = v.name.as_str();
            let req = Request {
                method: &v.method,
                path: &v.path,
                query: &v.query,
                headers: &v.headers,
                body: v.body.as_bytes(),
            };
            let expected =
                std::fs::read_to_string(dir.join("header-canonical-request.txt")).unwrap();
            let canonical = canonical_of(&req);
            if name == "double-encode-path" {
                // Its file shows another date than its request: compare the path.
                assert_eq!(canonical.lines().nth(1), expected.lines().nth(1), "{name}");
            } else {
                assert_eq!(canonical, expected, "{name}");
            }
            let keys = KeyPairs::from_pairs([(v.access_key_id.clone(), v.secret.clone())]).unwrap();
            let result =
                verify_for_service(&req, &keys, &v.service, v.now, &ReplayGuard::default());
            if v.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("x-amz-security-token"))
            {
                let e = refused(result, "UnrecognizedClientException");
                assert_eq!(e.code(), "api-auth-session-token", "{name}");
                // The signature itself is right.
                let auth = parse_authorization(&req).unwrap();
                let stamp = req.joined("x-amz-date").unwrap();
                let scope = parse_credential(&auth.credential).unwrap();
                let sig = signature(
                    &v.secret,
                    &scope,
                    &string_to_sign(&stamp, &scope, &canonical),
                )
                .unwrap();
                assert_eq!(hex(&sig), auth.signature, "{name}");
            } else {
                let caller = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    caller,
                    Caller {
                        access_key_id: v.access_key_id.clone(),
                        region: v.region.clone(),
                        service: v.service.clone()
                    },
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_test_suite_refuses_what_changed() {
        let (_, v) = vectors()
            .into_iter()
            .find(|(_, v)| v.name == "post-x-www-form-urlencoded")
            .unwrap();
        let keys = KeyPairs::from_pairs([(v.access_key_id.clone(), v.secret.clone())]).unwrap();
        let req = Request {
            method: &v.method,
            path: &v.path,
            query: &v.query,
            headers: &v.headers,
            body: b"Param1=value2",
        };
        let e = refused(
            verify_for_service(&req, &keys, &v.service, v.now, &ReplayGuard::default()),
            "InvalidSignatureException",
        );
        assert_eq!(e.code(), "api-auth-payload-hash");
        let req = Request {
            body: v.body.as_bytes(),
            ..req
        };
        // Signed for `service`, so not for Step Functions.
        let e = refused(
            verify(&req, &keys, v.now, &ReplayGuard::default()),
            "InvalidSignatureException",
        );
        assert_eq!(
            e.to_string(),
            "Credential should be scoped to correct service: 'states'."
        );
    }

    // -----------------------------------------------------------------------
    // Dates

    #[test]
    fn a_date_header_may_carry_the_time() {
        let t = signed_at();
        for value in [
            "Fri, 04 Dec 2026 12:00:00 GMT",
            "Fri, 04 Dec 2026 12:00:00 -0000",
            "20261204T120000Z",
        ] {
            let headers = vec![("Date".to_string(), value.to_string())];
            let req = Request {
                method: "GET",
                path: "/",
                query: "",
                headers: &headers,
                body: b"",
            };
            let at = signed_time(&req).unwrap();
            assert_eq!(
                (at.time, at.stamp.as_str(), at.header),
                (t, "20261204T120000Z", "date"),
                "{value}"
            );
        }
        // X-Amz-Date wins over Date.
        let headers = vec![
            (
                "Date".to_string(),
                "Fri, 04 Dec 2026 13:00:00 GMT".to_string(),
            ),
            ("X-Amz-Date".to_string(), "20261204T120000Z".to_string()),
        ];
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert_eq!(signed_time(&req).unwrap().header, "x-amz-date");
        for bad in [
            "20261304T120000Z",
            "20261204T250000Z",
            "2026120T1200000Z",
            "+0261204T120000Z",
            "20261204t120000z",
            "20261204T120000ZZ",
        ] {
            assert_eq!(parse_iso_basic(bad), None, "{bad}");
        }
    }

    // -----------------------------------------------------------------------
    // Key pairs

    fn values(ids: Option<&str>, secrets: Option<&str>) -> Result<Option<KeyPairs>, KeyPairsError> {
        KeyPairs::from_values(ids.map(str::to_string), secrets.map(str::to_string))
    }

    #[test]
    fn key_pairs_from_the_environment_values() {
        assert_eq!(values(None, None), Ok(None));
        let one = values(Some("AKID1"), Some("s1")).unwrap().unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one.secret("AKID1"), Some("s1"));
        let two = values(Some("AKID1, AKID2"), Some("s1,s2 "))
            .unwrap()
            .unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two.secret("AKID2"), Some("s2"));
        assert!(!two.is_empty());

        let error = |ids, secrets| values(ids, secrets).unwrap_err().to_string();
        let e = error(Some("AKID1"), None);
        assert!(
            e.starts_with(
                "PIFLOW_API_ACCESS_KEY_ID is set but PIFLOW_API_SECRET_ACCESS_KEY is not"
            ),
            "{e}"
        );
        let e = error(None, Some("s1"));
        assert!(
            e.starts_with(
                "PIFLOW_API_SECRET_ACCESS_KEY is set but PIFLOW_API_ACCESS_KEY_ID is not"
            ),
            "{e}"
        );
        let e = error(Some("AKID1,AKID2"), Some("s1"));
        assert!(e.starts_with("PIFLOW_API_ACCESS_KEY_ID lists 2 access key id(s) but PIFLOW_API_SECRET_ACCESS_KEY lists 1 secret(s)"), "{e}");
        let e = error(Some(" "), Some("s1"));
        assert!(
            e.starts_with("PIFLOW_API_ACCESS_KEY_ID: access key id #1 is empty"),
            "{e}"
        );
        let e = error(Some("AKID1,AKID2"), Some("s1,  "));
        assert!(
            e.starts_with(
                "PIFLOW_API_SECRET_ACCESS_KEY: secret #2 (for access key id 'AKID2') is empty"
            ),
            "{e}"
        );
        let e = error(Some(""), Some(""));
        assert!(
            e.starts_with("PIFLOW_API_ACCESS_KEY_ID: access key id #1 is empty"),
            "{e}"
        );
        let e = error(Some("AKID1,AKID1"), Some("s1,s2"));
        assert!(
            e.starts_with("PIFLOW_API_ACCESS_KEY_ID: access key id 'AKID1' is listed twice"),
            "{e}"
        );
        let e = error(Some("AK/ID"), Some("s1"));
        assert!(
            e.starts_with("PIFLOW_API_ACCESS_KEY_ID: access key id #1 'AK/ID' holds '/'"),
            "{e}"
        );
        for (ids, secrets) in [
            (Some("A"), None),
            (Some("A,B"), Some("s")),
            (Some(""), Some("s")),
        ] {
            let e = values(ids, secrets).unwrap_err();
            assert_eq!(e.code(), "api-keys-invalid");
            assert!(KeyPairsError::CODES.iter().any(|(c, _)| *c == e.code()));
            assert!(!e.to_string().contains("s1"));
        }
    }

    #[test]
    fn key_pairs_from_pairs_and_their_debug_hides_secrets() {
        assert!(KeyPairs::from_pairs(Vec::new()).is_err());
        assert!(KeyPairs::from_pairs([("A".to_string(), String::new())]).is_err());
        assert!(KeyPairs::from_pairs([("A".to_string(), " \t".to_string())]).is_err());
        assert!(KeyPairs::from_pairs([(" ".to_string(), "s".to_string())]).is_err());
        let keys = KeyPairs::from_pairs([("AKID1".to_string(), "topsecret".to_string())]).unwrap();
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("AKID1") && !shown.contains("topsecret"),
            "{shown}"
        );
        assert_eq!(keys.access_key_ids().collect::<Vec<_>>(), ["AKID1"]);
        // from_env reads the two variables (unset in the test environment
        // unless someone set both).
        if std::env::var_os(ACCESS_KEY_ID_VAR).is_none()
            && std::env::var_os(SECRET_ACCESS_KEY_VAR).is_none()
        {
            assert_eq!(KeyPairs::from_env(), Ok(None));
        }
    }

    // -----------------------------------------------------------------------
    // Codes

    #[test]
    fn every_refusal_has_a_listed_code_an_aws_type_and_400() {
        let all = [
            AuthError::Missing(String::new()),
            AuthError::Incomplete(String::new()),
            AuthError::Unsupported(String::new()),
            AuthError::Conflicting(String::new()),
            AuthError::HeaderNotSigned(String::new()),
            AuthError::Scope(String::new()),
            AuthError::UnknownKey(String::new()),
            AuthError::SessionToken(String::new()),
            AuthError::Mismatch(String::new()),
            AuthError::PayloadHash(String::new()),
            AuthError::Expired(String::new()),
            AuthError::NotYetCurrent(String::new()),
            AuthError::Replayed(String::new()),
        ];
        assert_eq!(all.len(), AuthError::CODES.len());
        let codes: BTreeSet<&str> = all.iter().map(AuthError::code).collect();
        assert_eq!(codes.len(), all.len(), "codes are distinct");
        for e in &all {
            assert!(
                AuthError::CODES.iter().any(|(c, _)| *c == e.code()),
                "{}",
                e.code()
            );
            assert!(
                [
                    "MissingAuthenticationTokenException",
                    "IncompleteSignatureException",
                    "InvalidSignatureException",
                    "UnrecognizedClientException"
                ]
                .contains(&e.aws_type())
            );
            assert_eq!(e.status(), 400);
        }
        assert_eq!(
            KeyPairsError::CODES,
            &[(
                KeyPairsError::new(String::new()).code(),
                KeyPairsError::CODES[0].1
            )]
        );
    }
}
