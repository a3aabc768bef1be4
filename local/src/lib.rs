//! The `sessions-local` library: what the `sessions` binary and the tests
//! share. For now, the DynamoDB capacity and fault simulator.

pub mod simulator;
