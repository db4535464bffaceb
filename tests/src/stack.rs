//! The local stack of one test run: started once by `tests/stack/up.sh` (the same script
//! `make stack-up` uses) in a temporary folder, with a watchdog that stops it when the test
//! process exits; the CRDs from `crds/` are installed before any test runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the stack of this test run listens.
#[derive(Debug)]
pub struct Stack {
    /// The stack's folder (logs, certificates, kubeconfig).
    pub dir: PathBuf,
    /// Kubeconfig of the admin user.
    pub kubeconfig: PathBuf,
    /// Base URL of the AWS emulator, e.g. `http://127.0.0.1:41234`.
    pub aws_endpoint: String,
    /// Folder holding `kubectl`, `kube-apiserver` and `etcd` of the matching version.
    pub bin: PathBuf,
    /// Kubeconfig of the admin user impersonating the controller's ServiceAccount.
    pub controller_kubeconfig: PathBuf,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The stack of this test run, started on first use.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(start)
}

fn start() -> Stack {
    let root = repo_root();
    let dir = std::env::temp_dir().join(format!("sagekeeper-test-stack-{}", std::process::id()));
    let status = Command::new(root.join("tests/stack/up.sh"))
        .arg(&dir)
        .arg("--watch-pid")
        .arg(std::process::id().to_string())
        .status()
        .expect("run tests/stack/up.sh");
    assert!(status.success(), "tests/stack/up.sh failed (logs in {})", dir.display());
    let env = std::fs::read_to_string(dir.join("env")).expect("stack env file");
    let value = |key: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {key}=")))
            .unwrap_or_else(|| panic!("{key} missing from the stack env"))
            .to_owned()
    };
    let bin = PathBuf::from(value("PATH").trim_end_matches(":$PATH"));
    let kubeconfig = PathBuf::from(value("KUBECONFIG"));
    let controller_kubeconfig = dir.join("controller.kubeconfig");
    write_impersonating(&kubeconfig, &controller_kubeconfig, crate::test_env::CONTROLLER_SERVICE_ACCOUNT);
    let stack = Stack { kubeconfig, aws_endpoint: value("AWS_ENDPOINT_URL"), bin, dir, controller_kubeconfig };
    install_crds(&stack);
    install_manifests(&stack);
    stack
}

/// A copy of kubeconfig `from` whose users act as `user` (kubectl's `--as`): the admin
/// impersonates the controller, so the controller gets exactly the RBAC bound to it.
pub fn write_impersonating(from: &Path, to: &Path, user: &str) {
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(from).expect("read kubeconfig")).expect("kubeconfig YAML");
    for entry in config["users"].as_sequence_mut().expect("kubeconfig users") {
        entry["user"]["as"] = serde_yaml::Value::from(user);
    }
    std::fs::write(to, serde_yaml::to_string(&config).expect("kubeconfig YAML")).expect("write kubeconfig");
}

/// All of `deploy/kubernetes/` as a platform team installs it: the controller's namespace, then
/// the chart rendered with its defaults (ServiceAccount, RBAC, the approval gate, the Deployment). The API server runs no controllers, so the
/// Deployment makes no pods; tests run the controller in process or as a local process, acting as
/// that ServiceAccount.
fn install_manifests(stack: &Stack) {
    for file in ["namespace.yaml", "sagekeeper.yaml"] {
        let path = repo_root().join("deploy/kubernetes").join(file);
        let out = stack.kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=sagekeeper-tests",
            "-f",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "applying {file} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn install_crds(stack: &Stack) {
    let crds = repo_root().join("crds");
    let out =
        stack.kubectl(&["apply", "--server-side", "--field-manager=sagekeeper-tests", "-f", crds.to_str().unwrap()]);
    assert!(out.status.success(), "installing CRDs failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = stack.kubectl(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]);
    assert!(out.status.success(), "CRDs not established: {}", String::from_utf8_lossy(&out.stderr));
    // Established comes before discovery serves the new kinds; kubectl needs discovery for
    // short names and categories.
    let start = std::time::Instant::now();
    loop {
        let out = stack.kubectl(&["api-resources", "--api-group=sagekeeper.io", "-o", "name"]);
        if String::from_utf8_lossy(&out.stdout).lines().count() == sagekeeper_api::crds().len() {
            break;
        }
        assert!(start.elapsed().as_secs() < 30, "discovery never listed the sagekeeper kinds");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

impl Stack {
    /// Adds a process to the stack's `pids` (with its start time, as `tests/stack/lib.sh`
    /// records them), so `down.sh` and the watchdog stop it with the stack.
    pub fn record(&self, pid: u32, name: &str) {
        use std::io::Write;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let start = stat.rsplit(") ").next().and_then(|rest| rest.split(' ').nth(19)).unwrap_or_default();
        let mut pids =
            std::fs::OpenOptions::new().append(true).open(self.dir.join("pids")).expect("open the stack's pids");
        writeln!(pids, "{pid} {name} {start}").expect("record pid");
    }

    /// Runs the stack's `kubectl` with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        self.kubectl_with_input(args, None)
    }

    /// Runs `kubectl` with `input` on stdin.
    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(self.bin.join("kubectl"))
            .arg(format!("--cache-dir={}", self.dir.join("kubectl-cache").display()))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().expect("kubectl stdin");
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).expect("write kubectl stdin");
        }
        drop(stdin);
        child.wait_with_output().expect("kubectl output")
    }
}
