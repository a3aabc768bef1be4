//! The HTTP API's options must not drift from template.yaml: each reaches
//! the functions' environment from a parameter whose default is ours.

use std::path::PathBuf;

use serde_yaml::Value;
use session_api::settings::ENV_VARS;
use session_api::HttpSettings;

fn template() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_http_option_reaches_the_api_with_our_default() {
    let template = template();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    let defaults = HttpSettings::default().to_env();
    assert_eq!(defaults.iter().map(|(name, _)| *name).collect::<Vec<_>>(), ENV_VARS);
    for (variable, default) in defaults {
        let parameter = match &globals[variable] {
            Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().unwrap().to_string(),
            other => panic!("{variable} is not a !Ref in the Globals: {other:?}"),
        };
        let declared = &template["Parameters"][parameter.as_str()];
        let template_default = match declared.get("Default") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            other => panic!("{parameter} has no scalar default: {other:?}"),
        };
        assert_eq!(template_default, default, "{parameter} (→ {variable}) default vs HttpSettings::default()");
    }
}
