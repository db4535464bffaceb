//! Policy documents as pure functions, and their semantic comparison: IAM, S3 bucket, KMS key
//! and model registry policies are built here and compared parsed and order-insensitive, so a
//! policy AWS stores in another shape never looks like drift.

pub mod compare;

pub use compare::{equivalent, normalize, parse};
