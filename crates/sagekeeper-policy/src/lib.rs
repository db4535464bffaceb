//! IAM, KMS key, S3 bucket and VPC endpoint policy documents of an environment, as pure functions
//! of its names and ARNs, and their semantic comparison: parsed and order-insensitive, so a
//! policy AWS stores in another shape never looks like drift.

pub mod compare;
mod document;
pub mod endpoints;
pub mod iam;
pub mod images;
pub mod inputs;
pub mod kms;
pub mod limits;
pub mod logs;
pub mod pipeline;
pub mod registry;
pub mod s3;

pub use compare::{action_matches, digest, digest_of, equivalent, normalize, parse, same_policy};
pub use document::{find_statement, statement_ids};
pub use inputs::{Environment, Keys, Persona, Roles, Target};
