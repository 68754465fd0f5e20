//! EventBridge's limit on how complex the wildcards of a pattern may be.
//!
//! The user guide ("Wildcards and event pattern complexity",
//! https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html#eb-filtering-wildcard-matching-complexity)
//! says that there is a limit, that "if a rule is too complex, EventBridge
//! returns an InvalidEventPatternException when attempting to create the
//! rule", and that fewer `*` and fewer character sequences repeated after a
//! `*` lower the complexity; it does not give the measure or the number.
//!
//! The measure is event-ruler's `MachineComplexityEvaluator` (aws/event-ruler
//! src/main/software/amazon/event/ruler/MachineComplexityEvaluator.java): the
//! most "wildcard rule prefixes" one input can be inside at once, over the
//! byte machine of a field. Here: for each leaf, the `wildcard` values and
//! the `anything-but` `wildcard` lists of that field are read as event-ruler
//! holds them (the value in quotes, byte by byte), and the most states of
//! their automaton that some input reaches at the same time is counted. A
//! plain `wildcard` value counts once per state it is in (it is its own
//! pattern); an `anything-but` list is one pattern, so its values count once
//! per state of their shared prefix tree. The numbers agree with
//! event-ruler's tests (MachineComplexityEvaluatorTest.java: `"*a*a*a*"`
//! is 7, `"*z*"` 3, `"abc*def"` 2, `"*a*a*a*a*a*a*"` 13).
//!
//! The limit is not published. piflow refuses a field whose complexity is
//! above [`MAX_COMPLEXITY`] = 10, taken from what EventBridge has been seen
//! to do: a rule with `{"wildcard": "*:stack/NAME/*"}` for three stack names
//! (complexity 9 by this measure) was accepted and the same rule with four
//! names (12) refused with "Rule is too complex" (vals-ai/Valkyrie pull
//! request #278, 2026). A limit of 9, 10 or 11 fits that. The user guide's
//! own example of a pattern to simplify when a rule is too complex,
//! `"*:*:*:*:*:event-bus/*"`, is 11; 10 refuses it and is the round number.
//! Where EventBridge counts wildcards across a whole rule (several fields or
//! `$or` branches on one machine), piflow counts each leaf alone.

use std::collections::{HashSet, VecDeque};

use super::values::Wildcard;
use super::{AnythingBut, Matcher, PatternError, PatternErrorKind};

/// The highest wildcard complexity a field may have (see the module docs).
pub(super) const MAX_COMPLEXITY: usize = 10;

/// Sets of states explored at most while measuring (the measure is cut
/// short there, keeping what it found).
const MAX_STATES: usize = 2_000;

