//! The stack's exposure, read from template.yaml (issue 22): API Gateway
//! throttles every route, the API function's concurrency can be reserved,
//! the data routes take the authorizer `ApiAuthorizer` names while the
//! cookie routes stay open, and each role reaches only its own items,
//! whatever `SessionName` is.
//!
//! The routes and the IAM conditions are CloudFormation expressions (`!If`,
//! `!Join`, `!Split`, `!Ref`, ...): they are evaluated here for each
//! parameter value, as CloudFormation would. The key patterns they give are
//! matched against the keys the store really writes (`Config::item_key`),
//! the GC checkpoint and another application's keys.

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
            "Sub" => {
                let mut text = scalar(args);
                while let Some(start) = text.find("${") {
                    let end = start + text[start..].find('}').expect("a closed ${");
                    let name = &text[start + 2..end];
                    let value = self.parameters.get(name).cloned().unwrap_or_else(|| format!("<{name}>"));
                    text.replace_range(start..=end, &value);
                }
                Value::String(text)
            }
            "Condition" => Value::Bool(self.condition(&scalar(args))),
            "And" => Value::Bool(args.as_sequence().unwrap().iter().all(|c| self.truth(c))),
            "Contains" => {
                let parts = args.as_sequence().unwrap();
                let wanted = self.eval(&parts[1]);
                Value::Bool(self.eval(&parts[0]).as_sequence().unwrap().contains(&wanted))
            }
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

    /// A resource's properties, evaluated; `None` when its condition leaves
    /// it out of the stack.
    fn resource(&self, name: &str) -> Option<Value> {
        let resource = self.template["Resources"].get(name).unwrap_or_else(|| panic!("no resource {name}"));
        let deployed = resource.get("Condition").is_none_or(|condition| self.condition(&scalar(condition)));
        deployed.then(|| self.eval(&resource["Properties"]))
    }

    /// The deployed resources of a type, by name, their properties evaluated.
    fn resources_of_type(&self, kind: &str) -> BTreeMap<String, Value> {
        let resources = self.template["Resources"].as_mapping().unwrap();
        resources
            .iter()
            .filter(|(_, resource)| resource["Type"] == *kind)
            .filter_map(|(name, _)| Some((scalar(name), self.resource(&scalar(name))?)))
            .collect()
    }

    /// The rules whose assertions these parameter values break.
    fn broken_rules(&self) -> Vec<String> {
        let rules = self.template["Rules"].as_mapping().unwrap();
        rules
            .iter()
            .filter(|(_, rule)| rule.get("RuleCondition").is_none_or(|c| self.truth(c)))
            .filter(|(_, rule)| !rule["Assertions"].as_sequence().unwrap().iter().all(|a| self.truth(&a["Assert"])))
            .map(|(name, _)| scalar(name))
            .collect()
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
    let stage = defaults.resource("SessionHttpApiStage").unwrap();
    assert_eq!(scalar(&stage["StageName"]), "$default");
    let routes = &stage["DefaultRouteSettings"];
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

/// The routes the API function serves (its router): four data routes, three
/// cookie routes.
const DATA_PATHS: [&str; 4] = ["/sessions", "/sessions/{id}", "/sessions/{id}/regenerate", "/sessions/{id}/lock"];
const COOKIE_PATHS: [&str; 3] = ["/session", "/session/regenerate", "/session/lock"];
const NO_VALUE: &str = "<AWS::NoValue>";

#[test]
fn the_data_routes_take_the_authorizer_and_the_cookie_routes_stay_open() {
    let template = template();
    for authorizer in ["NONE", "AWS_IAM", "JWT"] {
        for origins in ["", "https://app.example.com"] {
            let case = format!("ApiAuthorizer={authorizer} CorsAllowedOrigins={origins:?}");
            let overrides = [
                ("ApiAuthorizer", authorizer),
                ("ApiJwtIssuer", "https://issuer.example.com/pool"),
                ("ApiJwtAudience", "web,cli"),
                ("CorsAllowedOrigins", origins),
            ];
            let stack = Stack { template: &template, parameters: parameters(&template, &overrides) };
            assert_eq!(stack.broken_rules(), Vec::<String>::new(), "{case}");

            // Route key → (authorization type, authorizer); every route goes
            // to the API function.
            let routes: BTreeMap<String, (String, String)> = stack
                .resources_of_type("AWS::ApiGatewayV2::Route")
                .into_values()
                .map(|route| {
                    assert_eq!(scalar(&route["Target"]), "integrations/<SessionApiIntegration>", "{case}");
                    let authorizer_id = route.get("AuthorizerId").map(scalar).unwrap_or(NO_VALUE.into());
                    (scalar(&route["RouteKey"]), (scalar(&route["AuthorizationType"]), authorizer_id))
                })
                .collect();
            let jwt = if authorizer == "JWT" { "<SessionJwtAuthorizer>" } else { NO_VALUE };
            let open = ("NONE".to_string(), NO_VALUE.to_string());
            let mut expected = BTreeMap::new();
            for path in DATA_PATHS {
                expected.insert(format!("ANY {path}"), (authorizer.to_string(), jwt.to_string()));
                // A browser's preflight carries no credentials: with CORS on,
                // it must not meet the authorizer (the function answers 204).
                if authorizer != "NONE" && !origins.is_empty() {
                    expected.insert(format!("OPTIONS {path}"), open.clone());
                }
            }
            for path in COOKIE_PATHS {
                expected.insert(format!("ANY {path}"), open.clone());
            }
            assert_eq!(routes, expected, "{case}");

            let jwt_authorizer = stack.resource("SessionJwtAuthorizer");
            assert_eq!(jwt_authorizer.is_some(), authorizer == "JWT", "{case}");
            if let Some(jwt_authorizer) = jwt_authorizer {
                assert_eq!(scalar(&jwt_authorizer["AuthorizerType"]), "JWT");
                assert_eq!(jwt_authorizer["IdentitySource"][0], "$request.header.Authorization");
                let jwt = &jwt_authorizer["JwtConfiguration"];
                assert_eq!(scalar(&jwt["Issuer"]), "https://issuer.example.com/pool");
                assert_eq!(jwt["Audience"], serde_yaml::from_str::<Value>("[web, cli]").unwrap());
            }
        }
    }

    // Every route reaches the API function, and only through this API.
    let stack = Stack { template: &template, parameters: parameters(&template, &[]) };
    let integration = stack.resource("SessionApiIntegration").unwrap();
    assert_eq!(
        (scalar(&integration["IntegrationType"]), scalar(&integration["IntegrationUri"])),
        ("AWS_PROXY".into(), "<SessionApiFunction.Arn>".into())
    );
    assert_eq!(scalar(&integration["PayloadFormatVersion"]), "2.0");
    let permission = stack.resource("SessionApiInvokePermission").unwrap();
    assert_eq!(scalar(&permission["FunctionName"]), "<SessionApiFunction>");
    assert!(scalar(&permission["SourceArn"]).ends_with(":<SessionHttpApi>/*"));
}

#[test]
fn a_jwt_authorizer_without_issuer_or_audience_is_refused_at_deploy() {
    let template = template();
    for (issuer, audience) in [("", "web"), ("https://issuer.example.com", "")] {
        let overrides = [("ApiAuthorizer", "JWT"), ("ApiJwtIssuer", issuer), ("ApiJwtAudience", audience)];
        let stack = Stack { template: &template, parameters: parameters(&template, &overrides) };
        assert_eq!(stack.broken_rules(), ["JwtAuthorizerNeedsIssuerAndAudience"], "{overrides:?}");
    }
}

#[test]
fn the_example_app_is_in_the_stack_only_when_enabled_and_reaches_only_sessions() {
    let template = template();
    let app_resources = [
        "ExampleAppFunction",
        "ExampleAppIntegration",
        "ExampleAppInvokePermission",
        "ExampleAppRoute",
        "ExampleAppPagesRoute",
        "ExampleAppLogGroup",
    ];
    let disabled = Stack { template: &template, parameters: parameters(&template, &[]) };
    for name in app_resources {
        assert!(disabled.resource(name).is_none(), "{name} is deployed only with ExampleApp=Enabled");
    }

    let enabled = Stack { template: &template, parameters: parameters(&template, &[("ExampleApp", "Enabled")]) };
    let routes: BTreeMap<String, (String, String)> = enabled
        .resources_of_type("AWS::ApiGatewayV2::Route")
        .into_values()
        .filter(|route| scalar(&route["Target"]) == "integrations/<ExampleAppIntegration>")
        .map(|route| (scalar(&route["RouteKey"]), (scalar(&route["AuthorizationType"]), scalar(&route["ApiId"]))))
        .collect();
    let open_on_the_api = ("NONE".to_string(), "<SessionHttpApi>".to_string());
    let expected =
        BTreeMap::from([("ANY /app".into(), open_on_the_api.clone()), ("ANY /app/{page+}".into(), open_on_the_api)]);
    assert_eq!(routes, expected, "its own path prefix on the stack's HTTP API");
    let integration = enabled.resource("ExampleAppIntegration").unwrap();
    assert_eq!(scalar(&integration["IntegrationUri"]), "<ExampleAppFunction.Arn>");
    let permission = enabled.resource("ExampleAppInvokePermission").unwrap();
    assert_eq!(scalar(&permission["FunctionName"]), "<ExampleAppFunction>");

    for session_name in ["PHPSESSID", "__Host-PHPSESSID", ""] {
        let overrides = [("ExampleApp", "Enabled"), ("SessionName", session_name)];
        let stack = Stack { template: &template, parameters: parameters(&template, &overrides) };
        let config = Config::builder().session_name(session_name).build().unwrap();
        let session_key = config.item_key(SessionId::generate().as_str());
        let statements = stack.statements("ExampleAppFunction");
        assert_eq!(statements.len(), 1, "session items only");
        let items = statement(&statements, "SessionItems");
        assert!(allows_key(items, &session_key), "SessionName={session_name:?}: its sessions");
        assert!(!allows_key(items, CHECKPOINT_KEY), "never the GC checkpoint");
        let actions: Vec<String> = items["Action"].as_sequence().unwrap().iter().map(scalar).collect();
        assert!(!actions.iter().any(|action| action.ends_with("Scan")), "no Scan: {actions:?}");
    }
}

/// `value` is `!Ref <parameter>`.
fn is_ref(value: &Value, parameter: &str) -> bool {
    matches!(value, Value::Tagged(tagged) if tagged.tag == "Ref" && scalar(&tagged.value) == parameter)
}

#[test]
fn the_alarms_and_the_dashboard_read_only_metrics_the_code_emits() {
    use dynamodb_sessions::metrics::{METRIC_NAMES, OTHER_CAUSE};
    use dynamodb_sessions_axum::http_error::UnavailableCause;
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    // The functions write their metrics where the alarms and the dashboard read them.
    assert!(is_ref(
        &template["Globals"]["Function"]["Environment"]["Variables"]["METRICS_NAMESPACE"],
        "MetricsNamespace"
    ));

    let mut on_ours = Vec::new();
    for (name, resource) in resources {
        let properties = &resource["Properties"];
        if resource["Type"] == "AWS::CloudWatch::Alarm" && is_ref(&properties["Namespace"], "MetricsNamespace") {
            let metric = scalar(&properties["MetricName"]);
            assert!(METRIC_NAMES.contains(&metric.as_str()), "{}: {metric} is not emitted", scalar(name));
            on_ours.push(metric);
        }
    }
    on_ours.sort();
    assert_eq!(
        on_ours,
        ["DynamoDbThrottles", "SweepFinished", "Unavailable"],
        "throttles, the 503 rate, unfinished sweeps"
    );

    // The dashboard's body: `!Sub [json, {Namespace: !Ref MetricsNamespace, ...}]`.
    let Value::Tagged(sub) = &template["Resources"]["SessionsDashboard"]["Properties"]["DashboardBody"] else {
        panic!("the dashboard body is a !Sub")
    };
    let body = scalar(&sub.value[0]);
    assert!(is_ref(&sub.value[1]["Namespace"], "MetricsNamespace"));
    let body = body.replace("${Namespace}", "OURS");
    let body: serde_json::Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
    let causes: Vec<&str> = UnavailableCause::ALL.into_iter().chain([OTHER_CAUSE]).collect();
    let mut shown = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        let (mut namespace, mut metric) = (String::new(), String::new());
        let mut dimensions: Vec<String> = Vec::new();
        for row in widget["properties"]["metrics"].as_array().unwrap() {
            if let Some(expression) = row[0]["expression"].as_str() {
                // A search: only our dimension sets, and metrics we emit.
                let expression = expression.replace("{OURS,Route,StatusClass}", "");
                assert!(!expression.contains('{'), "a search in another dimension set: {expression}");
                let searched = expression.split("MetricName=\"").nth(1).and_then(|rest| rest.split('"').next());
                assert_eq!(searched, Some("Requests"), "{expression}");
                continue;
            }
            let row: Vec<&str> = row.as_array().unwrap().iter().filter_map(|part| part.as_str()).collect();
            if row.first() == Some(&"...") {
                continue; // the row above again, with another statistic
            }
            // "." repeats the row above's part at that place.
            let part = |at: usize, above: &str| if row[at] == "." { above.to_string() } else { row[at].to_string() };
            namespace = part(0, &namespace);
            metric = part(1, &metric);
            dimensions = (2..row.len()).map(|at| part(at, dimensions.get(at - 2).map_or("", String::as_str))).collect();
            if namespace == "OURS" {
                assert!(METRIC_NAMES.contains(&metric.as_str()), "the dashboard shows {metric}, which is not emitted");
                // The one dimension a row of ours names: a 503's Cause.
                if let [name, value] = dimensions.as_slice() {
                    assert_eq!((name.as_str(), metric.as_str()), ("Cause", "Unavailable"));
                    assert!(causes.contains(&value.as_str()), "no 503 has the cause {value}");
                } else {
                    assert!(dimensions.is_empty(), "{metric} by {dimensions:?}");
                }
                shown.push(metric.clone());
            }
        }
    }
    for cause in &causes {
        assert!(body.to_string().contains(&format!("\"{cause}\"")), "the dashboard shows 503s caused {cause}");
    }
    for alarmed in on_ours {
        assert!(shown.contains(&alarmed), "the dashboard shows what the alarms watch: {alarmed}");
    }
}

#[test]
fn tracing_is_a_parameter_of_every_function() {
    let template = template();
    assert!(is_ref(&template["Globals"]["Function"]["Tracing"], "Tracing"));
    let parameters = parameters(&template, &[]);
    assert_eq!(parameters["Tracing"], "PassThrough", "X-Ray bills traces: off unless asked");
}
