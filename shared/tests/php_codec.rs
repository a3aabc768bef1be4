//! The session codec against real PHP (`php`, php-cli; these tests fail when it
//! is missing, they never skip). Both directions, both PHP session serializers,
//! every type `serialize()` writes, thousands of generated sessions, PHP started
//! once per batch:
//!
//! - sessions generated here, encoded here, then decoded and encoded again by
//!   PHP's `session_decode()`/`session_encode()`: the same bytes, and PHP's own
//!   view of the values (the JSON form, written again in PHP in
//!   `tests/php/common.php`) is what was generated;
//! - sessions PHP generated (`tests/php/generate.php`, seeded) decoded here: the
//!   values PHP sees, and through JSON text and back the bytes PHP wrote.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use dynamodb_sessions::codec::{decode, encode, Data, DataFormat};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value as Json};

/// Generated sessions per format and direction.
const CASES: usize = 2000;
const FORMATS: [DataFormat; 2] = [DataFormat::Php, DataFormat::PhpSerialize];

// ---------------------------------------------------------------------------
// Running PHP.

/// Runs `php -n tests/php/<script> <args>` (-n: no php.ini, PHP's defaults);
/// panics with PHP's output if it fails, or if there is no `php`.
fn run_php(script: &str, args: &[&str]) {
    static PHP_PRESENT: OnceLock<bool> = OnceLock::new();
    let present =
        PHP_PRESENT.get_or_init(|| Command::new("php").arg("-v").output().is_ok_and(|output| output.status.success()));
    assert!(
        present,
        "`php` (php-cli) is needed for the PHP interop tests and was not found: `apt-get install php-cli` (scripts/test installs it with scripts/system-packages)"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/php").join(script);
    let output = Command::new("php").arg("-n").arg(&script).args(args).output().expect("php runs");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "php {} {args:?} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// A file for this test run under cargo's temporary directory for tests.
fn temp_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("php_codec-{}-{name}", std::process::id()))
}

/// `[[name, value], ...]` as PHP's `session_json()` prints it, as a session.
fn php_session_json(text: &str) -> Data {
    let variables: Vec<(String, Json)> = serde_json::from_str(text).expect("PHP prints [[name, value], ...]");
    variables.into_iter().collect()
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Fails with the first few problems and how many there were.
fn assert_no_failures(failures: Vec<String>, cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed; the first ones:\n\n{}",
        failures.len(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// Generating sessions in the JSON form (classes and enums as tests/php/common.php defines them).

fn tag(kind: &str, fields: Json) -> Json {
    let mut tag = json!({ "$php": kind });
    tag.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    tag
}

fn bytes_tag(bytes: Vec<u8>) -> Json {
    // A leading 0xff: never UTF-8, so this is how the codec itself shows these bytes.
    tag("bytes", json!({ "base64": BASE64.encode([&[0xff][..], &bytes].concat()) }))
}

fn text() -> impl Strategy<Value = String> {
    "[a-zé\"\\\\;|{}:\u{0}日🙂 \n]{0,8}"
}

fn float() -> impl Strategy<Value = Json> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits).prop_filter("finite", |f| f.is_finite()).prop_map(Json::from),
        prop::sample::select(vec![0.1, 1.0, -0.0, 0.0, 1e25, 1e-5, 1e15, 1e17, 0.0001, 5e-324, f64::MAX, 100.0])
            .prop_map(Json::from),
        // Few binary fraction digits: often exactly halfway between two shortest decimals.
        (1u64 << 40..1 << 53, 0..12, any::<bool>()).prop_map(|(n, shift, negative)| Json::from(
            if negative { -1.0 } else { 1.0 } * n as f64 * 0.5f64.powi(shift)
        )),
        prop::sample::select(vec!["INF", "-INF", "NAN"]).prop_map(|value| tag("float", json!({ "value": value }))),
    ]
}

/// A value without children: what R: may point to.
fn scalar() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        (-5i64..100).prop_map(Json::from),
        float(),
        text().prop_map(Json::from),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(bytes_tag),
    ]
}

