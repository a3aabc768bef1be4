//! The API's contract: an OpenAPI 3.1 document (`openapi.json` beside this
//! crate's manifest) of every route, method, parameter, header, status and
//! error code the [`router`](crate::router) answers. Written by hand and
//! held to the router by `tests/openapi.rs`; checked against the running
//! service by Schemathesis in the test command. `sessions serve` serves it at
//! [`PATH`]. Nothing on Lambda uses it, so the bootstrap does not carry it.

use serde_json::Value;

/// The document as written: the session cookie named `PHPSESSID` (the
/// default `SESSION_NAME`).
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// Where `sessions serve` serves it.
pub const PATH: &str = "/openapi.json";

const DEFAULT_COOKIE: &str = "PHPSESSID";

/// The document for a service whose session cookie is `cookie_name`: the
/// cookie parameters and the links that set the cookie carry that name.
pub fn document(cookie_name: &str) -> Value {
    let mut document: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON (tests/openapi.rs)");
    let parameters = document["components"]["parameters"].as_object_mut().expect("parameters");
    for parameter in parameters.values_mut().filter(|parameter| parameter["in"] == "cookie") {
        parameter["name"] = cookie_name.into();
    }
    rename_link_cookie(&mut document["paths"], &format!("cookie.{DEFAULT_COOKIE}"), &format!("cookie.{cookie_name}"));
    document
}

/// Renames the `cookie.<name>` parameter of every link under `value`.
fn rename_link_cookie(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            if let Some(parameters) = map.get_mut("parameters").and_then(Value::as_object_mut) {
                if let Some(expression) = parameters.remove(from) {
                    parameters.insert(to.to_string(), expression);
                }
            }
            map.values_mut().for_each(|child| rename_link_cookie(child, from, to));
        }
        Value::Array(items) => items.iter_mut().for_each(|child| rename_link_cookie(child, from, to)),
        _ => {}
    }
}
