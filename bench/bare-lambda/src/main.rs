//! A bare Lambda function: GET /sessions/{id} reads one item with GetItem and
//! answers 200 or 404. No configuration, logging, locking or validation: the
//! floor that our functions' size and start-up are measured against.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{run, service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&shared);
    let table = std::env::var("TABLE_NAME").unwrap_or_else(|_| "sessions".into());
    let (client, table) = (&client, table.as_str());
    run(service_fn(move |request: Request| async move {
        let id = request.uri().path().rsplit('/').next().unwrap_or_default().to_string();
        let item = client
            .get_item()
            .table_name(table)
            .key("id", AttributeValue::S(format!("PHPSESSID_{id}")))
            .send()
            .await?
            .item;
        let status = if item.is_some() { 200 } else { 404 };
        Ok::<_, Error>(Response::builder().status(status).body(Body::Empty)?)
    }))
    .await
}
