//! Golden cases for every PHP type, the errors bad data gets, and property
//! tests: round trips through JSON text, and no panic on any input.

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::value::{Key, Value};
use super::*;

fn data(json: Json) -> Data {
    match json {
        Json::Object(data) => data,
        other => panic!("not an object: {other}"),
    }
}

/// `stored` decodes to `expected` in `format`, and `expected` encodes to `stored`.
#[track_caller]
fn golden(format: DataFormat, stored: &[u8], expected: Json) {
    let expected = data(expected);
    let decoded = decode(format, stored).unwrap_or_else(|error| panic!("{format} {stored:?}: {error}"));
    assert_eq!(decoded, expected, "decoding {format} {:?}", String::from_utf8_lossy(stored));
    let encoded = encode(format, &expected).unwrap_or_else(|error| panic!("{format} {expected:?}: {error}"));
    assert_eq!(String::from_utf8_lossy(&encoded), String::from_utf8_lossy(stored), "encoding {format}");
    assert_eq!(encoded, stored);
}

/// `x|<value>` in the `php` format, and `a:1:{s:1:"x";<value>}` in
/// `php_serialize`, hold `value` as `{"x": json}` (for values without
/// references: the numbering differs by one between the two).
#[track_caller]
fn golden_value(serialized: &[u8], value: Json) {
    golden(DataFormat::Php, &[b"x|", serialized].concat(), json!({ "x": value }));
    let in_array = [b"a:1:{s:1:\"x\";", serialized, b"}"].concat();
    golden(DataFormat::PhpSerialize, &in_array, json!({ "x": value }));
}

#[test]
fn scalars() {
    golden_value(b"N;", json!(null));
    golden_value(b"b:0;", json!(false));
    golden_value(b"b:1;", json!(true));
    golden_value(b"i:0;", json!(0));
    golden_value(b"i:-42;", json!(-42));
    golden_value(b"i:9223372036854775807;", json!(i64::MAX));
    golden_value(b"i:-9223372036854775808;", json!(i64::MIN));
}

#[test]
fn floats_as_php_writes_them() {
    // The exact texts of PHP 8.2's serialize() (serialize_precision = -1).
    for (text, value) in [
        ("0.1", 0.1),
        ("1", 1.0),
        ("0", 0.0),
        ("-0", -0.0),
        ("-1.5", -1.5),
        ("100", 100.0),
        ("1.0E+25", 1e25),
        ("1000000000000000", 1e15),
        ("10000000000000000", 1e16),
        ("1.0E+17", 1e17),
        ("0.0001", 1e-4),
        ("1.0E-5", 1e-5),
        ("0.001234", 0.001234),
        ("1.2345678901234568E+17", 123456789012345678.0),
        ("0.30000000000000004", 0.1 + 0.2),
        ("5.0E-324", 5e-324),
        ("1.7976931348623157E+308", f64::MAX),
        // Exactly halfway between two shortest candidates: PHP takes the even one.
        ("100305426194927.62", 802443409559421.0 / 8.0), // exactly ...927.625
        ("1.2345678901234568E+17", 123456789012345680.0),
    ] {
        assert_eq!(float::format(value), text);
        let stored = format!("d:{text};");
        golden_value(stored.as_bytes(), json!(value));
        let decoded = decode(DataFormat::Php, format!("x|{stored}").as_bytes()).unwrap();
        let Json::Number(number) = &decoded["x"] else { panic!("{decoded:?}") };
        assert!(number.is_f64(), "{text} must stay a float in JSON");
        assert_eq!(number.as_f64().unwrap().to_bits(), value.to_bits(), "{text}");
    }
    golden_value(b"d:INF;", json!({"$php": "float", "value": "INF"}));
    golden_value(b"d:-INF;", json!({"$php": "float", "value": "-INF"}));
    golden_value(b"d:NAN;", json!({"$php": "float", "value": "NAN"}));
}

