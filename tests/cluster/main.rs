//! Cluster tests: the controller against a real kube-apiserver and the AWS emulator.

#![allow(clippy::unwrap_used, missing_docs)]

mod accounts;
mod admission;
mod deletion;
mod environments;
mod leader;
mod references;
