//! The options must not drift apart between the code (declared once:
//! `Config::OPTIONS`, `HttpSettings::OPTIONS`, `CorsSettings::OPTIONS`), the
//! README's configuration table, and template.yaml (its parameters, the
//! functions' environment, and the HTTP API's CORS, which `sessions serve`
//! answers the same way). Everything compared lives in this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dynamodb_sessions::Config;
use serde_yaml::Value;
use session_api::cors::{self, AllowedOrigins, CorsSettings};
use session_api::HttpSettings;
use template_yaml::{repository_file, scalar, template};

#[path = "support/template_yaml.rs"]
mod template_yaml;

/// Every option's variable and default, as the environment writes it.
fn defaults() -> BTreeMap<&'static str, String> {
    let cors = CorsSettings::default().to_env();
    Config::default().to_env().into_iter().chain(HttpSettings::default().to_env()).chain(cors).collect()
}

/// Variables that are not options of ours but are documented and passed.
const OTHER_VARIABLES: [&str; 2] = ["RUST_LOG", "AWS_ENDPOINT_URL_DYNAMODB"];

/// The README's configuration table: variable -> default cell's value
/// (backticks and a trailing unit dropped; `none` is empty).
fn readme_table() -> BTreeMap<String, String> {
    let readme = repository_file("README.md");
    let section = readme.split("\n## Configuration").nth(1).expect("the README has a Configuration section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let variable = cells[1].trim_matches('`').to_string();
            let default = match cells[2] {
                "none" => String::new(),
                cell => cell.split('`').nth(1).unwrap_or(cell).to_string(),
            };
            (variable, default)
        })
        .collect()
}

#[test]
fn the_readme_documents_every_option_with_its_default() {
    let table = readme_table();
    for (variable, default) in defaults() {
        let documented = table.get(variable).unwrap_or_else(|| panic!("README: no row for {variable}"));
        assert_eq!(documented, &default, "README default of {variable}");
    }
    let known: BTreeSet<&str> = defaults().keys().copied().chain(OTHER_VARIABLES).collect();
    for variable in table.keys() {
        assert!(known.contains(variable.as_str()), "README documents {variable}, which is no option");
    }
}

/// `!Ref Name` as parsed: a tagged value.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_string),
        _ => None,
    }
}

/// How the template passes a variable: always (`!Ref P`), or only when the
/// parameter is not empty (`!If [HasP, !Ref P, !Ref AWS::NoValue]`), so that
/// the function derives the default.
enum Passed {
    Always(String),
    UnlessEmpty(String),
}

fn passed(variable: &str, value: &Value) -> Passed {
    if let Some(parameter) = reference(value) {
        return Passed::Always(parameter);
    }
    match value {
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let branches = tagged.value.as_sequence().expect("!If [condition, then, else]");
            let parameter = reference(&branches[1]).unwrap_or_else(|| panic!("{variable}: !If's then is no !Ref"));
            assert_eq!(reference(&branches[2]).as_deref(), Some("AWS::NoValue"), "{variable}: !If's else");
            Passed::UnlessEmpty(parameter)
        }
        other => panic!("{variable} is passed neither as !Ref nor !If: {other:?}"),
    }
}

fn environment(template: &Value, path: &[&str]) -> BTreeMap<String, Value> {
    let mut node = template;
    for key in path {
        node = &node[*key];
    }
    node["Environment"]["Variables"]
        .as_mapping()
        .map(|variables| variables.iter().map(|(k, v)| (scalar(k), v.clone())).collect())
        .unwrap_or_default()
}