#[test]
fn float_texts_php_reads_but_does_not_write() {
    // Read as PHP reads them (older PHP wrote 17 significant digits); written back canonically.
    for (text, value) in [
        ("1.0", 1.0),
        ("+1.5e+3", 1500.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("-.5", -0.5),
        ("1e5", 1e5),
        ("0.10000000000000001", 0.1),
    ] {
        assert_eq!(float::parse(text.as_bytes()), Some(value), "{text}");
    }
    for text in ["", ".", "e5", "1e", "1e+", "inf", "+INF", "-NAN", "nan", "1.5.2", "0x10", " 1", "1 ", "1_0"] {
        assert_eq!(float::parse(text.as_bytes()), None, "{text:?}");
    }
    let decoded = decode(DataFormat::Php, b"x|d:1.0;").unwrap();
    assert_eq!(encode(DataFormat::Php, &decoded).unwrap(), b"x|d:1;");
}

#[test]
fn strings() {
    golden_value(b"s:0:\"\";", json!(""));
    golden_value("s:6:\"h\u{e9}llo\";".as_bytes(), json!("h\u{e9}llo"));
    // Quotes, semicolons, braces and NUL inside: the length decides, not the content.
    golden_value(b"s:7:\"a\";b}\0\"\";", json!("a\";b}\u{0}\""));
    golden_value(b"s:2:\"\xff\x00\";", json!({"$php": "bytes", "base64": "/wA="}));
}

#[test]
fn arrays() {
    golden_value(b"a:0:{}", json!([]));
    golden_value(b"a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}", json!(["a", "b"]));
    golden_value(b"a:2:{i:1;s:1:\"a\";i:0;s:1:\"b\";}", json!({"1": "a", "0": "b"}));
    golden_value(b"a:2:{s:1:\"x\";i:1;i:7;i:2;}", json!({"x": 1, "7": 2}));
    golden_value(b"a:3:{s:2:\"07\";i:1;s:2:\"-0\";i:2;i:-7;i:3;}", json!({"07": 1, "-0": 2, "-7": 3}));
    golden_value(
        b"a:1:{s:19:\"9223372036854775808\";N;}",
        json!({"9223372036854775808": null}), // beyond i64: PHP keeps it a string key
    );
    golden_value(b"a:1:{i:0;a:1:{i:0;a:0:{}}}", json!([[[]]]));
    // A key `$php` or a non-UTF-8 key: the `array` tag, entries as pairs.
    golden_value(
        b"a:3:{s:4:\"$php\";i:1;i:7;i:2;s:1:\"\xff\";i:3;}",
        json!({"$php": "array", "entries": [["$php", 1], [7, 2], [{"$php": "bytes", "base64": "/w=="}, 3]]}),
    );
}

#[test]
fn array_keys_are_canonical_as_in_php() {
    // PHP reads `s:1:"5"` as the int key 5 and writes it back as `i:5;`.
    let decoded = decode(DataFormat::Php, b"x|a:1:{s:1:\"5\";i:1;}").unwrap();
    assert_eq!(decoded, data(json!({"x": {"5": 1}})));
    assert_eq!(encode(DataFormat::Php, &decoded).unwrap(), b"x|a:1:{i:5;i:1;}");
    // JSON objects with list keys are lists; `{}` nested is `a:0:{}`.
    let from_json = data(json!({"x": {"0": "a", "1": "b"}, "y": {}}));
    let stored = encode(DataFormat::Php, &from_json).unwrap();
    assert_eq!(stored, b"x|a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}y|a:0:{}");
    assert_eq!(decode(DataFormat::Php, &stored).unwrap(), data(json!({"x": ["a", "b"], "y": []})));
    // Pairs: a string key that is a canonical integer is that int key, as PHP makes it.
    let pairs = data(json!({"x": {"$php": "array", "entries": [["5", 1], ["$php", 2]]}}));
    assert_eq!(encode(DataFormat::Php, &pairs).unwrap(), b"x|a:2:{i:5;i:1;s:4:\"$php\";i:2;}");
}

#[test]
fn objects() {
    golden_value(b"O:8:\"stdClass\":0:{}", json!({"$php": "object", "class": "stdClass", "properties": {}}));
    golden_value(
        b"O:4:\"Priv\":3:{s:7:\"\0Priv\0a\";i:1;s:4:\"\0*\0b\";i:2;s:1:\"c\";i:3;}",
        json!({"$php": "object", "class": "Priv", "properties": {"\u{0}Priv\u{0}a": 1, "\u{0}*\u{0}b": 2, "c": 3}}),
    );
    // A property named "0" stays `s:1:"0";` (objects keep string names).
    golden_value(
        b"O:11:\"App\\Model\\X\":1:{s:1:\"0\";a:0:{}}",
        json!({"$php": "object", "class": "App\\Model\\X", "properties": {"0": []}}),
    );
    // `__serialize()` data with int keys: pairs keep int and string keys apart.
    golden_value(
        b"O:4:\"Pair\":2:{i:0;i:1;s:1:\"a\";i:2;}",
        json!({"$php": "object", "class": "Pair", "properties": [[0, 1], ["a", 2]]}),
    );
    // ... and `i:0;` and `s:1:"0";` are one property name to PHP.
    let error = decode(DataFormat::Php, b"x|O:4:\"Pair\":2:{i:0;i:1;s:1:\"0\";i:2;}");
    assert_eq!(error, Err(CodecError::DuplicateKey { at: Position::Byte(24) }));
}

#[test]
fn serializable_enums_and_references() {
    golden_value(b"C:3:\"Raw\":6:{\0bin\"}}", json!({"$php": "serializable", "class": "Raw", "data": "\u{0}bin\"}"}));
    golden_value(
        b"C:3:\"Raw\":1:{\xfe}",
        json!({"$php": "serializable", "class": "Raw", "data": {"$php": "bytes", "base64": "/g=="}}),
    );
    golden_value(b"E:11:\"Suit:Hearts\";", json!({"$php": "enum", "class": "Suit", "case": "Hearts"}));
    // Numbering: php_serialize's session array is 1; R: entries are not numbered.
    golden(
        DataFormat::PhpSerialize,
        b"a:4:{i:0;i:5;i:1;R:2;i:2;O:8:\"stdClass\":0:{}i:3;r:3;}",
        json!({
            "0": 5, "1": {"$php": "reference", "to": 2},
            "2": {"$php": "object", "class": "stdClass", "properties": {}},
            "3": {"$php": "object_reference", "to": 3},
        }),
    );
    // In the php format the numbering runs across the session's variables
    // (as PHP 8.2's session_encode() wrote it).
    golden(
        DataFormat::Php,
        b"a|i:1;b|R:1;c|a:2:{i:0;i:5;i:1;R:3;}",
        json!({"a": 1, "b": {"$php": "reference", "to": 1}, "c": [5, {"$php": "reference", "to": 3}]}),
    );
    golden(
        DataFormat::Php,
        b"x|O:8:\"stdClass\":0:{}y|r:1;z|a:1:{i:0;r:1;}",
        json!({
            "x": {"$php": "object", "class": "stdClass", "properties": {}},
            "y": {"$php": "object_reference", "to": 1},
            "z": [{"$php": "object_reference", "to": 1}],
        }),
    );
    // Enums are objects (PHP writes the second occurrence as r:).
    golden(
        DataFormat::Php,
        b"x|a:2:{i:0;E:11:\"Suit:Hearts\";i:1;r:2;}",
        json!({"x": [{"$php": "enum", "class": "Suit", "case": "Hearts"}, {"$php": "object_reference", "to": 2}]}),
    );
    // An object referring to itself, an array holding a reference to itself: PHP accepts both.
    golden(
        DataFormat::Php,
        b"x|O:8:\"stdClass\":1:{s:4:\"self\";r:1;}",
        json!({"x": {"$php": "object", "class": "stdClass", "properties": {"self": {"$php": "object_reference", "to": 1}}}}),
    );
    golden(DataFormat::PhpSerialize, b"a:1:{i:0;R:1;}", json!({"0": {"$php": "reference", "to": 1}}));
    // After a C: payload, PHP numbers what the payload holds: only to >= 1 is checked.
    golden(
        DataFormat::Php,
        b"x|a:2:{i:0;C:3:\"Raw\":0:{}i:1;R:9;}",
        json!({"x": [{"$php": "serializable", "class": "Raw", "data": ""}, {"$php": "reference", "to": 9}]}),
    );
}

#[test]
fn session_formats() {
    for format in [DataFormat::Json, DataFormat::Php, DataFormat::PhpSerialize] {
        assert_eq!(decode(format, b"").unwrap(), Data::new(), "{format}");
    }
    assert_eq!(encode(DataFormat::Php, &Data::new()).unwrap(), b"");
    assert_eq!(encode(DataFormat::PhpSerialize, &Data::new()).unwrap(), b"a:0:{}");
    assert_eq!(encode(DataFormat::Json, &Data::new()).unwrap(), b"{}");
    golden(DataFormat::PhpSerialize, b"a:0:{}", json!({}));
    // php: names are kept as written: `!`-prefixed, numeric, empty (PHP 8 keeps them all).
    golden(DataFormat::Php, b"!a|i:1;5|i:2;|i:3;{x|N;a:|N;", json!({"!a": 1, "5": 2, "": 3, "{x": null, "a:": null}));
    // php_serialize: the keys are array keys.
    golden(DataFormat::PhpSerialize, b"a:2:{i:5;i:1;s:3:\"a|b\";i:2;}", json!({"5": 1, "a|b": 2}));
    // The top level is the session, never a tag: `$php` is just a name there.
    golden(DataFormat::PhpSerialize, b"a:1:{s:4:\"$php\";s:5:\"bytes\";}", json!({"$php": "bytes"}));
    golden(DataFormat::Php, b"$php|s:5:\"bytes\";", json!({"$php": "bytes"}));
    golden(DataFormat::Json, b"{\"b\":1,\"a\":[1.0,{\"$php\":1}]}", json!({"b": 1, "a": [1.0, {"$php": 1}]}));
}

#[test]
fn format_names_and_detection() {
    for (name, format) in
        [("json", DataFormat::Json), ("PHP", DataFormat::Php), ("Php_Serialize", DataFormat::PhpSerialize)]
    {
        assert_eq!(name.parse::<DataFormat>(), Ok(format));
        assert_eq!(format.to_string(), name.to_ascii_lowercase());
    }
    assert_eq!(
        "yaml".parse::<DataFormat>().unwrap_err().to_string(),
        "unknown data format `yaml`: expected json, php or php_serialize"
    );
    for (stored, format) in [
        (&b"{\"a\":1}"[..], Some(DataFormat::Json)),
        (b" {} ", Some(DataFormat::Json)),
        (b"a:1:{s:1:\"a\";i:1;}", Some(DataFormat::PhpSerialize)),
        (b"a:0:{}", Some(DataFormat::PhpSerialize)),
        (b"a|i:1;", Some(DataFormat::Php)),
        // A php name that starts like the other formats is not mistaken for them.
        (b"{\"a\":1}|i:1;", Some(DataFormat::Php)),
        (b"a:1:{|i:1;", Some(DataFormat::Php)),
        (b"a:0:{}|i:1;", Some(DataFormat::Php)),
        (b"", None),
        (b"[1]", None),
        (b"a:1:{s:1:\"a\";i:1;", None),
        (b"a|i:1", None),
        (b"\xff", None),
    ] {
        assert_eq!(DataFormat::detect(stored), format, "{:?}", String::from_utf8_lossy(stored));
    }
}

#[track_caller]
fn refused(format: DataFormat, stored: &[u8], message: &str) {
    match decode(format, stored) {
        Err(error) => assert_eq!(error.to_string(), message, "{:?}", String::from_utf8_lossy(stored)),
        Ok(data) => panic!("{:?} decoded to {data:?}", String::from_utf8_lossy(stored)),
    }
}

#[test]
fn bad_stored_data_is_refused() {
    use DataFormat::{Json as J, Php as P, PhpSerialize as S};
    refused(P, b"x|s:10:\"short\";", "truncated string at byte 2");
    refused(P, b"x|s:3:\"abcd\";", "invalid string at byte 10: expected `\"` after the declared length");
    refused(P, b"x|s:3:\"abc\"", "truncated string at byte 2");
    refused(P, b"x|i:1", "truncated integer at byte 2");
    refused(P, b"x|i:9223372036854775808;", "integer out of range at byte 4");
    refused(P, b"x|i:;", "invalid integer at byte 4: expected a digit");
    refused(P, b"x|b:2;", "invalid boolean at byte 4: expected `0` or `1`");
    refused(P, b"x|d:1e;", "invalid float at byte 2");
    refused(P, b"x|S:1:\"a\";", "invalid type marker at byte 2");
    refused(P, b"x|a:2:{i:0;N;}", "element count at byte 4 exceeds what the data can hold");
    refused(P, b"x|a:2:{i:0;N;}i:1;N;", "invalid array key at byte 13: expected `i` or `s`");
    refused(P, b"x|a:1:{i:0;N;i:1;N;}", "invalid array at byte 13: expected `}` after the declared number of elements");
    refused(P, b"x|a:1:{d:0;N;}", "invalid array key at byte 7: expected `i` or `s`");
    refused(P, b"x|a:99999999999:{}", "element count at byte 4 exceeds what the data can hold");
    refused(P, b"x|a:99999999999999999999:{}", "number out of range at byte 4");
    refused(P, b"x|s:99999999999999999999:\"\";", "number out of range at byte 4");
    refused(P, b"x|a:2:{i:0;N;i:0;N;}", "duplicate key at byte 13");
    refused(P, b"x|N;x|N;", "duplicate key at byte 4");
    refused(P, b"x|i:1;junk", "truncated session variable at byte 6");
    refused(P, b"x|", "truncated value at byte 2");
    refused(P, b"\xff|N;", "session variable name at byte 0 is not UTF-8, which the JSON form cannot hold");
    refused(P, b"x|R:2;", "reference at byte 2 points to no earlier value");
    refused(P, b"x|R:0;", "reference at byte 2 points to no earlier value");
    refused(P, b"x|a:2:{i:0;i:1;i:1;r:2;}", "reference at byte 19 points to no earlier object");
    refused(P, b"x|r:1;", "reference at byte 2 points to no earlier object");
    refused(P, b"x|O:0:\"\":0:{}", "invalid class name at byte 4");
    refused(P, b"x|O:9:\"std Class\":0:{}", "invalid class name at byte 4");
    refused(P, b"x|O:4:\"\\Foo\":0:{}", "invalid class name at byte 4");
    refused(P, b"x|O:2:\"\xff\xfe\":0:{}", "class name at byte 4 is not UTF-8, which the JSON form cannot hold");
    refused(P, b"x|E:5:\"Suit:\";", "invalid enum name at byte 4");
    refused(P, b"x|E:4:\"Suit\";", "invalid enum name at byte 4");
    refused(S, b"a:1:{i:0;i:1;}junk", "trailing bytes at byte 14");
    refused(S, b"i:5;", "php_serialize data is not a map of session variables");
    refused(S, b"x|i:5;", "invalid type marker at byte 0");
    refused(
        S,
        b"a:1:{s:1:\"\xff\";N;}",
        "session variable name at byte 5 is not UTF-8, which the JSON form cannot hold",
    );
    refused(J, b"[1]", "json data is not a map of session variables");
    refused(J, b"{\"a\":", "invalid JSON at line 1 column 5");
}

#[test]
fn nesting_is_limited() {
    let nested =
        |levels: usize| [b"x|".to_vec(), b"a:1:{i:0;".repeat(levels), b"N;".to_vec(), b"}".repeat(levels)].concat();
    assert!(decode(DataFormat::Php, &nested(MAX_DEPTH)).is_ok());
    refused(DataFormat::Php, &nested(MAX_DEPTH + 1), "nesting deeper than 128 at byte 1154");
    // Deep input is refused without recursing through all of it.
    let deep = [b"x|".to_vec(), b"a:1:{i:0;".repeat(100_000)].concat();
    assert!(matches!(decode(DataFormat::Php, &deep), Err(CodecError::TooDeep { .. })));

    let mut json = json!(null);
    for _ in 0..MAX_DEPTH {
        json = json!([json]);
    }
    assert!(encode(DataFormat::Php, &data(json!({"x": json.clone()}))).is_ok());
    let error = encode(DataFormat::PhpSerialize, &data(json!({"x": [json]}))).unwrap_err();
    assert_eq!(error.to_string(), format!("nesting deeper than 128 at entry /0{}", "/0".repeat(MAX_DEPTH)));
}

#[track_caller]
fn unstorable(format: DataFormat, data_json: Json, message: &str) {
    match encode(format, &data(data_json.clone())) {
        Err(error) => assert_eq!(error.to_string(), message, "{data_json}"),
        Ok(stored) => panic!("{data_json} encoded to {:?}", String::from_utf8_lossy(&stored)),
    }
}

#[test]
fn json_that_php_cannot_hold_is_refused() {
    use DataFormat::{Php as P, PhpSerialize as S};
    unstorable(
        P,
        json!({"ok": 1, "a|b": 1}),
        "the session variable name at entry /1 contains `|`, which PHP's `php` session format cannot store",
    );
    unstorable(P, json!({"x": u64::MAX}), "integer out of range at entry /0");
    unstorable(S, json!({"x": [1, {"y": 18446744073709551615u64}]}), "integer out of range at entry /0/1/0");
    let tag = |tag: Json, reason: &str| {
        unstorable(P, json!({"x": [tag]}), &format!("malformed `$php` tag at entry /0/0: {reason}"))
    };
    tag(json!({"$php": 1}), "`$php` is not a string");
    tag(json!({"$php": "int", "value": 1}), "unknown `$php` kind");
    tag(json!({"$php": "bytes"}), "missing or unexpected fields for its kind");
    tag(json!({"$php": "bytes", "base64": "", "extra": 1}), "missing or unexpected fields for its kind");
    tag(json!({"$php": "bytes", "base64": "!!"}), "`base64` is not valid base64");
    tag(json!({"$php": "float", "value": "inf"}), "`value` is not \"INF\", \"-INF\" or \"NAN\"");
    tag(json!({"$php": "float", "value": 1.5}), "`value` is not \"INF\", \"-INF\" or \"NAN\"");
    tag(json!({"$php": "array", "entries": {}}), "entries are not a list of [key, value] pairs");
    let entry = |tag: Json, reason: &str| {
        unstorable(P, json!({"x": [tag]}), &format!("malformed `$php` tag at entry /0/0/0: {reason}"))
    };
    entry(json!({"$php": "array", "entries": [[1]]}), "an entry is not a [key, value] pair");
    entry(json!({"$php": "array", "entries": [[1.5, 1]]}), "a key is not an integer, a string or a bytes tag");
    tag(json!({"$php": "object", "class": "a b", "properties": {}}), "`class` is not a PHP class name");
    tag(json!({"$php": "object", "class": "", "properties": {}}), "`class` is not a PHP class name");
    tag(json!({"$php": "object", "class": "Foo", "properties": 1}), "entries are not a list of [key, value] pairs");
    tag(json!({"$php": "serializable", "class": "Foo", "data": 1}), "`data` is not a string or bytes tag");
    tag(json!({"$php": "enum", "class": "Suit", "case": "1x"}), "`case` is not a PHP name");
    tag(json!({"$php": "reference", "to": 0}), "`to` is not a positive integer");
    tag(json!({"$php": "reference", "to": "1"}), "`to` is not a positive integer");
    unstorable(P, json!({"x": {"$php": "array", "entries": [[5, 1], ["5", 2]]}}), "duplicate key at entry /0/1");
    unstorable(P, json!({"x": {"$php": "reference", "to": 1}}), "reference at entry /0 points to no earlier value");
    unstorable(
        P,
        json!({"x": 1, "y": {"$php": "object_reference", "to": 1}}),
        "reference at entry /1 points to no earlier object",
    );
    // The same reference is fine once value 1 is an object.
    let object = json!({"$php": "object", "class": "stdClass", "properties": {}});
    let stored = encode(P, &data(json!({"x": object, "y": {"$php": "object_reference", "to": 1}}))).unwrap();
    assert_eq!(stored, b"x|O:8:\"stdClass\":0:{}y|r:1;");
}

#[test]
fn messages_never_hold_session_data() {
    let secret = "hunter2-secret";
    let stored: Vec<Vec<u8>> = vec![
        format!("{secret}|s:99:\"{secret}\";").into(),
        format!("x|a:1:{{s:14:\"{secret}\";i:1;s:14:\"{secret}\";}}").into(),
        format!("x|O:14:\"{secret}\":1:{{s:1:\"a\";R:9;}}").into(),
        format!("{{\"{secret}\": [{secret}]}}").into(),
        format!("a:1:{{s:14:\"{secret}\";i:1;}}{secret}").into(),
    ];
    for bytes in stored {
        for format in DataFormat::ALL {
            if let Err(error) = decode(format, &bytes) {
                assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");
            }
        }
    }
    for data_json in [
        json!({format!("{secret}|"): 1}),
        json!({"x": {"$php": "enum", "class": secret, "case": format!("{secret}!")}}),
        json!({"x": {"$php": "object", "class": format!("{secret} "), "properties": {}}}),
    ] {
        let error = encode(DataFormat::Php, &data(data_json)).unwrap_err();
        assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");
    }
}

// ---------------------------------------------------------------------------
// Property tests.

/// Any PHP value (references as placeholders, see `number_references`).
fn php_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Value::Str),
        "[a-z\"\\\\{};|:\u{0}\u{e9}]{0,6}".prop_map(|text| Value::Str(text.into_bytes())),
        ("[A-Z][a-z]{0,3}", "[A-Za-z_][a-z0-9]{0,3}").prop_map(|(class, case)| Value::Enum { class, case }),
        Just(Value::Reference(0)),
        Just(Value::ObjectReference(0)),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        let key = prop_oneof![
            any::<i64>().prop_map(Key::Int),
            (-3i64..10).prop_map(Key::Int),
            prop::collection::vec(any::<u8>(), 0..4).prop_map(Key::Str),
            "[a-z0-9$]{0,4}".prop_map(|name| Key::Str(name.into_bytes())),
        ];
        let entries = prop::collection::vec((key, inner.clone()), 0..5);
        prop_oneof![
            prop::collection::vec(inner, 0..5).prop_map(|items| Value::Array(
                items.into_iter().enumerate().map(|(i, v)| (Key::Int(i as i64), v)).collect()
            )),
            entries.clone().prop_map(|entries| Value::Array(unique(entries, true))),
            ("[A-Z][A-Za-z\\\\]{0,5}", entries)
                .prop_map(|(class, entries)| Value::Object { class, properties: unique(entries, false) }),
            ("[A-Z][a-z]{0,4}", prop::collection::vec(any::<u8>(), 0..8))
                .prop_map(|(class, payload)| Value::Serializable { class, payload }),
        ]
    })
}

