//! A client for the AWS emulator's control API (`/_emulator/...`): credentials for an account,
//! the call log, injected faults and per-account behaviour settings.

use serde_json::{Value, json};

/// The control API of one emulator.
#[derive(Clone, Debug)]
pub struct Emulator {
    base: String,
    /// The account-admin credentials issued so far, by account (IAM allows two keys per user).
    admins: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, AccountCredentials>>>,
}

/// Static credentials the emulator attributes to one account.
#[derive(Clone, Debug)]
pub struct AccountCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
    /// The IAM user's ARN.
    pub arn: String,
}

/// True for operations that only read (Describe*, Get*, List*, Head*).
pub fn is_read(operation: &str) -> bool {
    ["Describe", "Get", "List", "Head"].iter().any(|p| operation.starts_with(p))
}

/// One AWS call as the emulator saw it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Call {
    /// The caller's account.
    pub account: String,
    /// The caller as GetCallerIdentity names it (`arn:aws:sts::A:assumed-role/<role>/<session>`).
    pub caller: String,
    /// The signing name of the service (`sts`, `ec2`, ...).
    pub service: String,
    /// The operation (`AssumeRole`, `DescribeVpcs`, ...).
    pub operation: String,
    /// The HTTP status sent.
    pub status: u16,
    /// IAM evaluation's verdict: NotEvaluated, Exempt, Allow, Deny or WouldDeny.
    #[serde(default)]
    pub decision: Option<String>,
    /// The action evaluation judged last (the refused one, for a Deny).
    #[serde(default)]
    pub action: Option<String>,
    /// AWS's message of a refusal.
    #[serde(default)]
    pub message: Option<String>,
}

