//! The cluster test harness: one private local stack (real kube-apiserver and etcd, the AWS
//! emulator) per test run, started on first use and stopped when the run exits; each test gets
//! its own namespace, its own AWS account ids, and, when it asks, its own in-process controller
//! that only sees the test's objects.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod emulator;
pub mod permissions;
pub mod process;
pub mod stack;
pub mod test_env;

pub use emulator::Emulator;
pub use test_env::{Controller, TestEnv};

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