/// Entries with keys as PHP keeps them: canonical for arrays, no name twice.
fn unique(entries: Vec<(Key, Value)>, array: bool) -> Vec<(Key, Value)> {
    let mut seen = std::collections::HashSet::new();
    let canonical = |key| match key {
        Key::Str(bytes) if array => Key::array_key(bytes),
        key => key,
    };
    entries.into_iter().map(|(key, value)| (canonical(key), value)).filter(|(key, _)| seen.insert(key.name())).collect()
}

/// Points each placeholder reference at an earlier value (object), as PHP numbers
/// them, or makes it null when there is none.
fn number_references(value: &mut Value, count: &mut u64, objects: &mut Vec<u64>) {
    match value {
        Value::Reference(to) => {
            if *count == 0 {
                *value = Value::Null;
                *count += 1;
            } else {
                *to = *count;
            }
            return;
        }
        Value::ObjectReference(to) => {
            *count += 1;
            match objects.last() {
                Some(object) => *to = *object,
                None => *value = Value::Null,
            }
            return;
        }
        _ => {}
    }
    *count += 1;
    if matches!(value, Value::Object { .. } | Value::Enum { .. } | Value::Serializable { .. }) {
        objects.push(*count);
    }
    if let Value::Array(entries) | Value::Object { properties: entries, .. } = value {
        for (_, value) in entries {
            number_references(value, count, objects);
        }
    }
}

