//! The stack's exposure, read from template.yaml (issue 22): API Gateway
//! throttles every route, the API function's concurrency can be reserved,
//! and each role reaches only its own items, whatever `SessionName` is.
//!
//! The IAM conditions are CloudFormation expressions (`!If`, `!Join`,
//! `!Split`, `!Ref`): they are evaluated here for each parameter value, as
//! CloudFormation would, and the key patterns they give are matched against
//! the keys the store really writes (`Config::item_key`), the GC checkpoint
//! and another application's keys.

use std::collections::BTreeMap;

use dynamodb_sessions::gc::CHECKPOINT_KEY;
use dynamodb_sessions::{Config, SessionId};
use serde_yaml::Value;
use template_yaml::{scalar, template};

#[path = "support/template_yaml.rs"]
mod template_yaml;

/// A stack's parameter values: the template's defaults, with `overrides`.
fn parameters(template: &Value, overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = template["Parameters"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, declared)| (scalar(name), declared.get("Default").map(scalar).unwrap_or_default()))
        .collect();
    for (name, value) in overrides {
        assert!(values.contains_key(*name), "no parameter {name}");
        values.insert(name.to_string(), value.to_string());
    }
    values
}

/// Evaluates the intrinsic functions the template's conditions and policies
/// use, for `parameters`.
struct Stack<'a> {
    template: &'a Value,
    parameters: BTreeMap<String, String>,
}

impl Stack<'_> {
    fn eval(&self, value: &Value) -> Value {
        let Value::Tagged(tagged) = value else {
            return match value {
                Value::Sequence(items) => Value::Sequence(items.iter().map(|v| self.eval(v)).collect()),
                Value::Mapping(map) => Value::Mapping(map.iter().map(|(k, v)| (k.clone(), self.eval(v))).collect()),
                other => other.clone(),
            };
        };
        let args = &tagged.value;
        match tagged.tag.to_string().trim_start_matches('!') {
            "Ref" => {
                let name = scalar(args);
                match self.parameters.get(&name) {
                    Some(value) => Value::String(value.clone()),
                    None => Value::String(format!("<{name}>")),
                }
            }
            "GetAtt" => Value::String(format!("<{}>", scalar(args))),
            "If" => {
                let branches = args.as_sequence().unwrap();
                let chosen = if self.condition(&scalar(&branches[0])) { &branches[1] } else { &branches[2] };
                self.eval(chosen)
            }
            "Join" => {
                let parts = args.as_sequence().unwrap();
                let items = self.eval(&parts[1]);
                let items: Vec<String> = items.as_sequence().unwrap().iter().map(scalar).collect();
                Value::String(items.join(&scalar(&parts[0])))
            }
            "Split" => {
                let parts = args.as_sequence().unwrap();
                let text = scalar(&self.eval(&parts[1]));
                Value::Sequence(text.split(scalar(&parts[0]).as_str()).map(|s| Value::String(s.into())).collect())
            }
            "Equals" => {
                let sides = args.as_sequence().unwrap();
                Value::Bool(self.eval(&sides[0]) == self.eval(&sides[1]))
            }
            "Not" => Value::Bool(!self.truth(&args.as_sequence().unwrap()[0])),
            other => panic!("intrinsic {other} is not evaluated here"),
        }
    }

    fn truth(&self, value: &Value) -> bool {
        match self.eval(value) {
            Value::Bool(b) => b,
            other => panic!("not a condition: {other:?}"),
        }
    }

    fn condition(&self, name: &str) -> bool {
        self.truth(&self.template["Conditions"][name])
    }

    /// The statements of a function's inline policy, evaluated.
    fn statements(&self, function: &str) -> Vec<Value> {
        let policies = &self.template["Resources"][function]["Properties"]["Policies"];
        let statements = self.eval(&policies[0]["Statement"]);
        statements.as_sequence().unwrap().clone()
    }
}

fn statement<'a>(statements: &'a [Value], sid: &str) -> &'a Value {
    statements.iter().find(|s| s["Sid"] == *sid).unwrap_or_else(|| panic!("no statement {sid}"))
}

/// IAM's `StringLike`: `*` any run, `?` one character.
fn like(pattern: &str, text: &str) -> bool {
    match pattern.chars().next() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).filter(|i| text.is_char_boundary(*i)).any(|i| like(&pattern[1..], &text[i..])),
        Some(p) => {
            text.chars().next().is_some_and(|t| (p == '?' || p == t) && like(&pattern[1..], &text[t.len_utf8()..]))
        }
    }
}

