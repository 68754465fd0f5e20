//! The canonical request and the signature of AWS Signature Version 4, as
//! botocore's `SigV4Auth` builds them for every service but S3.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{ALGORITHM, AuthError, Request, Scope};

/// The payload hash of the canonical request: `X-Amz-Content-SHA256` when
/// sent (checked against the body once the signature is verified), else
/// the SHA-256 of the body.
pub(super) fn payload_hash(req: &Request) -> Result<String, AuthError> {
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
pub(super) fn canonical_request(
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
pub(super) fn canonical_uri(path: &str) -> String {
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
pub(super) fn normalize_path(path: &str) -> String {
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
pub(super) fn canonical_query(query: &str) -> String {
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
pub(super) fn query_pairs(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(super) fn percent_decode(s: &str) -> Vec<u8> {
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

pub(super) fn uri_encode(bytes: &[u8]) -> String {
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

pub(super) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

pub(super) fn push_percent(out: &mut String, b: u8) {
    const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

/// Trims a header value and collapses inner runs of whitespace to one space
/// (botocore: `' '.join(value.split())`, Python's whitespace).
pub(super) fn trim_all(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn string_to_sign(stamp: &str, scope: &Scope, canonical: &str) -> String {
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
pub(super) fn signature(secret: &str, scope: &Scope, to_sign: &str) -> Option<[u8; 32]> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes())?;
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes())?;
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes())?;
    let k_signing = hmac_sha256(&k_service, scope.terminator.as_bytes())?;
    hmac_sha256(&k_signing, to_sign.as_bytes())
}

pub(super) fn hmac_sha256(key: &[u8], message: &[u8]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac.finalize().into_bytes().into())
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0x0f)]));
    }
    out
}