/// Any value; references are placeholders (`to` picks a target) resolved by `Numbering`.
fn value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        4 => scalar(),
        1 => prop::sample::select(vec![("Suit", "Hearts"), ("Suit", "Spades"), ("Pure", "A"), ("Pure", "B")])
            .prop_map(|(class, case)| tag("enum", json!({ "class": class, "case": case }))),
        1 => prop_oneof![text().prop_map(Json::from), prop::collection::vec(any::<u8>(), 0..6).prop_map(bytes_tag)]
            .prop_map(|data| tag("serializable", json!({ "class": "Raw", "data": data }))),
        1 => any::<u32>().prop_map(|pick| tag("reference", json!({ "to": pick }))),
        1 => any::<u32>().prop_map(|pick| tag("object_reference", json!({ "to": pick }))),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let map_key = prop_oneof![
            prop::sample::select(vec!["", "a", "07", "-0", "5", "-3", "0", "1", "x|y", "é", "9223372036854775808"])
                .prop_map(String::from),
            "[a-z]{1,3}",
        ];
        let pair_key = prop_oneof![
            any::<i64>().prop_map(Json::from),
            (-3i64..10).prop_map(Json::from),
            "[a-z]{0,3}".prop_map(Json::from),
            prop::collection::vec(any::<u8>(), 0..3).prop_map(bytes_tag),
        ];
        let property = prop_oneof![
            "[a-z_][a-z0-9_]{0,4}",
            "[a-z]{1,3}".prop_map(|name| format!("\u{0}Base\u{0}{name}")),
            "[a-z]{1,3}".prop_map(|name| format!("\u{0}*\u{0}{name}")),
        ];
        let class = "X[A-Z][a-z]{0,4}(\\\\[A-Z][a-z]{0,3})?";
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec((map_key, inner.clone()), 0..5)
                .prop_map(|entries| Json::Object(entries.into_iter().collect())),
            // A `$php` key or a non-UTF-8 key: only the `array` tag holds these.
            (prop::collection::vec((pair_key, inner.clone()), 0..4), any::<bool>(), inner.clone()).prop_map(
                |(entries, dollar, forced)| {
                    let forced_key = if dollar { json!("$php") } else { bytes_tag(vec![]) };
                    let pairs = unique_pairs([(forced_key, forced)].into_iter().chain(entries));
                    tag("array", json!({ "entries": pairs }))
                }
            ),
            (class, prop::collection::vec((property.clone(), inner.clone()), 0..4)).prop_map(|(class, properties)| {
                let properties: serde_json::Map<_, _> = properties.into_iter().collect();
                tag("object", json!({ "class": class, "properties": properties }))
            }),
            prop::collection::vec((property, inner), 0..3).prop_map(|properties| {
                let properties: serde_json::Map<_, _> = properties.into_iter().collect();
                tag("object", json!({ "class": "stdClass", "properties": properties }))
            }),
            // __serialize() data with int keys (plain values: Pair keeps them in an array of its own).
            (
                any::<i64>(),
                prop::collection::vec(((-3i64..10).prop_map(Json::from), scalar()), 0..3),
                prop::collection::vec(("[a-z]{1,3}".prop_map(Json::from), scalar()), 0..3)
            )
                .prop_map(|(first, ints, names)| {
                    let pairs = unique_pairs([(Json::from(first), Json::Null)].into_iter().chain(ints).chain(names));
                    tag("object", json!({ "class": "Pair", "properties": pairs }))
                }),
        ]
    })
}

/// `[key, value]` pairs with no key twice (as PHP names keys).
fn unique_pairs(pairs: impl IntoIterator<Item = (Json, Json)>) -> Vec<Json> {
    let mut seen = std::collections::HashSet::new();
    pairs.into_iter().filter(|(key, _)| seen.insert(key.to_string())).map(|(key, value)| json!([key, value])).collect()
}

/// A session in `format`: names PHP keeps, references pointing where PHP can
/// resolve them, enum cases written as PHP writes them.
fn session(format: DataFormat) -> impl Strategy<Value = Data> {
    let name = match format {
        DataFormat::Php => "[a-z!{:; ]{0,4}".boxed(),
        _ => prop_oneof!["[a-z|!{:; ]{0,4}", (-3i64..20).prop_map(|int| int.to_string())].boxed(),
    };
    prop::collection::vec((name, value()), 0..5).prop_map(move |variables| {
        let mut data: Data = variables.into_iter().collect();
        let mut numbering = Numbering::new(format);
        data.values_mut().for_each(|value| numbering.number(value, true));
        data
    })
}

