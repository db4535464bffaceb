//! Policy documents, compared semantically: parsed and order-insensitive, so a policy AWS
//! stores in another shape never looks like drift. The IAM, S3 bucket, KMS key and model
//! registry documents sagekeeper writes will be built here as pure functions.

pub mod compare;

pub use compare::{equivalent, normalize, parse};
