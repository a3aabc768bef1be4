//! Creating the sessions table, as the PHP handler's `createSessionsTable`.

use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::budget::InBudget;
use crate::error::{BoxError, SessionError};
use crate::store::SessionStore;

/// How long to wait for a new table to become ACTIVE.
const TABLE_WAIT: Duration = Duration::from_secs(300);

/// What [`SessionStore::create_table`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableCreation {
    /// The table was created.
    Created,
    /// The table was there already (its TTL is enabled all the same).
    AlreadyExisted,
}

/// How the table is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableCapacity {
    /// Provisioned read and write capacity units.
    Provisioned {
        /// Read capacity units.
        read: i64,
        /// Write capacity units.
        write: i64,
    },
    /// On demand (PAY_PER_REQUEST).
    OnDemand,
}

impl SessionStore {
    /// Creates the sessions table, blocks until it is ACTIVE (the SDK's
    /// table-exists waiter), and enables TTL on the expiry attribute. A table
    /// that exists already is not an error: it is waited for and its TTL
    /// enabled if it was not.
    pub async fn create_table(&self, capacity: TableCapacity) -> Result<TableCreation, SessionError> {
        let (client, config) = (self.client(), self.config());
        let request = client.create_table();
        let request = match capacity {
            TableCapacity::Provisioned { read, write } => {
                let throughput = ProvisionedThroughput::builder()
                    .read_capacity_units(read)
                    .write_capacity_units(write)
                    .build()
                    .map_err(|e| SessionError::DynamoDb {
                        operation: "CreateTable",
                        code: None,
                        source: Box::new(e),
                    })?;
                request.billing_mode(BillingMode::Provisioned).provisioned_throughput(throughput)
            }
            TableCapacity::OnDemand => request.billing_mode(BillingMode::PayPerRequest),
        };
        let created = request
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
            .send()
            .in_budget()
            .await;
        let outcome = match created {
            Ok(_) => TableCreation::Created,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_in_use_exception()) => {
                TableCreation::AlreadyExisted
            }
            Err(e) => return Err(SessionError::dynamo("CreateTable", e)),
        };
        client.wait_until_table_exists().table_name(&config.table_name).wait(TABLE_WAIT).await.map_err(|e| {
            SessionError::Unavailable { operation: "DescribeTable", code: None, source: Box::new(e) as BoxError }
        })?;
        self.enable_ttl().await?;
        Ok(outcome)
    }

    async fn enable_ttl(&self) -> Result<(), SessionError> {
        let (client, config) = (self.client(), self.config());
        let described = client
            .describe_time_to_live()
            .table_name(&config.table_name)
            .send()
            .in_budget()
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
            .in_budget()
            .await
            .map_err(|e| SessionError::dynamo("UpdateTimeToLive", e))?;
        Ok(())
    }
}
