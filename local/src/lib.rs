//! The `sessions-local` library: what the `sessions` binary and the tests
//! share: the router `sessions serve` serves, and the DynamoDB capacity and
//! fault simulator.

pub mod serve;
pub mod simulator;