/// PHP's numbering of values (as the codec documents it), used to point the
/// generated references at values PHP can resolve and write back unchanged:
/// `reference` at an earlier scalar, `object_reference` at an earlier, finished
/// object; the same enum case again as `object_reference`, as PHP writes it.
struct Numbering {
    count: u64,
    scalars: Vec<u64>,
    objects: Vec<u64>,
    enums: HashMap<String, u64>,
}

impl Numbering {
    fn new(format: DataFormat) -> Self {
        // php_serialize: the session array is value 1.
        let count = if format == DataFormat::PhpSerialize { 1 } else { 0 };
        Numbering { count, scalars: Vec::new(), objects: Vec::new(), enums: HashMap::new() }
    }

    fn next(&mut self) -> u64 {
        self.count += 1;
        self.count
    }

    fn number(&mut self, value: &mut Json, targets: bool) {
        let kind = value.get("$php").and_then(Json::as_str).map(str::to_owned);
        match kind.as_deref() {
            Some("reference") => {
                let pick = value["to"].as_u64().unwrap() as usize;
                match self.scalars.get(pick % self.scalars.len().max(1)) {
                    Some(&to) => value["to"] = to.into(),
                    None => {
                        *value = Json::Null;
                        self.next();
                    }
                }
            }
            Some("object_reference") => {
                self.next();
                let pick = value["to"].as_u64().unwrap() as usize;
                match self.objects.get(pick % self.objects.len().max(1)) {
                    Some(&to) => value["to"] = to.into(),
                    None => *value = Json::Null,
                }
            }
            Some("enum") => {
                let own = self.next();
                let case = value.to_string();
                match self.enums.get(&case) {
                    Some(&first) => *value = tag("object_reference", json!({ "to": first })),
                    None => {
                        self.enums.insert(case, own);
                        self.objects.push(own);
                    }
                }
            }
            Some("serializable") => {
                let own = self.next();
                self.objects.push(own);
            }
            Some("object") => {
                let own = self.next();
                let pair = value["class"] == "Pair";
                match &mut value["properties"] {
                    Json::Object(properties) => properties.values_mut().for_each(|value| self.number(value, targets)),
                    Json::Array(pairs) => {
                        pairs.iter_mut().for_each(|pair_| self.number(&mut pair_[1], targets && !pair))
                    }
                    _ => unreachable!(),
                }
                self.objects.push(own);
            }
            Some("array") => {
                self.next();
                let entries = value["entries"].as_array_mut().unwrap();
                entries.iter_mut().for_each(|pair| self.number(&mut pair[1], targets));
            }
            Some(_) => {
                // bytes, float: scalars.
                let own = self.next();
                if targets {
                    self.scalars.push(own);
                }
            }
            None => match value {
                Json::Array(items) => {
                    self.next();
                    items.iter_mut().for_each(|item| self.number(item, targets));
                }
                Json::Object(map) => {
                    self.next();
                    map.values_mut().for_each(|item| self.number(item, targets));
                }
                _ => {
                    let own = self.next();
                    if targets {
                        self.scalars.push(own);
                    }
                }
            },
        }
    }
}

fn has_references(value: &Json) -> bool {
    match value {
        Json::Object(map) => {
            matches!(map.get("$php").and_then(Json::as_str), Some("reference" | "object_reference"))
                || map.values().any(has_references)
        }
        Json::Array(items) => items.iter().any(has_references),
        _ => false,
    }
}