#[test]
fn every_option_reaches_its_functions_with_our_default() {
    let template = template();
    let globals = environment(&template, &["Globals", "Function"]);
    let api = environment(&template, &["Resources", "SessionApiFunction", "Properties"]);
    let gc = environment(&template, &["Resources", "SessionGcFunction", "Properties"]);
    let library: BTreeSet<&str> = Config::OPTIONS.iter().map(|o| o.variable).collect();
    let http: BTreeSet<&str> = HttpSettings::OPTIONS.iter().map(|o| o.variable).collect();

    // The library's options reach both functions; the cookie's only the API.
    let global_names: BTreeSet<&str> = globals.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = library.iter().copied().chain(OTHER_VARIABLES).collect();
    assert_eq!(global_names, expected, "Globals environment vs Config::OPTIONS");
    let api_names: BTreeSet<&str> = api.keys().map(String::as_str).collect();
    assert_eq!(api_names, http, "SessionApiFunction's own environment vs HttpSettings::OPTIONS");
    assert!(gc.is_empty(), "the GC function adds nothing to the Globals: {gc:?}");
    // The example app sets the same cookie as the API, from the same parameters.
    let app = environment(&template, &["Resources", "ExampleAppFunction", "Properties"]);
    let cookie: BTreeSet<&str> = http.iter().copied().filter(|variable| variable.starts_with("COOKIE_")).collect();
    assert_eq!(app.keys().map(String::as_str).collect::<BTreeSet<_>>(), cookie, "ExampleAppFunction's environment");
    for (variable, value) in &app {
        assert_eq!(value, &api[variable], "{variable}: the example app's cookie is the API's");
    }

    let defaults = defaults();
    for (variable, value) in globals.iter().chain(api.iter()) {
        if OTHER_VARIABLES.contains(&variable.as_str()) {
            continue;
        }
        if variable == "TABLE_NAME" {
            assert_eq!(reference(value).as_deref(), Some("SessionsTable"), "the functions get the stack's own table");
            continue;
        }
        let (parameter, derived) = match passed(variable, value) {
            Passed::Always(parameter) => (parameter, false),
            Passed::UnlessEmpty(parameter) => (parameter, true),
        };
        let declared = &template["Parameters"][parameter.as_str()];
        assert!(declared.is_mapping(), "{variable} refers to {parameter}, which is not a parameter");
        let template_default = declared.get("Default").map(scalar).unwrap_or_default();
        if derived {
            // Not passed by default: the function's own (derived) default applies.
            assert_eq!(
                template_default, "",
                "{parameter} (→ {variable}) is passed only when set: its default is empty"
            );
        } else {
            assert_eq!(template_default, defaults[variable.as_str()], "{parameter} (→ {variable}) default vs ours");
        }
    }
}

/// A derived default is never passed by the template, so choosing one
/// option there can never make another's default invalid (a 2 s lifetime
/// with the touch interval left to its default starts).
#[test]
fn a_short_lifetime_alone_starts_with_the_templates_defaults() {
    let template = template();
    let globals = environment(&template, &["Globals", "Function"]);
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (variable, value) in &globals {
        if let Ok(Passed::Always(parameter)) = std::panic::catch_unwind(|| passed(variable, value)) {
            if let Some(default) = template["Parameters"][parameter.as_str()].get("Default") {
                env.insert(variable.clone(), scalar(default));
            }
        }
    }
    env.insert("TABLE_NAME".into(), "sessions".into());
    env.insert("SESSION_LIFETIME".into(), "2".into());
    env.remove("AWS_ENDPOINT_URL_DYNAMODB");
    let config = Config::from_lookup(|name| env.get(name).cloned()).expect("a 2 s lifetime starts");
    assert!(config.touch_interval < config.session_lifetime);
}

