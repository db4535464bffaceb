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

/// The binary built by `cargo build -p sagekeeper` (which `make test` runs first), refused when
/// any source of the crates is newer, so a test never runs yesterday's controller.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SAGEKEEPER_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test executable");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("sagekeeper");
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} missing: run `cargo build -p sagekeeper` (make test does)", path.display()));
    let newest = newest_source(&crate::stack::repo_root().join("crates"));
    assert!(newest <= built, "{} is older than the sources: run `cargo build -p sagekeeper`", path.display());
    path
}

fn newest_source(dir: &std::path::Path) -> std::time::SystemTime {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                newest_source(&path)
            } else {
                entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH)
            }
        })
        .max()
        .unwrap_or(std::time::UNIX_EPOCH)
}

impl TestEnv {
    /// Starts `sagekeeper run` as `identity`, competing for a lease in the test namespace and
    /// reconciling only this test's objects, as the controller's ServiceAccount; `args` are extra
    /// flags.
    pub fn spawn_sagekeeper(&self, identity: &str, args: &[&str]) -> Process {
        self.grant_lease();
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let log = self.stack().dir.join(format!("{}-{identity}.log", self.id));
        let file = std::fs::File::create(&log).expect("log file");
        let lease_namespace = format!("--lease-namespace={}", self.namespace);
        let own_lease_namespace = args.iter().any(|a| a.starts_with("--lease-namespace"));
        let child = Command::new(binary())
            .arg("run")
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .args((!own_lease_namespace).then_some(lease_namespace))
            .arg(format!("--identity={identity}"))
            .arg(format!("--watch-label-selector={TEST_LABEL}={}", self.id))
            .args(args)
            .env_clear()
            .env("KUBECONFIG", &self.stack().controller_kubeconfig)
            .env("AWS_ENDPOINT_URL", self.emulator.url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &self.home.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.home.secret_access_key)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .expect("start sagekeeper");
        // Recorded with the stack's own processes, so the stack's watchdog stops it even if this
        // test process is killed before it can.
        self.stack().record(child.id().expect("pid"), "sagekeeper");
        Process { child, http: format!("http://127.0.0.1:{port}"), identity: identity.to_owned(), log }
    }
}

impl TestEnv {
    /// The shipped leader-election Role and RoleBinding (`deploy/kubernetes/sagekeeper.yaml`,
    /// the chart rendered), moved to the test namespace where this test's lease lives.
    fn grant_lease(&self) {
        let rbac = std::fs::read_to_string(crate::stack::repo_root().join("deploy/kubernetes/sagekeeper.yaml"))
            .expect("read sagekeeper.yaml");
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(&rbac) {
            let mut value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).expect("sagekeeper.yaml");
            let namespaced = matches!(value["kind"].as_str(), Some("Role" | "RoleBinding"));
            if namespaced && value["metadata"]["name"] == "sagekeeper-leader-election" {
                value["metadata"]["namespace"] = self.namespace.clone().into();
                docs.push(serde_yaml::to_string(&value).expect("YAML"));
            }
        }
        assert_eq!(docs.len(), 2, "sagekeeper.yaml has the leader-election Role and RoleBinding");
        let out = self.stack().kubectl_with_input(&["apply", "-f", "-"], Some(&docs.join("---\n")));
        assert!(out.status.success(), "granting the lease: {}", String::from_utf8_lossy(&out.stderr));
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
        let (code, body) =
            self.get("/metrics").unwrap_or_else(|| panic!("{} is not serving:\n{}", self.identity, self.log()));
        assert_eq!(code, 200, "/metrics of {}", self.identity);
        body.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    /// Kills the process at once (SIGKILL), as a node failure would.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill sagekeeper");
    }

    /// Resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM` of /proc/PID/status).
    pub fn memory_kib(&self) -> (u64, u64) {
        (self.status_kib("VmRSS:"), self.status_kib("VmHWM:"))
    }

    /// Where the resident memory is, in KiB: anonymous (heap, stacks) and file-backed (the
    /// binary and its libraries) (`RssAnon`, `RssFile` of /proc/PID/status).
    pub fn memory_split_kib(&self) -> (u64, u64) {
        (self.status_kib("RssAnon:"), self.status_kib("RssFile:"))
    }

    /// CPU seconds the process used so far, user and system (`/proc/PID/stat`, in ticks of
    /// 1/100 s, the kernel's `USER_HZ` on Linux).
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.child.id().expect("running");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command (which may hold spaces) in parentheses: state is the
        // 3rd field of the line, utime the 14th and stime the 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        (ticks(11) + ticks(12)) as f64 / 100.0
    }

    fn status_kib(&self, name: &str) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