/// Whether a statement's condition lets a request on `key` through.
fn allows_key(statement: &Value, key: &str) -> bool {
    let Some(condition) = statement.get("Condition") else { return true };
    let (operator, tests) = condition.as_mapping().unwrap().iter().next().unwrap();
    let patterns: Vec<String> =
        tests["dynamodb:LeadingKeys"].as_sequence().expect("a LeadingKeys list").iter().map(scalar).collect();
    match scalar(operator).as_str() {
        "ForAllValues:StringLike" => patterns.iter().any(|p| like(p, key)),
        "ForAllValues:StringNotLike" => !patterns.iter().any(|p| like(p, key)),
        "ForAllValues:StringEquals" => patterns.iter().any(|p| p == key),
        other => panic!("operator {other} is not evaluated here"),
    }
}

#[test]
fn each_role_reaches_only_its_own_items_whatever_the_session_name() {
    let template = template();
    for session_name in ["PHPSESSID", "__Host-PHPSESSID", "__Secure-app.sid", "my_app_", ""] {
        let stack = Stack { template: &template, parameters: parameters(&template, &[("SessionName", session_name)]) };
        let config = Config::builder().session_name(session_name).build().expect("a valid session name");
        let session_key = config.item_key(SessionId::generate().as_str());
        let other_app = format!("OTHERAPP_{}", SessionId::generate());
        let case = format!("SessionName={session_name:?}");

        let api = stack.statements("SessionApiFunction");
        let api_items = statement(&api, "SessionItems");
        assert!(allows_key(api_items, &session_key), "{case}: the API reaches its sessions ({session_key})");
        assert!(!allows_key(api_items, CHECKPOINT_KEY), "{case}: the API never reaches the GC checkpoint");
        if !session_name.is_empty() {
            assert!(!allows_key(api_items, &other_app), "{case}: nor another application's keys");
        }

        let gc = stack.statements("SessionGcFunction");
        let checkpoint = statement(&gc, "Checkpoint");
        assert!(allows_key(checkpoint, CHECKPOINT_KEY));
        assert!(!allows_key(checkpoint, &session_key), "{case}: GetItem/UpdateItem of the checkpoint only");
        let gc_items = statement(&gc, "SessionItems");
        assert!(allows_key(gc_items, &session_key), "{case}: the GC deletes sessions and ends their leases");
        assert!(!allows_key(gc_items, CHECKPOINT_KEY), "{case}: never deletes the checkpoint");
        let actions: Vec<String> = gc_items["Action"].as_sequence().unwrap().iter().map(scalar).collect();
        assert_eq!(actions, ["dynamodb:DeleteItem", "dynamodb:UpdateItem"]);
        let scan = statement(&gc, "ScanTheTable");
        assert!(scan.get("Condition").is_none());
        let actions: Vec<String> = scan["Action"].as_sequence().unwrap().iter().map(scalar).collect();
        assert_eq!(actions, ["dynamodb:Scan", "dynamodb:DescribeTable"], "no item writes without a key condition");
    }
}

#[test]
fn the_api_is_throttled_and_its_concurrency_can_be_reserved() {
    let template = template();
    let defaults = Stack { template: &template, parameters: parameters(&template, &[]) };
    let api = &template["Resources"]["SessionHttpApi"]["Properties"];
    let routes = defaults.eval(&api["DefaultRouteSettings"]);
    let rate: f64 = scalar(&routes["ThrottlingRateLimit"]).parse().unwrap();
    let burst: f64 = scalar(&routes["ThrottlingBurstLimit"]).parse().unwrap();
    // A session request costs about one read and at most one write unit:
    // the defaults stay within the 5/5 table the template declares.
    let table = &template["Parameters"];
    let reads: f64 = scalar(&table["ReadCapacity"]["Default"]).parse().unwrap();
    let writes: f64 = scalar(&table["WriteCapacity"]["Default"]).parse().unwrap();
    assert!(rate <= reads.min(writes), "rate {rate} over the table's {reads}/{writes}");
    assert!(burst >= rate, "a burst of {burst} under the rate {rate}");

    let function = &template["Resources"]["SessionApiFunction"]["Properties"];
    let reserved = |value: &str| {
        let stack =
            Stack { template: &template, parameters: parameters(&template, &[("ApiReservedConcurrency", value)]) };
        stack.eval(&function["ReservedConcurrentExecutions"])
    };
    assert_eq!(reserved(""), Value::String("<AWS::NoValue>".into()), "none reserved by default");
    assert_eq!(reserved("20"), Value::String("20".into()));
}