/// A `php` session: variables with distinct UTF-8 names without `|`.
fn php_session() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(("[a-z!{:0-9 ]{0,4}", php_value()), 0..4).prop_map(|variables| {
        let mut seen = std::collections::HashSet::new();
        let mut variables: Vec<_> = variables.into_iter().filter(|(name, _)| seen.insert(name.clone())).collect();
        let (mut count, mut objects) = (0, Vec::new());
        variables.iter_mut().for_each(|(_, value)| number_references(value, &mut count, &mut objects));
        variables
    })
}

/// A `php_serialize` session: its top-level array's entries.
fn php_serialize_session() -> impl Strategy<Value = Vec<(Key, Value)>> {
    let key = prop_oneof![
        (-3i64..10).prop_map(Key::Int),
        "[a-z0-9|$]{0,4}".prop_map(|name| Key::array_key(name.into_bytes()))
    ];
    prop::collection::vec((key, php_value()), 0..4).prop_map(|entries| {
        let mut entries = unique(entries, true);
        let (mut count, mut objects) = (1, Vec::new());
        entries.iter_mut().for_each(|(_, value)| number_references(value, &mut count, &mut objects));
        entries
    })
}

/// Decoded, sent as JSON text (as the HTTP API does), read back, encoded again.
fn through_json_text(format: DataFormat, stored: &[u8]) -> Vec<u8> {
    let decoded =
        decode(format, stored).unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(stored)));
    let text = serde_json::to_string(&decoded).unwrap();
    let parsed: Data = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
    encode(format, &parsed).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// A change to valid data: a byte replaced, removed or inserted, or a cut.