/// The JSON form PHP shows for generated JSON: JSON objects with list keys
/// (`{}` included) are lists (tags and property maps stay as they are).
fn as_read_back(value: &Json) -> Json {
    match value {
        Json::Array(items) => Json::Array(items.iter().map(as_read_back).collect()),
        Json::Object(map) if map.contains_key("$php") => {
            let mut tag = map.clone();
            let field = if tag.contains_key("entries") { "entries" } else { "properties" };
            match tag.get_mut(field) {
                Some(Json::Array(pairs)) => pairs.iter_mut().for_each(|pair| pair[1] = as_read_back(&pair[1])),
                Some(Json::Object(properties)) => {
                    properties.values_mut().for_each(|value| *value = as_read_back(value))
                }
                _ => {}
            }
            Json::Object(tag)
        }
        Json::Object(map) if map.keys().enumerate().all(|(index, key)| *key == index.to_string()) => {
            Json::Array(map.values().map(as_read_back).collect())
        }
        Json::Object(map) => Json::Object(map.iter().map(|(key, value)| (key.clone(), as_read_back(value))).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------

#[test]
fn sessions_encoded_here_read_back_identically_in_php() {
    let mut input = String::new();
    let mut cases = Vec::new();
    for format in FORMATS {
        let mut runner = TestRunner::deterministic();
        let strategy = session(format);
        for _ in 0..CASES {
            let data = strategy.new_tree(&mut runner).expect("a session").current();
            let stored = encode(format, &data).unwrap_or_else(|error| panic!("{error}: {}", Json::from(data.clone())));
            let values = !data.values().any(has_references);
            input.push_str(&format!("{format} {} {}\n", BASE64.encode(&stored), u8::from(values)));
            cases.push((format, data, stored, values));
        }
    }
    let (input_file, output_file) = (temp_file("encoded-here.txt"), temp_file("php-read.txt"));
    std::fs::write(&input_file, input).unwrap();
    run_php("roundtrip.php", &[input_file.to_str().unwrap(), output_file.to_str().unwrap()]);
    let output = std::fs::read_to_string(&output_file).unwrap();
    let _ = (std::fs::remove_file(input_file), std::fs::remove_file(output_file));

    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), cases.len(), "one line from PHP per session");
    let mut failures = Vec::new();
    for ((format, data, stored, values), line) in cases.iter().zip(lines) {
        let sent = Json::from(data.clone());
        let Some(["ok", encoded, php_json]) =
            line.splitn(3, ' ').collect::<Vec<_>>().get(..3).map(|parts| [parts[0], parts[1], parts[2]])
        else {
            failures.push(format!("{format}: PHP could not read {} (sent {sent}): {line}", show(stored)));
            continue;
        };
        let encoded = BASE64.decode(encoded).unwrap();
        if encoded != *stored {
            failures.push(format!(
                "{format}: PHP wrote back {}\ninstead of {}\n(sent {sent})",
                show(&encoded),
                show(stored)
            ));
        } else if *values {
            let seen = Json::from(php_session_json(php_json));
            let expected = Json::Object(data.iter().map(|(name, value)| (name.clone(), as_read_back(value))).collect());
            if seen != expected {
                failures.push(format!("{format}: PHP sees {seen}\ninstead of {expected}\n(stored {})", show(stored)));
            }
        }
    }
    assert_no_failures(failures, cases.len());
    let with_values = cases.iter().filter(|case| case.3).count();
    println!("{} sessions read back identically by PHP ({with_values} also compared value by value)", cases.len());
}

#[test]
fn sessions_php_wrote_decode_and_encode_back_identically() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for (seed, format) in FORMATS.into_iter().enumerate() {
        let output_file = temp_file(&format!("php-wrote-{format}.txt"));
        let count = CASES.to_string();
        run_php("generate.php", &[format.as_str(), &(seed + 1).to_string(), &count, output_file.to_str().unwrap()]);
        let output = std::fs::read_to_string(&output_file).unwrap();
        let _ = std::fs::remove_file(output_file);
        assert_eq!(output.lines().count(), CASES, "one line from PHP per session");
        for line in output.lines() {
            let (stored, php_json) = line.split_once(' ').expect("<base64> <json>");
            let stored = BASE64.decode(stored).unwrap();
            let decoded = match decode(format, &stored) {
                Ok(decoded) => decoded,
                Err(error) => {
                    failures.push(format!("{format}: {error} in {}", show(&stored)));
                    continue;
                }
            };
            if php_json != "-" {
                compared += 1;
                let seen = php_session_json(php_json);
                if decoded != seen {
                    let (decoded, seen) = (Json::from(decoded.clone()), Json::from(seen));
                    failures.push(format!("{format}: decoded {decoded}\nPHP sees {seen}\n(stored {})", show(&stored)));
                    continue;
                }
            }
            // As the HTTP API would: JSON text out, JSON text back in, stored again.
            let text = serde_json::to_string(&decoded).unwrap();
            let parsed: Data = serde_json::from_str(&text).unwrap();
            match encode(format, &parsed) {
                Ok(encoded) if encoded == stored => {}
                Ok(encoded) => failures.push(format!(
                    "{format}: encoded {}\ninstead of {}\n(via {text})",
                    show(&encoded),
                    show(&stored)
                )),
                Err(error) => failures.push(format!("{format}: {error} encoding {text}")),
            }
        }
    }
    assert_no_failures(failures, FORMATS.len() * CASES);
    println!(
        "{} sessions PHP wrote decoded and encoded back identically ({compared} compared value by value)",
        FORMATS.len() * CASES
    );
}