/// Every API request ends before the function's timeout (issue 21, item 3).
/// The longest path a request can take, summed from the options: a lock
/// wait of `MAX_LOCK_WAIT_TIME`, then up to three calls of
/// `DYNAMODB_OPERATION_TIMEOUT` each (the read, the write and the look at
/// whether it landed; or the lock, its binding and its release). At the
/// template's defaults that fits the function's timeout less the second held
/// back; past them, each request's time budget (the invocation's deadline
/// less that second) cuts the waits and calls, and only a release after a
/// failure runs on, within its grace.
#[test]
fn the_worst_case_of_a_request_fits_the_api_functions_timeout() {
    let template = template();
    let function_timeout = Duration::from_secs_f64(
        scalar(&template["Resources"]["SessionApiFunction"]["Properties"]["Timeout"]).parse().unwrap(),
    );
    let parameter = |name: &str, field: &str| -> Duration {
        Duration::from_secs_f64(scalar(&template["Parameters"][name][field]).parse().unwrap())
    };
    let worst_case = |wait: Duration, call: Duration| wait + 3 * call;
    let budget = function_timeout - session_api::layer::HELD_BACK;

    let at_defaults =
        worst_case(parameter("MaxLockWaitTime", "Default"), parameter("DynamoDbOperationTimeout", "Default"));
    assert!(at_defaults <= budget, "defaults: {at_defaults:?} of a {budget:?} budget: the budget would cut them");
    let defaults = Config::default();
    assert_eq!(worst_case(defaults.max_lock_wait_time, defaults.dynamodb_operation_timeout), at_defaults);

    let at_maxima =
        worst_case(parameter("MaxLockWaitTime", "MaxValue"), parameter("DynamoDbOperationTimeout", "MaxValue"));
    let bounded = at_maxima.min(budget) + dynamodb_sessions::budget::CLEANUP_GRACE;
    assert!(bounded < function_timeout, "at the maxima ({at_maxima:?}), cut by the budget: {bounded:?}");
}

/// A template list (`[a, b]`) as strings.
fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().unwrap_or_else(|| panic!("a list: {value:?}")).iter().map(scalar).collect()
}

#[test]
fn the_local_servers_cors_is_api_gateways() {
    let template = template();
    // `CorsConfiguration: !If [HasCorsOrigins, {...}, !Ref AWS::NoValue]`: off without origins, as locally.
    let Value::Tagged(configured) = &template["Resources"]["SessionHttpApi"]["Properties"]["CorsConfiguration"] else {
        panic!("CorsConfiguration is an !If")
    };
    assert_eq!(scalar(&configured.value[0]), "HasCorsOrigins");
    let gateway = &configured.value[1];
    assert_eq!(strings(&gateway["AllowMethods"]), cors::ALLOW_METHODS);
    assert_eq!(strings(&gateway["AllowHeaders"]), cors::ALLOW_HEADERS);
    assert_eq!(strings(&gateway["ExposeHeaders"]), cors::EXPOSE_HEADERS);
    assert_eq!(gateway["MaxAge"].as_u64(), Some(cors::MAX_AGE.as_secs()));
    // The origins and credentials come from the parameters, whose defaults are ours.
    let Value::Tagged(split) = &gateway["AllowOrigins"] else { panic!("AllowOrigins is a !Split") };
    assert_eq!(split.tag, "Split");
    assert_eq!(reference(&split.value[1]).as_deref(), Some("CorsAllowedOrigins"));
    let Value::Tagged(credentials) = &gateway["AllowCredentials"] else { panic!("AllowCredentials is an !If") };
    assert_eq!(scalar(&credentials.value[0]), "CorsCredentialsAllowed");
    let condition = serde_yaml::to_string(&template["Conditions"]["CorsCredentialsAllowed"]).unwrap();
    assert!(condition.contains("CorsAllowCredentials") && condition.contains("'true'"), "{condition}");
    let defaults = defaults();
    let parameter_default = |name: &str| scalar(&template["Parameters"][name]["Default"]);
    assert_eq!(parameter_default("CorsAllowedOrigins"), defaults["CORS_ALLOWED_ORIGINS"]);
    assert_eq!(parameter_default("CorsAllowCredentials"), defaults["CORS_ALLOW_CREDENTIALS"]);

    // The same origins are accepted: the parameter's pattern and ours agree.
    let pattern = scalar(&template["Parameters"]["CorsAllowedOrigins"]["AllowedPattern"]);
    let pattern = regex_lite::Regex::new(&pattern).expect("the parameter's pattern");
    for origins in [
        "",
        "*",
        "http://localhost:5173",
        "https://app.example.com,http://localhost:8080",
        "localhost:5173",
        "http://a.example, http://b.example",
        "http://",
        "http://a,",
        "ftp://a",
        "*,http://a",
    ] {
        let ours = origins.parse::<AllowedOrigins>();
        assert_eq!(ours.is_ok(), pattern.is_match(origins), "{origins:?}: ours {ours:?}");
    }
}
