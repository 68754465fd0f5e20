//! Tests of the path parser and evaluator.

use super::*;
use serde_json::json;

fn sel(path: &str, input: &Value) -> Result<Value, PathError> {
    let ctx = json!({"Execution": {"Id": "exec-1", "Input": {"input-value": 7}}});
    let vars = |name: &str| match name {
        "answer" => Some(json!(42)),
        "obj" => Some(json!({"list": [1, 2, 3]})),
        _ => None,
    };
    let cx = PathContext::new(input, &ctx).with_variables(&vars);
    parse_json_path(path).expect("parses").select(&cx)
}

fn store() -> Value {
    json!({
        "store": {
            "book": [
                {"category": "reference", "author": "Nigel Rees", "title": "Sayings", "price": 8.95},
                {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword", "price": 12.99},
                {"category": "fiction", "author": "Herman Melville", "title": "Moby Dick", "isbn": "0-553", "price": 8.99},
                {"category": "fiction", "author": "J. R. R. Tolkien", "title": "LOTR", "isbn": "0-395", "price": 22.99}
            ],
            "bicycle": {"color": "red", "price": 19.95}
        },
        "foo-bar": 1,
        "detail": {"x-y": "dash", "a:b": "colon"},
        "vals": [0, 1, 2, 3, 4, 5],
        "users": [{"status": 0, "id": "a"}, {"status": 1, "id": "b"}, {"status": "0", "id": "c"}]
    })
}

fn syntax_err(path: &str) -> (usize, String) {
    match parse_json_path(path) {
        Err(PathError::Syntax {
            offset, message, ..
        }) => (offset, message),
        other => panic!("{path}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn roots() {
    let input = json!({"a": 1});
    assert_eq!(sel("$", &input).unwrap(), input);
    assert_eq!(sel("$$.Execution.Id", &input).unwrap(), json!("exec-1"));
    assert_eq!(
        sel("$$.Execution.Input.input-value", &input).unwrap(),
        json!(7)
    );
    assert_eq!(sel("$answer", &input).unwrap(), json!(42));
    assert_eq!(sel("$obj.list[1]", &input).unwrap(), json!(2));
    let p = parse_json_path("$obj.list[0]").unwrap();
    assert_eq!(p.root, PathRoot::Variable("obj".into()));
    assert_eq!(parse_json_path("$$").unwrap().root, PathRoot::Context);
    assert!(matches!(
        sel("$nope", &input),
        Err(PathError::UndefinedVariable { .. })
    ));
    assert_eq!(
        sel("$$", &input).unwrap()["Execution"]["Id"],
        json!("exec-1")
    );
}

#[test]
fn jayway_member_names() {
    let s = store();
    assert_eq!(sel("$.foo-bar", &s).unwrap(), json!(1));
    assert_eq!(sel("$.detail.x-y", &s).unwrap(), json!("dash"));
    assert_eq!(sel("$.detail.a:b", &s).unwrap(), json!("colon"));
    assert_eq!(sel("$['detail']['x-y']", &s).unwrap(), json!("dash"));
    assert_eq!(sel("$[\"detail\"].x-y", &s).unwrap(), json!("dash"));
    assert_eq!(sel("$.['foo-bar']", &s).unwrap(), json!(1));
    // Jayway keeps backslashes in bracket names (AWS-recorded case).
    let input = json!({"Test\\\"\"Name\"": "Value\"\\"});
    assert_eq!(
        sel("$['Test\\\"\"Name\"']", &input).unwrap(),
        json!("Value\"\\")
    );
}

#[test]
fn definite_paths_and_not_found_messages() {
    let s = store();
    assert_eq!(sel("$.store.book[0].price", &s).unwrap(), json!(8.95));
    assert_eq!(sel("$.store.book[-1].title", &s).unwrap(), json!("LOTR"));
    match sel("$.NoSuchInputPath", &s) {
        Err(e @ PathError::NotFound { .. }) => assert_eq!(
            e.to_string(),
            "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
        ),
        other => panic!("{other:?}"),
    }
    match sel("$.no.such.result.path", &s) {
        Err(e) => assert_eq!(
            e.to_string(),
            "Invalid path '$.no.such.result.path' : Missing property in path $['no']"
        ),
        Ok(v) => panic!("{v}"),
    }
    assert!(sel("$.store.book[10]", &s).unwrap_err().is_not_found());
    assert!(
        sel("$.foo-bar.x", &s)
            .unwrap_err()
            .to_string()
            .contains("Expected to find an object")
    );
    assert!(
        sel("$.detail[0]", &s)
            .unwrap_err()
            .to_string()
            .contains("can only be applied to arrays")
    );
    // An indefinite path that finds nothing is an empty list, even when a
    // property ahead of the indefinite part is missing: AWS returns
    // {"item": []} for "item.$": "$.items[*]" on {} (conformance corpus,
    // test_json_path_array_wildcard_or_slice_with_no_input).
    assert_eq!(sel("$.nothing[*]", &s).unwrap(), serde_json::json!([]));
}

#[test]
fn indefinite_paths() {
    let s = store();
    assert_eq!(
        sel("$.store.book[*].author", &s).unwrap(),
        json!([
            "Nigel Rees",
            "Evelyn Waugh",
            "Herman Melville",
            "J. R. R. Tolkien"
        ])
    );
    assert_eq!(
        sel("$.store.book[*].isbn", &s).unwrap(),
        json!(["0-553", "0-395"])
    );
    assert_eq!(sel("$.store.book[*].missing", &s).unwrap(), json!([]));
    assert_eq!(
        sel("$..price", &s).unwrap(),
        json!([8.95, 12.99, 8.99, 22.99, 19.95])
    );
    assert_eq!(sel("$.vals[3:]", &s).unwrap(), json!([3, 4, 5]));
    assert_eq!(sel("$.vals[:2]", &s).unwrap(), json!([0, 1]));
    assert_eq!(sel("$.vals[1:3]", &s).unwrap(), json!([1, 2]));
    assert_eq!(sel("$.vals[-2:]", &s).unwrap(), json!([4, 5]));
    assert_eq!(sel("$.vals[:-4]", &s).unwrap(), json!([0, 1]));
    assert_eq!(sel("$.vals[0,2,9]", &s).unwrap(), json!([0, 2]));
    assert_eq!(sel("$.store.bicycle.*", &s).unwrap(), json!(["red", 19.95]));
    assert_eq!(
        sel("$.vals[1:5]", &json!({"vals": [1]})).unwrap(),
        json!([])
    );
    let p = parse_json_path("$.store.book[*]").unwrap();
    assert!(!p.is_definite());
    assert!(parse_json_path("$.store.book[0]").unwrap().is_definite());
    assert!(!parse_json_path("$..x").unwrap().is_definite());
}

#[test]
fn filters() {
    let s = store();
    assert_eq!(
        sel("$.store.book[?(@.price < 10)].title", &s).unwrap(),
        json!(["Sayings", "Moby Dick"])
    );
    assert_eq!(
        sel(
            "$.store.book[?(@.category == 'fiction' && @.price > 20)].title",
            &s
        )
        .unwrap(),
        json!(["LOTR"])
    );
    assert_eq!(
        sel("$.store.book[?(@.price < 9 || @.price > 20)].title", &s).unwrap(),
        json!(["Sayings", "Moby Dick", "LOTR"])
    );
    assert_eq!(
        sel("$.store.book[?(@.isbn)].title", &s).unwrap(),
        json!(["Moby Dick", "LOTR"])
    );
    assert_eq!(
        sel("$.store.book[?(!@.isbn)].title", &s).unwrap(),
        json!(["Sayings", "Sword"])
    );
    assert_eq!(
        sel("$.store.book[?@.author == 'Evelyn Waugh'].price", &s).unwrap(),
        json!([12.99])
    );
    // Jayway: 0 == '0' (number on the left).
    assert_eq!(
        sel("$.users[?(@.status == 0)].id", &s).unwrap(),
        json!(["a", "c"])
    );
    assert_eq!(
        sel("$.users[?(@.status === 0)].id", &s).unwrap(),
        json!(["a"])
    );
    assert_eq!(
        sel("$.users[?(@.id in ['a', 'c'])].id", &s).unwrap(),
        json!(["a", "c"])
    );
    assert_eq!(
        sel("$.users[?(@.id nin ['a', 'c'])].id", &s).unwrap(),
        json!(["b"])
    );
    assert_eq!(
        sel("$.store.book[?(@.author =~ /.*melville/i)].title", &s).unwrap(),
        json!(["Moby Dick"])
    );
    assert_eq!(
        sel("$.store.book[?(@.price > $.store.bicycle.price)].title", &s).unwrap(),
        json!(["LOTR"])
    );
    assert_eq!(
        sel("$..book[?(@.title size 4)].title", &s).unwrap(),
        json!(["LOTR"])
    );
    // A filter on an object tests the object itself.
    assert_eq!(
        sel("$.store.bicycle[?(@.color == 'red')].price", &s).unwrap(),
        json!([19.95])
    );
    assert_eq!(sel("$.vals[?(@ > 3)]", &s).unwrap(), json!([4, 5]));
    assert_eq!(sel("$.vals[?(@ > 3 && (@ < 5))]", &s).unwrap(), json!([4]));
}

#[test]
fn functions() {
    let s = store();
    assert_eq!(sel("$.vals.length()", &s).unwrap(), json!(6));
    assert_eq!(sel("$.vals.sum()", &s).unwrap(), json!(15.0));
    assert_eq!(sel("$.vals.max()", &s).unwrap(), json!(5.0));
    assert_eq!(sel("$.vals.avg()", &s).unwrap(), json!(2.5));
    assert_eq!(sel("$..price.min()", &s).unwrap(), json!(8.95));
    assert_eq!(sel("$.detail.keys()", &s).unwrap(), json!(["x-y", "a:b"]));
    assert!(sel("$.detail.sum()", &s).is_err());
    // After an indefinite path a function applies to the list of matches.
    assert_eq!(sel("$.store.book[*].length()", &s).unwrap(), json!(4));
    assert_eq!(sel("$.vals[*].sum()", &s).unwrap(), json!(15.0));
    // length() of a string is null in Jayway, so nothing matches here.
    assert_eq!(
        sel("$.store.book[?(@.title.length() > 0)]", &s).unwrap(),
        json!([])
    );
    assert_eq!(
        sel("$.store[?(@.book.length() > 3)].bicycle.color", &s).unwrap(),
        json!(["red"])
    );
    assert_eq!(syntax_err("$.vals.nope()").0, 7);
}

#[test]
fn syntax_errors() {
    for bad in [
        "",
        ".guid",
        "..guid",
        "()",
        "$...",
        "bug$.library.movies",
        "ipsum",
        "not a path",
        "$.",
        "$..",
        "$[",
        "$['a'",
        "$[*",
        "$[?(@.a == 1]",
        "$.a b",
        "$$$",
        "$-1",
        "$[1:2:3]",
        "$[:]",
        "$.a[?(@.x = 1)]",
        "$.a[?(@.x == foo)]",
        " $.a",
        "$[a]",
        "$.a.length().b",
        "$.*x",
    ] {
        let r = parse_json_path(bad);
        assert!(
            matches!(r, Err(PathError::Syntax { .. })),
            "{bad:?} should fail, got {r:?}"
        );
    }
    assert_eq!(syntax_err("$.a b").0, 3);
    assert_eq!(syntax_err("$...").0, 3);
    assert_eq!(syntax_err("bug$.x").0, 0);
    let (off, msg) = syntax_err("$.a[?(@.x = 1)]");
    assert_eq!(off, 10);
    assert!(msg.contains("'=='"), "{msg}");
    // Trailing whitespace is trimmed, as Jayway does.
    assert!(parse_json_path("$.a  ").is_ok());
    // Deep nesting is refused, not overflowed.
    let deep = format!("$[?{}@.a{}]", "(".repeat(500), ")".repeat(500));
    assert!(parse_json_path(&deep).is_err());
    let deep = format!("$[?(@.a in {}{})]", "[".repeat(500), "]".repeat(500));
    assert!(parse_json_path(&deep).is_err());
}

#[test]
fn reference_paths() {
    let p = parse_reference_path("$.a['b c'][2]").unwrap();
    assert_eq!(p.root, PathRoot::Input);
    assert_eq!(
        p.steps,
        vec![
            Step::Field("a".into()),
            Step::Field("b c".into()),
            Step::Index(2)
        ]
    );
    assert_eq!(p.as_str(), "$.a['b c'][2]");
    assert!(parse_reference_path("$").unwrap().steps.is_empty());
    assert_eq!(
        parse_reference_path("$foo").unwrap().root,
        PathRoot::Variable("foo".into())
    );
    assert_eq!(
        parse_reference_path("$$.Task.Token").unwrap().root,
        PathRoot::Context
    );
    for bad in [
        ".guid",
        "..guid",
        "()",
        "$...",
        "$.a[*]",
        "$..a",
        "$.a[?(@.x)]",
        "$.a[1:2]",
        "$.a[-1]",
        "$.a.length()",
        "$['a','b']",
    ] {
        assert!(parse_reference_path(bad).is_err(), "{bad}");
    }
    match parse_reference_path("$.a[*]") {
        Err(PathError::Syntax {
            offset, message, ..
        }) => {
            assert_eq!(offset, 3);
            assert!(message.contains("wildcards"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reference_path_get_and_set() {
    let input = json!({"a": {"b": [1, 2]}, "s": "str"});
    let cx_ctx = json!({});
    let cx = PathContext::new(&input, &cx_ctx);
    assert_eq!(
        parse_reference_path("$.a.b[1]").unwrap().get(&cx).unwrap(),
        json!(2)
    );
    assert!(
        parse_reference_path("$.a.c")
            .unwrap()
            .get(&cx)
            .unwrap_err()
            .is_not_found()
    );

    let set = |p: &str, v: Value| parse_reference_path(p).unwrap().set(input.clone(), v);
    assert_eq!(set("$", json!(5)).unwrap(), json!(5));
    assert_eq!(
        set("$.r", json!(5)).unwrap(),
        json!({"a": {"b": [1, 2]}, "s": "str", "r": 5})
    );
    assert_eq!(
        set("$.x.y.z", json!(5)).unwrap()["x"],
        json!({"y": {"z": 5}})
    );
    assert_eq!(set("$.a.b[0]", json!(9)).unwrap()["a"]["b"], json!([9, 2]));
    assert_eq!(set("$.a.b", json!(null)).unwrap()["a"], json!({"b": null}));
    assert!(matches!(set("$.s.t", json!(1)), Err(PathError::Set { .. })));
    assert!(matches!(
        set("$.a.b[5]", json!(1)),
        Err(PathError::Set { .. })
    ));
    assert!(matches!(
        set("$.a[0]", json!(1)),
        Err(PathError::Set { .. })
    ));
    assert!(
        parse_reference_path("$$.x")
            .unwrap()
            .set(json!({}), json!(1))
            .is_err()
    );
    assert!(
        parse_reference_path("$.x")
            .unwrap()
            .set(json!("s"), json!(1))
            .is_err()
    );
}

#[test]
fn never_panics_on_odd_input() {
    let inputs = [
        "$[",
        "$[?",
        "$[?(",
        "$[?(@",
        "$[?(@.",
        "$[?(@.a ==",
        "$[?(@.a == '",
        "$[?(@.a == \"\\",
        "$[?(@.a =~ /",
        "$[?(@.a =~ /x/q)]",
        "$['\\",
        "$[-",
        "$[99999999999999999999]",
        "$[-9223372036854775808:]",
        "$[:-9223372036854775808]",
        "$[-9223372036854775808:9223372036854775807]",
        "$[?(@.a == {'k': [1, {'x': null}]})]",
        "$[?(@.a == '\\u12')]",
        "$[?(@.a == '\\ud800')]",
        "$é",
        "$.é",
        "$$.",
        "$[?(!)]",
        "$[?(!!!@.a)]",
        "$[?(@.a in)]",
        "$[?()]",
        "$[?(@.a &&)]",
        "$..[?(@)]",
        "$[?(@.a.length() > 1)]",
        "$.\u{0}",
        "$[?(@ =~ /(/)]",
    ];
    let doc = json!({"a": [1, {"a": "x"}, [2, 3]], "b": {"a": null}});
    for s in inputs {
        if let Ok(p) = parse_json_path(s) {
            let _ = p.select_in(&doc);
        }
        let _ = parse_reference_path(s);
    }
    let big = json!({"vals": [1, 2, 3]});
    let p = parse_json_path("$.vals[-9223372036854775808:9223372036854775807]").unwrap();
    // Jayway does not normalise a negative start of [from:to]: the
    // indexes -3..3 wrap around.
    assert_eq!(p.select_in(&big).unwrap(), json!([1, 2, 3, 1, 2, 3]));
    let p = parse_json_path("$.vals[-2:2]").unwrap();
    assert_eq!(p.select_in(&big).unwrap(), json!([2, 3, 1, 2]));
}

// ----- the conformance corpus -----------------------------------------

fn corpus_dir() -> std::path::PathBuf {
    match std::env::var_os("PIFLOW_CONFORMANCE_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        }
    }
}

#[derive(Default)]
struct Corpus {
    parsed: usize,
    failures: Vec<String>,
}

impl Corpus {
    fn check<T, E: fmt::Display>(&mut self, what: &str, text: &str, r: Result<T, E>) {
        match r {
            Ok(_) => self.parsed += 1,
            Err(e) => self.failures.push(format!("{what} {text:?}: {e}")),
        }
    }

    fn payload(&mut self, file: &str, v: &Value) {
        match v {
            Value::Object(map) => {
                for (k, x) in map {
                    match (k.ends_with(".$"), x) {
                        (true, Value::String(s)) => {
                            let r = crate::intrinsic::parse_payload_expr(s);
                            self.check(&format!("{file}: {k}"), s, r);
                        }
                        _ => self.payload(file, x),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|x| self.payload(file, x)),
            _ => {}
        }
    }

    fn choice_rule(&mut self, file: &str, rule: &Value) {
        let Value::Object(map) = rule else { return };
        for (k, v) in map {
            match (k.as_str(), v) {
                ("Variable", Value::String(s)) => {
                    let r = parse_json_path(s);
                    self.check(&format!("{file}: Variable"), s, r);
                }
                ("And" | "Or", Value::Array(rules)) => {
                    rules.iter().for_each(|r| self.choice_rule(file, r))
                }
                ("Not", r) => self.choice_rule(file, r),
                (k, Value::String(s)) if k.ends_with("Path") => {
                    let r = parse_json_path(s);
                    self.check(&format!("{file}: {k}"), s, r);
                }
                _ => {}
            }
        }
    }

    fn states(&mut self, file: &str, states: &Value, inherited: &str) {
        let Value::Object(states) = states else {
            return;
        };
        for state in states.values() {
            let Value::Object(s) = state else { continue };
            let lang = s
                .get("QueryLanguage")
                .and_then(Value::as_str)
                .unwrap_or(inherited);
            if lang != "JSONata" {
                for field in ["InputPath", "OutputPath", "ItemsPath"] {
                    if let Some(Value::String(p)) = s.get(field) {
                        let r = parse_json_path(p);
                        self.check(&format!("{file}: {field}"), p, r);
                    }
                }
                if let Some(Value::String(p)) = s.get("ResultPath") {
                    let r = parse_reference_path(p);
                    self.check(&format!("{file}: ResultPath"), p, r);
                }
                for field in ["Parameters", "ResultSelector", "ItemSelector", "Assign"] {
                    if let Some(v) = s.get(field) {
                        self.payload(file, v);
                    }
                }
                if let Some(v) = s.get("ItemReader").and_then(|r| r.get("Parameters")) {
                    self.payload(file, v);
                }
                for c in s
                    .get("Choices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.choice_rule(file, c);
                    if let Some(v) = c.get("Assign") {
                        self.payload(file, v);
                    }
                }
                for c in s
                    .get("Catch")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(Value::String(p)) = c.get("ResultPath") {
                        let r = parse_reference_path(p);
                        self.check(&format!("{file}: Catch ResultPath"), p, r);
                    }
                    if let Some(v) = c.get("Assign") {
                        self.payload(file, v);
                    }
                }
                for field in ["ErrorPath", "CausePath"] {
                    if let Some(Value::String(p)) = s.get(field) {
                        let r = crate::intrinsic::parse_payload_expr(p);
                        self.check(&format!("{file}: {field}"), p, r);
                    }
                }
                for field in [
                    "TimeoutSecondsPath",
                    "HeartbeatSecondsPath",
                    "SecondsPath",
                    "TimestampPath",
                    "MaxConcurrencyPath",
                    "ToleratedFailureCountPath",
                    "ToleratedFailurePercentagePath",
                ] {
                    if let Some(Value::String(p)) = s.get(field) {
                        let r = parse_reference_path(p);
                        self.check(&format!("{file}: {field}"), p, r);
                    }
                }
            }
            for b in s
                .get("Branches")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let l = b
                    .get("QueryLanguage")
                    .and_then(Value::as_str)
                    .unwrap_or(lang);
                if let Some(st) = b.get("States") {
                    self.states(file, st, l);
                }
            }
            for field in ["Iterator", "ItemProcessor"] {
                if let Some(p) = s.get(field) {
                    let l = p
                        .get("QueryLanguage")
                        .and_then(Value::as_str)
                        .unwrap_or(lang);
                    if let Some(st) = p.get("States") {
                        self.states(file, st, l);
                    }
                }
            }
        }
    }
}

#[test]
fn corpus_paths_parse() {
    let dir = corpus_dir().join("cases");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipping corpus_paths_parse: {} not found", dir.display());
        return;
    };
    let mut corpus = Corpus::default();
    let mut files = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable case");
        let case: Value = serde_json::from_str(&text).expect("case is JSON");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let Some(def) = case.get("definition") else {
            continue;
        };
        files += 1;
        let lang = def
            .get("QueryLanguage")
            .and_then(Value::as_str)
            .unwrap_or("JSONPath");
        if case.get("kind").and_then(Value::as_str) == Some("test_state")
            && def.get("Type").is_some()
        {
            // A single state given to the TestState API.
            let wrapper = json!({ "State": def });
            corpus.states(&name, &wrapper, lang);
        } else if let Some(states) = def.get("States") {
            corpus.states(&name, states, lang);
        }
    }
    eprintln!(
        "corpus_paths_parse: {files} definitions, {} expressions parsed",
        corpus.parsed
    );
    assert!(
        corpus.failures.is_empty(),
        "{} failures:\n{}",
        corpus.failures.len(),
        corpus.failures.join("\n")
    );
    assert!(corpus.parsed > 0);

    // Expressions AWS (or asl-validator) rejects.
    for bad in [".guid", "..guid", "()", "$..."] {
        assert!(parse_reference_path(bad).is_err(), "{bad}");
    }
    assert!(parse_reference_path("$foo").unwrap().root.is_variable());
    assert!(parse_json_path("bug$.library.movies").is_err());
    assert!(crate::intrinsic::parse_payload_expr("ipsum").is_err());
    assert!(crate::intrinsic::parse_payload_expr("not a path").is_err());
}
