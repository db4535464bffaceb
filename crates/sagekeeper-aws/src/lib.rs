//! The only crate that talks to AWS: per-account sessions on top of the controller's own
//! credentials (assume-role with cached credentials), the AWS call metrics, error
//! classification, and one module per AWS resource family with idempotent steps.

pub mod alarms;
pub mod autoscaling;
pub mod errors;
pub mod flow_logs;
pub mod iam;
pub mod identity;
pub mod kms;
pub mod metrics;
pub mod network;
pub mod observe;
pub mod organizations;
pub mod pipelines;
pub mod registry;
pub mod s3;
pub mod sagemaker_endpoints;
mod sagemaker_tags;
pub mod sessions;
pub mod steps;
pub mod studio;

pub use errors::{AwsError, ErrorKind, Optional, Required};
pub use metrics::AwsCallMetrics;
pub use observe::{Shared, Snapshot};
pub use sessions::{AccountAccess, Session, Sessions};

/// The AWS SDK crates, re-exported so tests can inspect the emulator without a second copy.
pub mod sdk {
    pub use aws_config as config;
    pub use aws_credential_types as credential_types;
    pub use aws_sdk_applicationautoscaling as autoscaling;
    pub use aws_sdk_cloudwatch as cloudwatch;
    pub use aws_sdk_cloudwatchlogs as logs;
    pub use aws_sdk_ec2 as ec2;
    pub use aws_sdk_iam as iam;
    pub use aws_sdk_kms as kms;
    pub use aws_sdk_organizations as organizations;
    pub use aws_sdk_s3 as s3;
    pub use aws_sdk_sagemaker as sagemaker;
    pub use aws_sdk_sts as sts;
}
