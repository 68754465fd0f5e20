//! The operands that need more than a string: `numeric` ranges, `cidr`
//! blocks and `wildcard` values, and the case-insensitive comparisons.

use std::net::IpAddr;

use serde_json::Value;

use super::{PatternError, PatternErrorKind, type_name};

/// EventBridge compares numbers within ±5.0e9.
const NUMERIC_LIMIT: f64 = 5.0e9;

/// Decimals EventBridge compares numbers to.
const NUMERIC_DECIMALS: usize = 6;

/// A number of a `numeric` comparison or of `anything-but`, as EventBridge
/// accepts it: event-ruler turns it into a `ComparableNumber`, which refuses
/// values beyond ±5.0e9 ("Value must be between -5000000000 and 5000000000,
/// inclusive") and with more than 6 decimals ("Only values upto 6 decimals
/// are supported"), and the rule is refused with it (aws/event-ruler
/// src/main/software/amazon/event/ruler/ComparableNumber.java, `generate`;
/// JsonRuleCompiler.java turns the exception into the rule's error).
/// `what` names the operator in the message.
pub(super) fn comparable_number(
    n: &serde_json::Number,
    path: &str,
    what: &str,
) -> Result<f64, PatternError> {
    let err = |m: String| PatternError::new(PatternErrorKind::NumericRange, path, m);
    let x = n.as_f64().unwrap_or(f64::NAN);
    if !(-NUMERIC_LIMIT..=NUMERIC_LIMIT).contains(&x) {
        return Err(err(format!(
            "{what}: {n} is outside the range EventBridge compares (-5.0e9 to 5.0e9)"
        )));
    }
    // `Display` for f64 is the shortest text that reads back the same, never
    // in exponent form: its digits after the point are the number's decimals.
    let text = x.to_string();
    let decimals = text
        .split_once('.')
        .map_or(0, |(_, frac)| frac.trim_end_matches('0').len());
    if decimals > NUMERIC_DECIMALS {
        return Err(err(format!(
            "{what}: {n} has more than {NUMERIC_DECIMALS} decimals, and EventBridge compares numbers to {NUMERIC_DECIMALS}"
        )));
    }
    Ok(x)
}

#[derive(Clone, Debug)]
pub(super) struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

#[derive(Clone, Debug)]
pub(super) struct Cidr {
    net: IpAddr,
    bits: u8,
}

/// A compiled `wildcard` value: the literal pieces between `*`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Wildcard {
    pieces: Vec<Box<str>>,
    leading_star: bool,
    trailing_star: bool,
}

impl Range {
    pub(super) fn parse(operand: &Value, path: &str) -> Result<Self, PatternError> {
        use PatternErrorKind as K;
        let err = |m: String| PatternError::new(K::NumericRange, path, m);
        let Value::Array(items) = operand else {
            return Err(err(format!(
                "\"numeric\" takes an array like [\">\", 0, \"<=\", 5], not {}",
                type_name(operand)
            )));
        };
        if items.len() != 2 && items.len() != 4 {
            return Err(err(format!(
                "\"numeric\" takes one or two comparisons ([op, number] or [op, number, op, number]), not {} items",
                items.len()
            )));
        }
        let mut range = Range {
            lower: None,
            upper: None,
        };
        for pair in items.chunks(2) {
            let op = pair[0].as_str().ok_or_else(|| {
                err(format!(
                    "\"numeric\": expected an operator (=, <, <=, >, >=), not {}",
                    type_name(&pair[0])
                ))
            })?;
            let n = match &pair[1] {
                Value::Number(n) => comparable_number(n, path, "\"numeric\"")?,
                other => {
                    return Err(err(format!(
                        "\"numeric\": \"{op}\" takes a number, not {}",
                        type_name(other)
                    )));
                }
            };
            match op {
                "=" => {
                    if items.len() != 2 {
                        return Err(err(
                            "\"numeric\": \"=\" cannot be combined with another comparison".into(),
                        ));
                    }
                    range.lower = Some((n, true));
                    range.upper = Some((n, true));
                }
                ">" | ">=" => {
                    if range.lower.is_some() {
                        return Err(err(
                            "\"numeric\": two lower bounds (> or >=); give one lower and one upper bound"
                                .into(),
                        ));
                    }
                    range.lower = Some((n, op == ">="));
                }
                "<" | "<=" => {
                    if range.upper.is_some() {
                        return Err(err(
                            "\"numeric\": two upper bounds (< or <=); give one lower and one upper bound"
                                .into(),
                        ));
                    }
                    range.upper = Some((n, op == "<="));
                }
                other => {
                    return Err(err(format!(
                        "\"numeric\": unknown comparison \"{other}\" (use =, <, <=, >, >=)"
                    )));
                }
            }
        }
        if items.len() == 4
            && let (Some((lo, _)), Some((hi, _))) = (range.lower, range.upper)
            && lo >= hi
        {
            return Err(err(format!(
                "\"numeric\": the range is out of order: the lower bound {lo} must be less than the upper bound {hi}"
            )));
        }
        Ok(range)
    }

