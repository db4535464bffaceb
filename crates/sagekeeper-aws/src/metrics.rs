//! AWS call metrics: an SDK interceptor on every client counts each call by service,
//! operation and outcome, and by account, so no call site can forget it.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use prometheus::{IntCounterVec, Opts, Registry};

/// Counts AWS calls: `sagekeeper_aws_calls_total{service, operation, outcome}`, and
/// `sagekeeper_aws_account_calls_total{account, service, outcome}` (bounded by the AwsAccounts:
/// the account id of the role a session assumes, `controller` for its own credentials).
#[derive(Clone, Debug)]
pub struct AwsCallMetrics {
    calls: IntCounterVec,
    by_account: IntCounterVec,
    account: Option<String>,
}

impl AwsCallMetrics {
    /// Creates the counters and registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let calls = IntCounterVec::new(
            Opts::new("sagekeeper_aws_calls_total", "AWS API calls by service, operation and outcome"),
            &["service", "operation", "outcome"],
        )?;
        let by_account = IntCounterVec::new(
            Opts::new("sagekeeper_aws_account_calls_total", "AWS API calls by account, service and outcome"),
            &["account", "service", "outcome"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(by_account.clone()))?;
        Ok(Self { calls, by_account, account: None })
    }

    /// The same counters, for the calls of one account.
    pub(crate) fn for_account(&self, account: &str) -> Self {
        Self { account: Some(account.to_owned()), ..self.clone() }
    }
}

/// The outcome label of a call, from a fixed set: `ok`, `throttled`, `client_error`,
/// `server_error`, or `no_response` when AWS never answered.
fn outcome(status: Option<u16>) -> &'static str {
    match status {
        None => "no_response",
        Some(s) if (200..300).contains(&s) => "ok",
        Some(429) => "throttled",
        Some(s) if s >= 500 => "server_error",
        Some(_) => "client_error",
    }
}

impl Intercept for AwsCallMetrics {
    fn name(&self) -> &'static str {
        "sagekeeper-aws-call-metrics"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A call a read-only client refused was never sent.
        if cfg.load::<crate::sessions::Refused>().is_some() {
            return Ok(());
        }
        if let Some(meta) = cfg.load::<Metadata>() {
            let status = context.response().map(|r| r.status().as_u16());
            let throttled = context
                .response()
                .and_then(|r| r.headers().get("x-amzn-errortype"))
                .is_some_and(|t| t.starts_with("Throttling"));
            let outcome = if throttled { "throttled" } else { outcome(status) };
            self.calls.with_label_values(&[meta.service(), meta.name(), outcome]).inc();
            let account = self.account.as_deref().unwrap_or("controller");
            self.by_account.with_label_values(&[account, meta.service(), outcome]).inc();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::outcome;

    #[test]
    fn outcomes_come_from_a_fixed_set() {
        assert_eq!(outcome(Some(200)), "ok");
        assert_eq!(outcome(Some(204)), "ok");
        assert_eq!(outcome(Some(400)), "client_error");
        assert_eq!(outcome(Some(429)), "throttled");
        assert_eq!(outcome(Some(503)), "server_error");
        assert_eq!(outcome(None), "no_response");
    }
}
