//! Cluster tests: the controller against a real kube-apiserver and the AWS emulator.

#![allow(clippy::unwrap_used, missing_docs)]

mod account_sets;
mod accounts;
mod admission;
mod approval;
mod bench;
mod changes;
mod chart;
mod crash;
mod deletion;
mod deployments;
mod drift;
mod environment_state;
mod environments;
mod existing_keys;
mod existing_network;
mod faults;
mod flow_logs;
mod image;
mod leader;
mod manifests;
mod operate;
mod projects;
mod references;
mod rollouts;
mod scale;
mod security;
mod trace;
