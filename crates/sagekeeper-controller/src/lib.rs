//! The sagekeeper controller: one reconciler per kind (resolve, plan, ensure, status), the
//! shared reconcile lifecycle (finalizer, pause, status with server-side apply, requeue),
//! leader election on a Lease, and the metrics and health the binary serves.

mod account;
mod account_set;
mod context;
mod deployment;
mod endpoint_watch;
mod environment;
mod fold;
pub mod leader;
mod lifecycle;
pub mod metrics;
mod project;
mod relations;
mod resolve;
mod run;
mod steps;

pub use context::Settings;
pub use leader::LeaseSettings;
pub use metrics::Metrics;
pub use run::{Error, Health, run};
