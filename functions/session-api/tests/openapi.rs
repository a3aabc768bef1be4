//! The OpenAPI document (`openapi.json`) held to the code: the same routes
//! and methods as the router, the same error codes (each under the status
//! the code answers it with), and the cookie named as the server's settings
//! name it. What the service answers is checked against the document by
//! Schemathesis in the test command (`scripts/schemathesis`).

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use serde_json::Value;
use session_api::openapi;

fn document() -> Value {
    serde_json::from_str(openapi::DOCUMENT).expect("openapi.json is JSON")
}

fn source(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Each `.route("<path>", get(..).put(..))` of `routes.rs`: its path and
/// methods, as the router serves them (GET also serves HEAD). `OPTIONS`,
/// which every route answers alike and which reads no session, is in the
/// document's description, not an operation of each path.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let routes = source("src/routes.rs");
    let mut found = BTreeMap::new();
    for line in routes.lines().map(str::trim).filter(|line| line.starts_with(".route(\"")) {
        let rest = &line[".route(\"".len()..];
        let (path, handlers) = rest.split_once('"').expect("a quoted path");
        let mut methods = BTreeSet::new();
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = handlers.contains(&format!(" {method}(")) || handlers.contains(&format!(".{method}("));
            if called {
                methods.insert(method.to_string());
                if method == "get" {
                    methods.insert("head".to_string());
                }
            }
        }
        found.insert(path.to_string(), methods);
    }
    assert!(found.len() >= 7, "routes.rs changed shape: {found:?}");
    found
}

#[test]
fn the_document_has_the_routers_routes_and_methods() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["info"]["description"].as_str().unwrap().contains("`OPTIONS` on every route answers 204"));
    let documented: BTreeMap<String, BTreeSet<String>> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| (path.clone(), item.as_object().unwrap().keys().cloned().collect()))
        .collect();
    assert_eq!(documented, router_routes());
}

/// Each `(StatusCode::NAME, "code")` the code answers, as (status, code).
fn answered_codes() -> BTreeSet<(u16, String)> {
    let by_name: BTreeMap<String, u16> = (100..600)
        .filter_map(|code| StatusCode::from_u16(code).ok())
        .filter_map(|status| {
            let reason = status.canonical_reason()?;
            Some((reason.to_ascii_uppercase().replace([' ', '-'], "_"), status.as_u16()))
        })
        .collect();
    let mut answered = BTreeSet::new();
    for file in ["src/error.rs", "../../layer/src/http_error.rs"] {
        for piece in source(file).split("(StatusCode::").skip(1) {
            let Some((name, rest)) = piece.split_once(", \"") else { continue };
            let code = rest.split('"').next().unwrap();
            let status = *by_name.get(name).unwrap_or_else(|| panic!("{file}: StatusCode::{name}"));
            answered.insert((status, code.to_string()));
        }
    }
    assert!(answered.len() >= 20, "error.rs or http_error.rs changed shape: {answered:?}");
    answered
}

#[test]
fn every_error_code_the_code_answers_is_documented_under_its_status() {
    let document = document();
    let enumerated: BTreeSet<String> = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
        ["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_string())
        .collect();
    let answered = answered_codes();
    let codes: BTreeSet<String> = answered.iter().map(|(_, code)| code.clone()).collect();
    assert_eq!(enumerated, codes, "the Error schema's codes");

    // Each code is named by the shared response of its status, and every
    // operation that lists that status uses that response.
    let responses = &document["components"]["responses"];
    let by_status: BTreeMap<u16, &str> = responses
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, response)| {
            response["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
        })
        .map(|(name, response)| {
            let status = response["description"].as_str().unwrap();
            (error_status(&document, name), status)
        })
        .collect();
    for (status, code) in &answered {
        if matches!(code.as_str(), "no_route" | "method_not_allowed") {
            continue; // answered where no operation is: an unknown route or method
        }
        let description = by_status.get(status).unwrap_or_else(|| panic!("no shared response for {status}"));
        assert!(description.contains(&format!("`{code}`")), "{status} {code}: {description}");
    }
}

/// The status a shared error response is used under (the same everywhere).
fn error_status(document: &Value, name: &str) -> u16 {
    let target = format!("#/components/responses/{name}");
    let mut statuses = BTreeSet::new();
    for item in document["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if response["$ref"] == target.as_str() {
                    statuses.insert(status.parse::<u16>().unwrap());
                }
            }
        }
    }
    assert_eq!(statuses.len(), 1, "{name} is used under {statuses:?}");
    statuses.into_iter().next().unwrap()
}

#[test]
fn retry_after_is_documented_where_the_code_sends_it() {
    let document = document();
    for (name, response) in document["components"]["responses"].as_object().unwrap() {
        if response["content"]["application/json"]["schema"]["$ref"] != "#/components/schemas/Error" {
            continue;
        }
        let status = error_status(&document, name);
        let sends = StatusCode::from_u16(status).unwrap();
        let sends = dynamodb_sessions_axum::http_error::error_response(sends, Value::Null)
            .headers()
            .contains_key("retry-after");
        assert_eq!(response["headers"].get("Retry-After").is_some(), sends, "{name} ({status})");
    }
}

#[test]
fn the_served_document_names_the_servers_cookie() {
    let served = openapi::document("__Host-SID").to_string();
    assert!(!served.contains("cookie.PHPSESSID") && !served.contains("\"name\":\"PHPSESSID\""), "{served}");
    assert!(served.contains("\"cookie.__Host-SID\":\"$response.body#/id\""));
    let document = openapi::document("__Host-SID");
    assert_eq!(document["components"]["parameters"]["SessionCookie"]["name"], "__Host-SID");
    assert_eq!(document["components"]["parameters"]["AnySessionCookie"]["name"], "__Host-SID");
    assert_eq!(openapi::document("PHPSESSID"), self::document());
}
