//! template.yaml as the tests read it (included by the tests that do).

use std::path::PathBuf;

use serde_yaml::Value;

/// A file of the repository, by its path from the root.
pub fn repository_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// template.yaml, parsed (intrinsics as tagged values).
pub fn template() -> Value {
    serde_yaml::from_str(&repository_file("template.yaml")).expect("template.yaml is YAML")
}

/// A scalar's text.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}