/// Refuses the leaf `matchers` (at `path`) when their wildcards are too
/// complex for EventBridge.
pub(super) fn check(matchers: &[Matcher], path: &str) -> Result<(), PatternError> {
    let mut groups: Vec<Vec<Vec<Option<u8>>>> = Vec::new();
    for m in matchers {
        let group = match m {
            Matcher::Wildcard(w) => vec![w.tokens()],
            Matcher::AnythingBut(AnythingBut::Wildcard(list)) => {
                list.iter().map(Wildcard::tokens).collect()
            }
            _ => continue,
        };
        // event-ruler adds a pattern once however often it is written.
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let c = complexity(&groups, MAX_COMPLEXITY + 1);
    if c > MAX_COMPLEXITY {
        return Err(PatternError::new(
            PatternErrorKind::TooComplex,
            path,
            format!(
                "the wildcards of this field are too complex for EventBridge (complexity {c} or more, the limit is {MAX_COMPLEXITY}): use fewer \"*\", fewer values that start alike, or a prefix or suffix instead"
            ),
        ));
    }
    Ok(())
}

/// One state of the prefix trees: reached after `*` (it then loops on every
/// byte) or after a byte; its next tokens (`None` is `*`).
struct Node {
    star: bool,
    next: Vec<(Option<u8>, usize)>,
}

/// The most states (roots excepted) one input keeps alive at once, counted
/// up to `cap`. `groups` are event-ruler patterns, each the token lists of
/// its values.
pub(super) fn complexity(groups: &[Vec<Vec<Option<u8>>>], cap: usize) -> usize {
    let mut nodes: Vec<Node> = Vec::new();
    let mut start: Vec<usize> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for group in groups {
        let root = nodes.len();
        nodes.push(Node {
            star: false,
            next: Vec::new(),
        });
        start.push(root);
        for tokens in group {
            let mut at = root;
            for &t in tokens {
                if let Some(b) = t
                    && !bytes.contains(&b)
                {
                    bytes.push(b);
                }
                let found = nodes[at]
                    .next
                    .iter()
                    .find(|(k, _)| *k == t)
                    .map(|&(_, n)| n);
                at = match found {
                    Some(n) => n,
                    None => {
                        let n = nodes.len();
                        nodes.push(Node {
                            star: t.is_none(),
                            next: Vec::new(),
                        });
                        nodes[at].next.push((t, n));
                        n
                    }
                };
            }
        }
    }
    // Every byte no value names behaves alike: one of them stands for all.
    if let Some(other) = (0..=u8::MAX).find(|b| !bytes.contains(b)) {
        bytes.push(other);
    }
    close(&nodes, &mut start);

    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut queue = VecDeque::from([start]);
    let mut most = 0;
    while let Some(set) = queue.pop_front() {
        for &b in &bytes {
            let mut next = Vec::new();
            for &u in &set {
                if nodes[u].star {
                    next.push(u);
                }
                next.extend(
                    nodes[u]
                        .next
                        .iter()
                        .filter(|(t, _)| *t == Some(b))
                        .map(|&(_, c)| c),
                );
            }
            close(&nodes, &mut next);
            if next.is_empty() {
                continue;
            }
            most = most.max(next.len());
            if most >= cap || seen.len() >= MAX_STATES {
                return most.min(cap);
            }
            if !seen.contains(&next) {
                seen.insert(next.clone());
                queue.push_back(next);
            }
        }
    }
    most
}

/// Adds to `set` the states a `*` reaches without reading a byte (a `*`
/// may match nothing), then sorts it.
fn close(nodes: &[Node], set: &mut Vec<usize>) {
    let mut i = 0;
    while i < set.len() {
        let u = set[i];
        for &(t, c) in &nodes[u].next {
            if t.is_none() && !set.contains(&c) {
                set.push(c);
            }
        }
        i += 1;
    }
    set.sort_unstable();
    set.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The complexity of plain `wildcard` values of one field, duplicates
    /// counted once as `check` does.
    fn of(values: &[&str]) -> usize {
        let mut groups: Vec<Vec<Vec<Option<u8>>>> = Vec::new();
        for v in values {
            let group = vec![Wildcard::parse(v, "x").unwrap().tokens()];
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        complexity(&groups, 100)
    }

    /// The values of aws/event-ruler's MachineComplexityEvaluatorTest.java
    /// for rules added as JSON (values in quotes).
    #[test]
    fn agrees_with_event_ruler() {
        assert_eq!(of(&["*a*a*a*"]), 7);
        assert_eq!(of(&["*a*a*a*a*a*a*"]), 13);
        assert_eq!(of(&["*z*"]), 3);
        assert_eq!(of(&["abc*def"]), 2);
        // `"*"`: after the opening quote, both the quote and the star.
        assert_eq!(of(&["*"]), 2);
        assert_eq!(of(&["abc"]), 1);
        assert_eq!(of(&["ab*c", "ab*c"]), 2);
        assert_eq!(of(&["a*aaa", "aa*aa"]), 7);
    }

    /// The user guide's examples ("Wildcards and event pattern complexity").
    #[test]
    fn the_user_guide_examples() {
        assert_eq!(of(&["*:*:*:*:*:event-bus/*"]), 11);
        assert_eq!(of(&["arn:aws:events:us-east-1:*:event-bus/*"]), 3);
        assert_eq!(of(&["/Users/*/dir/dir/dir/dir/dir/doc.txt"]), 7);
        assert_eq!(of(&["/Users/*/doc.txt"]), 2);
    }

    #[test]
    fn the_reported_stack_rules() {
        let three = ["*:stack/Shared/*", "*:stack/Data/*", "*:stack/Api/*"];
        assert_eq!(of(&three), 9);
        let four = [
            "*:stack/Shared/*",
            "*:stack/Data/*",
            "*:stack/Api/*",
            "*:stack/Monitoring/*",
        ];
        assert_eq!(of(&four), 12);
    }

    #[test]
    fn anything_but_list_is_one_pattern() {
        let list = |values: &[&str]| -> Vec<Vec<Option<u8>>> {
            values
                .iter()
                .map(|v| Wildcard::parse(v, "x").unwrap().tokens())
                .collect()
        };
        // Shared prefixes count once: `"*` is one state for both values.
        assert_eq!(complexity(&[list(&["*a", "*b"])], 100), 2);
        assert_eq!(complexity(&[list(&["*a"]), list(&["*b"])], 100), 4);
    }
}
