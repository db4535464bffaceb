//! The `sagekeeper` binary as a process against the test's stack, the way it runs in a cluster:
//! its own credentials from the environment, leader election on, health and metrics served.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::test_env::{TEST_LABEL, TestEnv};

/// A running `sagekeeper run`; killed when dropped.
pub struct Process {
    child: Child,
    /// Base URL of its health and metrics server.
    pub http: String,
    /// Its identity in the lease.
    pub identity: String,
    /// Where its log goes.
    pub log: PathBuf,
}

/// The binary built by `cargo build -p sagekeeper` (which `make test` runs first).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SAGEKEEPER_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test executable");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("sagekeeper");
    assert!(path.exists(), "{} missing: run `cargo build -p sagekeeper` (make test does)", path.display());
    path
}

impl TestEnv {
    /// Starts `sagekeeper run` as `identity`, competing for a lease in the test namespace and
    /// reconciling only this test's objects; `args` are extra flags.
    pub fn spawn_sagekeeper(&self, identity: &str, args: &[&str]) -> Process {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = self.stack().dir.join(format!("{}-{identity}.log", self.id));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary())
            .arg("run")
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .arg(format!("--lease-namespace={}", self.namespace))
            .arg(format!("--identity={identity}"))
            .arg(format!("--watch-label-selector={TEST_LABEL}={}", self.id))
            .args(args)
            .env_clear()
            .env("KUBECONFIG", &self.stack().kubeconfig)
            .env("AWS_ENDPOINT_URL", self.emulator.url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &self.home.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.home.secret_access_key)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("start sagekeeper");
        Process { child, http: format!("http://127.0.0.1:{port}"), identity: identity.to_owned(), log }
    }
}

impl Process {
    /// GETs a path of the health and metrics server: (status, body), or `None` while it is not up.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.get(&format!("{}{path}", self.http)).call().ok()?;
        let status = response.status().as_u16();
        Some((status, response.body_mut().read_to_string().unwrap_or_default()))
    }

    /// The value of a metric line (`name{labels}`), summed over all label sets matching `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        let (_, body) = self.get("/metrics").unwrap_or_default();
        body.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    /// Kills the process at once (SIGKILL), as a node failure would.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill sagekeeper");
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
