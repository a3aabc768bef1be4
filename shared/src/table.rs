//! Creating the sessions table, as the PHP handler's `createSessionsTable`.

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use crate::config::Config;
use crate::error::{BoxError, SessionError};

/// How long to wait for a new table to become ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableCreation {
    Created,
    AlreadyExisted,
}

/// Creates the table with `read`/`write` provisioned capacity units, blocks
/// until it is ACTIVE (the SDK's table-exists waiter), and enables TTL on the
/// expiry attribute. A table that exists already is not an error: it is
/// waited for and its TTL enabled if it was not.
pub async fn create_sessions_table(
    client: &Client,
    config: &Config,
    read: i64,
    write: i64,
) -> Result<TableCreation, SessionError> {
    let throughput = ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .map_err(|e| SessionError::DynamoDb { operation: "CreateTable", code: None, source: Box::new(e) })?;
    let created = client
        .create_table()
        .table_name(&config.table_name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&config.hash_key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(&config.hash_key)
                .key_type(KeyType::Hash)
                .build()
                .expect("name and type are set"),
        )
        .provisioned_throughput(throughput)
        .send()
        .await;
    let outcome = match created {
        Ok(_) => TableCreation::Created,
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => {
            TableCreation::AlreadyExisted
        }
        Err(e) => return Err(SessionError::dynamo("CreateTable", e)),
    };
    client
        .wait_until_table_exists()
        .table_name(&config.table_name)
        .wait(TABLE_WAIT)
        .await
        .map_err(|e| SessionError::Unavailable { operation: "DescribeTable", source: Box::new(e) as BoxError })?;
    enable_ttl(client, config).await?;
    Ok(outcome)
}

async fn enable_ttl(client: &Client, config: &Config) -> Result<(), SessionError> {
    let described = client
        .describe_time_to_live()
        .table_name(&config.table_name)
        .send()
        .await
        .map_err(|e| SessionError::dynamo("DescribeTimeToLive", e))?;
    let ttl = described.time_to_live_description();
    let already = ttl.is_some_and(|d| {
        matches!(d.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling))
            && d.attribute_name() == Some(config.session_lifetime_attribute.as_str())
    });
    if already {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(&config.session_lifetime_attribute)
        .build()
        .expect("enabled and attribute name are set");
    client
        .update_time_to_live()
        .table_name(&config.table_name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| SessionError::dynamo("UpdateTimeToLive", e))?;
    Ok(())
}
