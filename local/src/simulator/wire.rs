//! DynamoDB's answers on the wire (JSON 1.0 protocol): the errors the
//! simulator makes up, and the headers every answer carries.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// The body type of every answer the simulator gives.
pub(crate) type Body = Full<Bytes>;

const JSON_1_0: &str = "application/x-amz-json-1.0";

/// The errors the simulator answers with, as DynamoDB words them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DynamoError {
    ProvisionedThroughputExceeded,
    Throttling,
    InternalServerError,
    ServiceUnavailable,
}

impl DynamoError {
    fn status(self) -> StatusCode {
        match self {
            DynamoError::ProvisionedThroughputExceeded | DynamoError::Throttling => StatusCode::BAD_REQUEST,
            DynamoError::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            DynamoError::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `__type`: a namespace, `#`, and the code the SDK reports.
    fn error_type(self) -> &'static str {
        match self {
            DynamoError::ProvisionedThroughputExceeded => {
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
            }
            DynamoError::Throttling => "com.amazon.coral.availability#ThrottlingException",
            DynamoError::InternalServerError => "com.amazonaws.dynamodb.v20120810#InternalServerError",
            DynamoError::ServiceUnavailable => "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
        }
    }

    fn message(self) -> &'static str {
        match self {
            DynamoError::ProvisionedThroughputExceeded => PROVISIONED_THROUGHPUT_EXCEEDED,
            DynamoError::Throttling => "Rate of requests exceeds the allowed throughput.",
            DynamoError::InternalServerError => "Internal server error",
            DynamoError::ServiceUnavailable => "The service is currently unavailable or busy.",
        }
    }

    pub(crate) fn response(self, request_id: &str) -> Response<Body> {
        error_response(self.status(), self.error_type(), json!({"message": self.message()}), request_id)
    }
}

const PROVISIONED_THROUGHPUT_EXCEEDED: &str = "The level of configured provisioned throughput for the table was \
     exceeded. Consider increasing your provisioning level with the UpdateTable API.";

/// A transaction DynamoDB cancels for lack of capacity: `TransactionCanceledException`
/// with one reason per action, `ProvisionedThroughputExceeded` on the throttled
/// tables, `None` elsewhere. (The SDK does not retry it.)
pub(crate) fn transaction_throttled(
    action_tables: &[String],
    throttled: &[String],
    request_id: &str,
) -> Response<Body> {
    let reasons: Vec<Value> = action_tables
        .iter()
        .map(|table| {
            if throttled.contains(table) {
                json!({"Code": "ProvisionedThroughputExceeded", "Message": PROVISIONED_THROUGHPUT_EXCEEDED})
            } else {
                json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = reasons.iter().map(|r| r["Code"].as_str().unwrap_or("None")).collect();
    let message =
        format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", "));
    error_response(
        StatusCode::BAD_REQUEST,
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        // DynamoDB spells this one `Message`.
        json!({"Message": message, "CancellationReasons": reasons}),
        request_id,
    )
}

/// The upstream could not be reached: a 502 the SDK treats as transient.
pub(crate) fn upstream_unreachable(detail: &str, request_id: &str) -> Response<Body> {
    error_response(
        StatusCode::BAD_GATEWAY,
        "com.amazonaws.dynamodb.v20120810#InternalServerError",
        json!({"message": format!("DynamoDB simulator: the upstream did not answer: {detail}")}),
        request_id,
    )
}

fn error_response(status: StatusCode, error_type: &str, mut fields: Value, request_id: &str) -> Response<Body> {
    fields["__type"] = Value::from(error_type);
    let mut response = json_response(status, fields.to_string().into(), request_id);
    response.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_str(error_type).expect("ASCII"));
    response
}

/// A JSON answer with DynamoDB's headers: content type, request id, body CRC32.
pub(crate) fn json_response(status: StatusCode, body: Bytes, request_id: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(body.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_1_0));
    headers.insert("x-amzn-RequestId", HeaderValue::from_str(request_id).expect("ASCII"));
    headers.insert("x-amz-crc32", crc32(&body));
    response
}

/// DynamoDB's `x-amz-crc32`: the CRC32 of the body, in decimal.
pub(crate) fn crc32(body: &[u8]) -> HeaderValue {
    HeaderValue::from(crc32fast::hash(body))
}