impl Emulator {
    /// The emulator at `base` (e.g. `http://127.0.0.1:41234`).
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), admins: Default::default() }
    }

    /// Its base URL, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_emulator/{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, Some(body)) => agent.post(&url).send_json(&body),
            (_, None) => agent.post(&url).send_empty(),
        };
        let mut response = response.unwrap_or_else(|e| panic!("emulator {method} {path}: {e}"));
        let status = response.status();
        let value: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        assert!(status.is_success(), "emulator {method} {path}: HTTP {status}: {value}");
        value
    }

    /// New credentials of an IAM user in `account`, with no permissions of its own.
    pub fn credentials(&self, account: &str) -> AccountCredentials {
        self.new_credentials(json!({"account": account}))
    }

    /// New credentials of IAM user `user` in `account` (created if missing).
    pub fn user_credentials(&self, account: &str, user: &str) -> AccountCredentials {
        self.new_credentials(json!({"account": account, "userName": user}))
    }

    /// New credentials of the account-admin identity (IAM user `account-admin`) a test sets a
    /// scenario up with: exempt from IAM evaluation, and nothing else is.
    pub fn admin_credentials(&self, account: &str) -> AccountCredentials {
        let mut admins = self.admins.lock().unwrap();
        admins
            .entry(account.to_owned())
            .or_insert_with(|| {
                self.new_credentials(json!({"account": account, "userName": "account-admin", "admin": true}))
            })
            .clone()
    }

    fn new_credentials(&self, body: Value) -> AccountCredentials {
        let v = self.send("POST", "credentials", Some(body));
        AccountCredentials {
            access_key_id: v["accessKeyId"].as_str().unwrap().to_owned(),
            secret_access_key: v["secretAccessKey"].as_str().unwrap().to_owned(),
            arn: v["arn"].as_str().unwrap().to_owned(),
        }
    }

    /// Evaluates IAM for every request of these accounts' principals (`enforce`), records what
    /// it would refuse (`audit`), or neither (`off`).
    pub fn iam_evaluation(&self, mode: &str, accounts: &[String]) {
        self.send("POST", "iam", Some(json!({"mode": mode, "accounts": accounts})));
    }

    /// Every call made by `account`, in order.
    pub fn calls(&self, account: &str) -> Vec<Call> {
        let v = self.send("GET", &format!("calls?account={account}"), None);
        serde_json::from_value(v["calls"].clone()).expect("calls")
    }

    /// The write operations sagekeeper's deployer session made in `account`, in order (the
    /// test's own calls and reads left out).
    pub fn controller_writes(&self, account: &str) -> Vec<String> {
        self.calls(account)
            .into_iter()
            .filter(|c| c.caller.ends_with("/sagekeeper") && !is_read(&c.operation))
            .map(|c| c.operation)
            .collect()
    }

    /// Forgets the calls `account` made so far.
    pub fn clear_calls(&self, account: &str) {
        self.send("DELETE", &format!("calls?account={account}"), None);
    }

    /// Registers a fault (see the emulator README); returns its id.
    pub fn fault(&self, spec: Value) -> String {
        self.send("POST", "faults", Some(spec))["id"].as_str().unwrap().to_owned()
    }

    /// The registered faults, as the emulator reports them (with `armed` and `hits`).
    pub fn faults(&self) -> Vec<Value> {
        self.send("GET", "faults", None)["faults"].as_array().cloned().unwrap_or_default()
    }

    /// Removes every fault registered with `account` as an account it applies to.
    pub fn clear_faults(&self, account: &str) {
        for fault in self.faults() {
            let applies = fault["account"] == account
                || fault["accounts"].as_array().is_some_and(|list| list.iter().any(|a| a == account));
            if applies {
                self.remove_fault(fault["id"].as_str().unwrap_or_default());
            }
        }
    }

    /// Removes one fault.
    pub fn remove_fault(&self, id: &str) {
        self.send("DELETE", &format!("faults/{id}"), None);
    }

    /// Ends an Executing pipeline execution now, as `Succeeded` or `Failed` with `reason`.
    pub fn finish_execution(&self, arn: &str, status: &str, reason: Option<&str>) {
        let mut body = json!({"arn": arn, "status": status});
        if let Some(reason) = reason {
            body["failureReason"] = json!(reason);
        }
        self.send("POST", "pipeline-executions", Some(body));
    }

    /// Makes the next create or update (`kind`) of endpoint `endpoint` in `account` fail with
    /// `reason` (an update is rolled back to the old config).
    pub fn fail_endpoint(&self, account: &str, endpoint: &str, kind: &str, reason: &str) {
        let body = json!({"account": account, "endpointName": endpoint, "kind": kind, "reason": reason});
        self.send("POST", "endpoint-failures", Some(body));
    }

    /// Makes `account` an active member of the organization whose management account is
    /// `management`, in `parent` (a root or OU id), as if it had accepted an invitation.
    pub fn enroll(&self, management: &str, account: &str, parent: &str) {
        let body = json!({"managementAccount": management, "accountId": account, "parentId": parent});
        self.send("POST", "organizations/accounts", Some(body));
    }

    /// Puts the alarm `name` of `account` in `state` (OK, ALARM, INSUFFICIENT_DATA), as its metric
    /// would: a StateUpdate in its history.
    pub fn set_alarm(&self, account: &str, name: &str, state: &str) {
        let body = json!({"account": account, "alarmName": name, "state": state, "reason": "set by a test"});
        self.send("POST", "alarms", Some(body));
    }

    /// Plays Application Auto Scaling: sets the endpoint's variant to `count` instances, as a
    /// scaling activity of its scalable target would.
    pub fn scale(&self, account: &str, endpoint: &str, count: i32) {
        let body = json!({"account": account, "endpointName": endpoint, "variantName": "AllTraffic", "desiredInstanceCount": count});
        self.send("POST", "scaling", Some(body));
    }

    /// Every update of the endpoint with a DeploymentConfig, oldest first: its strategy, its
    /// traffic steps (`trafficPercent`, `status`) and its outcome.
    pub fn endpoint_deployments(&self, account: &str, endpoint: &str) -> Vec<Value> {
        let v = self.send("GET", &format!("endpoint-deployments?account={account}&endpointName={endpoint}"), None);
        v["deployments"].as_array().cloned().unwrap_or_default()
    }

    /// Sets per-account behaviour (transitional state durations and the like).
    pub fn configure(&self, settings: Value) -> Value {
        self.send("POST", "config", Some(settings))
    }
}
