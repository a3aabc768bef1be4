//! The HTTP session API of PRODUCT.md: one handler ([`handler::handle`])
//! served by the Lambda function (`session-api`, through API Gateway) and by
//! the local server (`sessions serve`).

pub mod cookie;
pub mod handler;
pub mod lambda;

pub use handler::{handle, App};
