//! The options must not drift apart between PRODUCT.md (the contract), this
//! library (`config::ENV_VARS`, `Config::default`) and template.yaml (its
//! parameters and both functions' environment).

use std::collections::BTreeSet;
use std::path::PathBuf;

use dynamodb_sessions::config::ENV_VARS;
use dynamodb_sessions::Config;
use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(repo().join("template.yaml")).unwrap()).unwrap()
}

/// `!Ref Name` as parsed: a tagged value.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_string),
        _ => None,
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

#[test]
fn every_option_reaches_both_functions_with_the_librarys_default() {
    let template = template();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    // The cookie's options belong to the HTTP API: session-api's tests/template.rs checks them.
    let library_option = |name: &String| !name.starts_with("COOKIE_");
    let mut names: BTreeSet<String> = globals.as_mapping().unwrap().keys().map(scalar).filter(library_option).collect();
    for function in ["SessionApiFunction", "SessionGcFunction"] {
        if let Some(own) = template["Resources"][function]["Properties"]["Environment"]["Variables"].as_mapping() {
            names.extend(own.keys().map(scalar).filter(library_option));
        }
        assert_eq!(
            template["Resources"][function]["Properties"]["Environment"]["Variables"]["TABLE_NAME"],
            Value::Null,
            "{function} overrides nothing the Globals set"
        );
    }
    let expected: BTreeSet<String> =
        ENV_VARS.iter().map(|s| s.to_string()).chain(["RUST_LOG".into(), "AWS_ENDPOINT_URL_DYNAMODB".into()]).collect();
    assert_eq!(names, expected, "template environment vs config::ENV_VARS");

    let defaults = Config::default().to_env();
    for (variable, default) in defaults {
        let value = &globals[variable];
        let parameter = reference(value).unwrap_or_else(|| panic!("{variable} is not a !Ref: {value:?}"));
        if variable == "TABLE_NAME" {
            assert_eq!(parameter, "SessionsTable", "the functions get the stack's own table");
            continue;
        }
        let declared = &template["Parameters"][parameter.as_str()];
        assert!(declared.is_mapping(), "{variable} refers to {parameter}, which is not a parameter");
        let template_default = declared.get("Default").map(scalar).unwrap_or_default();
        assert_eq!(template_default, default, "{parameter} (→ {variable}) default vs the library's");
    }
}

#[test]
fn every_option_of_product_md_is_a_variable_with_its_default() {
    let path = repo().join("../shared/PRODUCT.md");
    let product = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the team folder sits beside the checkout)", path.display()));
    let options = product.split("## Options").nth(1).expect("PRODUCT.md has an Options section");
    let defaults = Config::default().to_env();
    let mut seen = 0;
    for row in options.lines().take_while(|l| !l.starts_with("Beyond")).filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let option = cells[1].trim_matches('`');
        let variable = option.to_ascii_uppercase();
        let (_, ours) = defaults
            .iter()
            .find(|(v, _)| *v == variable)
            .unwrap_or_else(|| panic!("PRODUCT.md option {option} has no variable {variable}"));
        // PRODUCT.md writes "1440 s", "`sessions`", "10000 µs", "true".
        let theirs = cells[2].trim_matches('`').split_whitespace().next().unwrap_or("").trim_matches('`');
        assert_eq!(theirs, ours, "default of {option}");
        seen += 1;
    }
    assert_eq!(seen, 14, "the Options table lists the seed's 14 options");
}