fn mutated(format: DataFormat) -> impl Strategy<Value = Vec<u8>> {
    let stored = match format {
        DataFormat::Php => php_session()
            .prop_map(|variables| {
                let variables: Vec<_> = variables.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
                write::php_session(&variables)
            })
            .boxed(),
        _ => php_serialize_session().prop_map(|entries| write::php_serialize_session(&entries)).boxed(),
    };
    (stored, prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..4u8), 1..4)).prop_map(
        |(mut stored, edits)| {
            for (index, byte, kind) in edits {
                let at = index.index(stored.len() + 1);
                match kind {
                    0 if at < stored.len() => stored[at] = byte,
                    1 if at < stored.len() => {
                        stored.remove(at);
                    }
                    2 => stored.insert(at, byte),
                    _ => stored.truncate(at),
                }
            }
            stored
        },
    )
}

/// Anything from normal JSON, without `$php` keys, as the API receives it.
fn plain_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Json::from),
        "\\PC{0,6}".prop_map(Json::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec(("[a-z0-9-]{0,3}", inner), 0..4)
                .prop_map(|entries| Json::Object(entries.into_iter().collect())),
        ]
    })
}

/// What plain JSON reads back as after PHP: objects with list keys are lists.
fn as_read_back(json: Json) -> Json {
    match json {
        Json::Array(items) => Json::Array(items.into_iter().map(as_read_back).collect()),
        Json::Object(map) if map.keys().enumerate().all(|(i, key)| *key == i.to_string()) => {
            Json::Array(map.into_iter().map(|(_, value)| as_read_back(value)).collect())
        }
        Json::Object(map) => Json::Object(map.into_iter().map(|(key, value)| (key, as_read_back(value))).collect()),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn php_sessions_round_trip_through_json_text(variables in php_session()) {
        let variables: Vec<_> = variables.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
        let stored = write::php_session(&variables);
        prop_assert_eq!(DataFormat::detect(&stored).is_some(), !stored.is_empty());
        prop_assert_eq!(through_json_text(DataFormat::Php, &stored), stored);
    }

    #[test]
    fn php_serialize_sessions_round_trip_through_json_text(entries in php_serialize_session()) {
        let stored = write::php_serialize_session(&entries);
        prop_assert_eq!(DataFormat::detect(&stored), Some(DataFormat::PhpSerialize));
        prop_assert_eq!(through_json_text(DataFormat::PhpSerialize, &stored), stored);
    }

    #[test]
    fn floats_round_trip_exactly(bits in any::<u64>()) {
        let value = f64::from_bits(bits);
        let text = float::format(value);
        let back = float::parse(text.as_bytes()).unwrap();
        prop_assert!(back.to_bits() == value.to_bits() || (value.is_nan() && back.is_nan()), "{} -> {}", value, text);
    }

    #[test]
    fn plain_json_reads_back_as_itself(entries in prop::collection::vec(("[a-z0-9]{0,3}", plain_json()), 0..4)) {
        let sent: Data = entries.into_iter().collect();
        for format in [DataFormat::Php, DataFormat::PhpSerialize, DataFormat::Json] {
            let stored = encode(format, &sent).unwrap();
            let back = decode(format, &stored).unwrap();
            let expected = match format {
                DataFormat::Json => sent.clone(),
                _ => sent.iter().map(|(key, value)| (key.clone(), as_read_back(value.clone()))).collect(),
            };
            prop_assert_eq!(&back, &expected, "{}", format);
            prop_assert_eq!(encode(format, &back).unwrap(), stored);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for format in DataFormat::ALL {
            let _ = decode(format, &bytes);
        }
        let _ = DataFormat::detect(&bytes);
    }

    #[test]
    fn mutated_php_sessions_never_panic_and_stay_stable(stored in mutated(DataFormat::Php)) {
        if let Ok(decoded) = decode(DataFormat::Php, &stored) {
            // Whatever is accepted is written back in a form that reads the same.
            let again = encode(DataFormat::Php, &decoded).unwrap();
            prop_assert_eq!(decode(DataFormat::Php, &again).unwrap(), decoded);
        }
    }

    #[test]
    fn mutated_php_serialize_sessions_never_panic_and_stay_stable(stored in mutated(DataFormat::PhpSerialize)) {
        if let Ok(decoded) = decode(DataFormat::PhpSerialize, &stored) {
            let again = encode(DataFormat::PhpSerialize, &decoded).unwrap();
            prop_assert_eq!(decode(DataFormat::PhpSerialize, &again).unwrap(), decoded);
        }
        let _ = DataFormat::detect(&stored);
    }
}