    pub(super) fn contains(&self, x: f64) -> bool {
        if let Some((lo, incl)) = self.lower
            && !(x > lo || (incl && x == lo))
        {
            return false;
        }
        if let Some((hi, incl)) = self.upper
            && !(x < hi || (incl && x == hi))
        {
            return false;
        }
        true
    }
}

impl Cidr {
    pub(super) fn parse(s: &str, path: &str) -> Result<Self, PatternError> {
        let bad = |why: &str| {
            PatternError::new(
                PatternErrorKind::Cidr,
                path,
                format!(
                    "\"cidr\": {s:?} is not a CIDR block like 10.0.0.0/24 or 2001:db8::/64: {why}"
                ),
            )
        };
        let (addr, bits) = s.split_once('/').ok_or_else(|| bad("no /prefix-length"))?;
        let net: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(bad(&format!("the prefix length is above {max}")));
        }
        Ok(Cidr { net, bits })
    }

    pub(super) fn contains(&self, s: &str) -> bool {
        let Ok(ip) = s.parse::<IpAddr>() else {
            return false;
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Wildcard {
    pub(super) fn parse(s: &str, path: &str) -> Result<Self, PatternError> {
        let mut pieces: Vec<Box<str>> = Vec::new();
        let mut cur = String::new();
        let mut leading_star = false;
        let mut trailing_star = false;
        let mut prev_star = false;
        let mut chars = s.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '*' => {
                    if prev_star {
                        return Err(PatternError::new(
                            PatternErrorKind::Wildcard,
                            path,
                            format!(
                                "\"wildcard\": consecutive wildcard characters at position {i} in {s:?} are not allowed"
                            ),
                        ));
                    }
                    if i == 0 {
                        leading_star = true;
                    } else {
                        pieces.push(std::mem::take(&mut cur).into());
                    }
                    prev_star = true;
                    trailing_star = true;
                    continue;
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => cur.push(e),
                    _ => {
                        return Err(PatternError::new(
                            PatternErrorKind::Wildcard,
                            path,
                            format!(
                                "\"wildcard\": invalid escape at position {i} in {s:?}: only \\* and \\\\ may be escaped"
                            ),
                        ));
                    }
                },
                c => cur.push(c),
            }
            prev_star = false;
            trailing_star = false;
        }
        if !trailing_star || pieces.is_empty() && !leading_star {
            pieces.push(cur.into());
        }
        // `pieces`: the literal runs between stars. With a trailing star the
        // last run was pushed when the star was seen.
        Ok(Wildcard {
            pieces,
            leading_star,
            trailing_star,
        })
    }

    /// The wildcard as event-ruler's byte machine holds it: the value in
    /// quotes (`'"' + text + '"'`, JsonRuleCompiler.java), one token per
    /// byte, `None` for a `*`. For the complexity check.
    pub(super) fn tokens(&self) -> Vec<Option<u8>> {
        let mut out = vec![Some(b'"')];
        if self.leading_star {
            out.push(None);
        }
        let n = self.pieces.len();
        for (i, piece) in self.pieces.iter().enumerate() {
            out.extend(piece.bytes().map(Some));
            if i + 1 < n || self.trailing_star {
                out.push(None);
            }
        }
        out.push(Some(b'"'));
        out
    }

    pub(super) fn matches(&self, s: &str) -> bool {
        let n = self.pieces.len();
        if n == 0 {
            // "*" alone.
            return true;
        }
        if !self.leading_star && !self.trailing_star && n == 1 {
            return s == &*self.pieces[0];
        }
        let mut rest = s;
        let mut first = 0;
        let mut last = n;
        if !self.leading_star {
            let p = &*self.pieces[0];
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
            first = 1;
        }
        if !self.trailing_star {
            let p = &*self.pieces[n - 1];
            if first == n {
                return rest.is_empty();
            }
            let Some(r) = rest.strip_suffix(p) else {
                return false;
            };
            rest = r;
            last = n - 1;
        }
        for p in &self.pieces[first..last.max(first)] {
            match rest.find(&**p) {
                Some(i) => rest = &rest[i + p.len()..],
                None => return false,
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------
// Matching

fn lower(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

pub(super) fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower(a).eq(lower(b))
    }
}

pub(super) fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    if s.is_ascii() && prefix.is_ascii() {
        s.len() >= prefix.len()
            && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    } else {
        let mut it = lower(s);
        lower(prefix).all(|c| it.next() == Some(c))
    }
}

pub(super) fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    if s.is_ascii() && suffix.is_ascii() {
        s.len() >= suffix.len()
            && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    } else {
        let mut it = s.chars().rev().flat_map(char::to_lowercase);
        suffix
            .chars()
            .rev()
            .flat_map(char::to_lowercase)
            .all(|c| it.next() == Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Wildcard {
        Wildcard::parse(s, "x").unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(w("*").matches(""));
        assert!(w("*").matches("abc"));
        assert!(w("a*").matches("abc"));
        assert!(!w("a*").matches("bac"));
        assert!(w("*c").matches("abc"));
        assert!(w("a*c").matches("ac"));
        assert!(!w("a*c").matches("a"));
        assert!(w("*/lib/*").matches("/usr/lib/x"));
        assert!(!w("*/lib/*").matches("/usr/bin/x"));
        assert!(w("a*b*c").matches("aXbYc"));
        assert!(!w("a*b*c").matches("aXcYb"));
        assert!(w("abc").matches("abc"));
        assert!(!w("abc").matches("abcd"));
        assert!(w("a\\*b").matches("a*b"));
        assert!(!w("a\\*b").matches("axb"));
        assert!(w("a\\\\*").matches("a\\zzz"));
        assert!(!w("aa*aa").matches("aaa"));
        assert!(w("aa*aa").matches("aaaa"));
        assert!(Wildcard::parse("a**b", "x").is_err());
        assert!(Wildcard::parse("a\\b", "x").is_err());
    }

    #[test]
    fn wildcard_tokens_are_the_quoted_value() {
        const STAR: char = '%';
        let t = |s: &str| -> String {
            w(s).tokens()
                .iter()
                .map(|t| t.map_or(STAR, char::from))
                .collect()
        };
        assert_eq!(t("*"), "\"%\"");
        assert_eq!(t("a*"), "\"a%\"");
        assert_eq!(t("*a*b"), "\"%a%b\"");
        assert_eq!(t(""), "\"\"");
        assert_eq!(t("a\\*b"), "\"a*b\"");
    }

    #[test]
    fn comparable_numbers() {
        let n = |v: serde_json::Value| comparable_number(v.as_number().unwrap(), "x", "op");
        assert_eq!(n(serde_json::json!(301.8)).unwrap(), 301.8);
        assert_eq!(n(serde_json::json!(5e9)).unwrap(), 5e9);
        assert!(n(serde_json::json!(0.000001)).is_ok());
        assert!(n(serde_json::json!(0.0000001)).is_err());
        assert!(n(serde_json::json!(-5.000000001e9)).is_err());
    }
}
