//! Per-account AWS sessions. The controller's own credentials come from the standard chain
//! (environment, web identity for IRSA, profile) and its endpoint from `AWS_ENDPOINT_URL`; an
//! AwsAccount with a role gets a session whose credentials come from sts:AssumeRole (with its
//! external id) and are cached until shortly before they expire.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_config::identity::IdentityCache;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::SharedIdentityCache;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use crate::errors::AwsError;
use crate::metrics::AwsCallMetrics;

/// Session name on every assumed role, so CloudTrail shows who acted.
const SESSION_NAME: &str = "sagekeeper";
/// Lifetime of assumed-role credentials.
const ROLE_SESSION_SECONDS: i32 = 3600;
/// Attempts per AWS call (the SDK's own retry with backoff): AWS throttles in bursts, and five
/// attempts ride out a 30% throttle rate where the SDK's default three stall (`AWS_MAX_ATTEMPTS`
/// overrides it).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// How long one AWS call may take, its retries and their backoff included. The SDK sets no
/// limit: a service that accepts a request and never answers would hold the reconcile that
/// sent it, and every later reconcile of that object, forever. AWS control-plane calls answer
/// in well under a second. A call that runs out of time fails the reconcile, which the next
/// one takes from a fresh read; it is not sent again by the SDK (there is no per-attempt
/// limit): a create that AWS applied and answered late must not be sent twice.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long opening a connection may take (the SDK's own default).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The time limits of every AWS call sagekeeper sends: [`CALL_TIMEOUT`], and the SDK's own
/// connect timeout.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(CALL_TIMEOUT)
        .build()
}

/// Credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// How long an unused session is kept unless told otherwise ([`Sessions::drop_idle_after`]).
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);

/// How to reach one AWS account in one region: the role to assume (none for the controller's
/// own account) and its external id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccountAccess {
    /// The role to assume; `None` uses the controller's own credentials.
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
    /// The region; `None` uses the controller's default region.
    pub region: Option<String>,
}

/// A role ARN and the external id it is assumed with.
type RoleKey = (String, Option<String>);

/// The one HTTPS client of every session: the SDK's default (hyper 1, rustls with aws-lc,
/// proxy settings from the environment). Without it each service client of each session
/// builds its own, with its own TLS roots and connection pool: about 100 KiB per client, so
/// 26 MiB at 50 accounts.
fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let client = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = aws_smithy_http_client::ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .proxy_config(ProxyConfig::from_env());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.build()
    });
    SharedHttpClient::new(Unchecked(client))
}

/// An HTTP client that skips the SDK's check of a new service client: the SDK's own client
/// checks by building a whole connector (its TLS root store parsed again) and throwing it
/// away, on every service client made (five per account): that more than doubled the CPU of
/// making a client (115 against 50 µs, release build). The connectors actually used are built
/// once per timeout setting and shared.
#[derive(Debug)]
struct Unchecked(SharedHttpClient);

impl HttpClient for Unchecked {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_final_config(&self, components: &RuntimeComponents, cfg: &ConfigBag) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// Hands out one [`Session`] per account access, built on the controller's own AWS config.
#[derive(Debug)]
pub struct Sessions {
    base: SdkConfig,
    metrics: AwsCallMetrics,
    sts: aws_sdk_sts::Client,
    cache: Mutex<Cache>,
    /// A session nobody holds and nobody asked for in this long is dropped.
    idle: Duration,
    /// One credentials provider and cache per role, shared by its sessions in every region,
    /// so a role is assumed once however many regions use it.
    roles: Mutex<HashMap<RoleKey, (SharedCredentialsProvider, SharedIdentityCache)>>,
}

impl Sessions {
    /// Sessions on top of the given base config (the controller's own identity), every call
    /// with the [`timeouts`].
    pub fn new(base: SdkConfig, metrics: AwsCallMetrics) -> Self {
        let base = base.into_builder().timeout_config(timeouts()).build();
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&base).interceptor(metrics.clone()).build(),
        );
        let cache = Cache { sessions: HashMap::new(), swept: Instant::now() };
        Self { base, metrics, sts, cache: Mutex::new(cache), roles: Mutex::default(), idle: DEFAULT_IDLE }
    }

    /// Drops the session of an account (its clients, and its role's assumed credentials once
    /// no other session uses the role) when nobody holds it and nobody asked for it for
    /// `idle`: no object uses the account any more. Every object asks for the sessions of its
    /// accounts at least once per drift interval, so an `idle` of a few drift intervals never
    /// drops a session in use.
    #[must_use]
    pub fn drop_idle_after(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Loads the controller's own config the standard way: credential chain, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`. Without a region it uses us-east-1 for STS calls.
    pub async fn from_env(metrics: AwsCallMetrics) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
            loader =
                loader.retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(DEFAULT_MAX_ATTEMPTS));
        }
        let mut base = loader.load().await;
        if base.region().is_none() {
            base = base.into_builder().region(Region::from_static("us-east-1")).build();
        }
        Self::new(base, metrics)
    }

    /// The session for an account, created on first use and shared afterwards, so assumed
    /// credentials are reused across reconciles until shortly before they expire.
    pub fn session(&self, access: &AccountAccess) -> Arc<Session> {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.duration_since(cache.swept) >= self.idle / 4 {
            self.sweep(&mut cache, now);
        }
        let (session, used) =
            cache.sessions.entry(access.clone()).or_insert_with(|| (Arc::new(self.build(access)), now));
        *used = now;
        session.clone()
    }

    /// Drops the sessions idle for `idle` that nobody holds, and the roles no session uses.
    fn sweep(&self, cache: &mut Cache, now: Instant) {
        cache.swept = now;
        cache
            .sessions
            .retain(|_, (session, used)| Arc::strong_count(session) > 1 || now.duration_since(*used) < self.idle);
        let used: HashSet<RoleKey> = cache
            .sessions
            .keys()
            .filter_map(|access| Some((access.role_arn.clone()?, access.external_id.clone())))
            .collect();
        self.roles.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|role, _| used.contains(role));
    }

    fn build(&self, access: &AccountAccess) -> Session {
        let mut config = self.base.to_builder();
        if let Some(region) = &access.region {
            config.set_region(Some(Region::new(region.clone())));
        }
        if let Some(role_arn) = &access.role_arn {
            let mut roles = self.roles.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (provider, cache) = roles.entry((role_arn.clone(), access.external_id.clone())).or_insert_with(|| {
                let provider = AssumedRole {
                    sts: self.sts.clone(),
                    role_arn: role_arn.clone(),
                    external_id: access.external_id.clone(),
                };
                let cache = IdentityCache::lazy().buffer_time(REFRESH_BEFORE_EXPIRY).build();
                (SharedCredentialsProvider::new(provider), cache)
            });
            config.set_credentials_provider(Some(provider.clone()));
            config.set_identity_cache(Some(cache.clone()));
        }
        // The account of an assumed role, from its ARN (arn:aws:iam::<account>:role/...).
        let account = access.role_arn.as_deref().and_then(|arn| arn.split(':').nth(4)).unwrap_or("controller");
        Session {
            access: access.clone(),
            config: config.build(),
            metrics: self.metrics.for_account(account),
            clients: Clients::default(),
            s3_prefix_list: tokio::sync::OnceCell::new(),
            owners: std::sync::Mutex::default(),
        }
    }
}

/// The sessions, each with when it was last asked for, and when idle ones were last dropped.
#[derive(Debug)]
struct Cache {
    sessions: HashMap<AccountAccess, (Arc<Session>, Instant)>,
    swept: Instant,
}

/// Everything needed to call AWS in one account and region; clients are built on first use.
#[derive(Debug)]
pub struct Session {
    /// How it reaches its account: what a [`crate::observe::Snapshot`] keys its reads by.
    pub(crate) access: AccountAccess,
    config: SdkConfig,
    metrics: AwsCallMetrics,
    clients: Clients,
    /// The id of the region's S3 managed prefix list, which AWS never changes: read once.
    pub(crate) s3_prefix_list: tokio::sync::OnceCell<String>,
    /// By (name, owner uid): the id of what this process found carrying that owner's tags
    /// under that name, see [`Session::proven`].
    owners: std::sync::Mutex<HashMap<(String, String), String>>,
}

#[derive(Debug, Default)]
struct Clients {
    sts: OnceLock<aws_sdk_sts::Client>,
    ec2: OnceLock<aws_sdk_ec2::Client>,
    iam: OnceLock<aws_sdk_iam::Client>,
    kms: OnceLock<aws_sdk_kms::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    logs: OnceLock<aws_sdk_cloudwatchlogs::Client>,
    organizations: OnceLock<aws_sdk_organizations::Client>,
    sagemaker: OnceLock<aws_sdk_sagemaker::Client>,
    cloudwatch: OnceLock<aws_sdk_cloudwatch::Client>,
    autoscaling: OnceLock<aws_sdk_applicationautoscaling::Client>,
    ec2_check: OnceLock<aws_sdk_ec2::Client>,
}

macro_rules! client {
    ($name:ident, $krate:ident) => {
        #[doc = concat!("The `", stringify!($krate), "` client of this session.")]
        pub(crate) fn $name(&self) -> &$krate::Client {
            self.clients.$name.get_or_init(|| {
                $krate::Client::from_conf(
                    $krate::config::Builder::from(&self.config).interceptor(self.metrics.clone()).build(),
                )
            })
        }
    };
}

impl Session {
    client!(sts, aws_sdk_sts);
    client!(ec2, aws_sdk_ec2);
    client!(iam, aws_sdk_iam);
    client!(kms, aws_sdk_kms);
    client!(s3, aws_sdk_s3);
    client!(logs, aws_sdk_cloudwatchlogs);
    client!(organizations, aws_sdk_organizations);
    client!(sagemaker, aws_sdk_sagemaker);
    client!(cloudwatch, aws_sdk_cloudwatch);
    client!(autoscaling, aws_sdk_applicationautoscaling);

    /// An EC2 client that sends only reads and refuses every other call before it is sent:
    /// a step run with it on a shared (possibly stale) observation can tell whether that
    /// observation shows everything as planned, and cannot write.
    pub(crate) fn ec2_check(&self) -> &aws_sdk_ec2::Client {
        self.clients.ec2_check.get_or_init(|| {
            let config = aws_sdk_ec2::config::Builder::from(&self.config).interceptor(ReadOnly);
            aws_sdk_ec2::Client::from_conf(config.interceptor(self.metrics.clone()).build())
        })
    }

    /// The id of the resource named `name` (a bucket, a key alias) this process already found
    /// carrying `uid`'s owner tags, or made for it. A drift check at Security depth takes that
    /// as proof of ownership instead of reading the tags again (a name taken by someone else
    /// was refused when it was first seen; tags drift is repaired by Full checks, which read
    /// them again and so tell apart a resource deleted and made again by someone else).
    pub(crate) fn proven(&self, name: &str, uid: &str) -> Option<String> {
        let owners = self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        owners.get(&(name.to_owned(), uid.to_owned())).cloned()
    }

    /// Records that `name` is `id`, and carries `uid`'s owner tags (seen, or made with them).
    pub(crate) fn prove(&self, name: &str, uid: &str, id: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        owners.insert((name.to_owned(), uid.to_owned()), id.to_owned());
    }

    /// Forgets what was found under `name` (deleted, or found without our tags).
    pub(crate) fn forget(&self, name: &str) {
        let mut owners = self.owners.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        owners.retain(|(n, _), _| n != name);
    }

    /// The session's region.
    pub fn region(&self) -> &str {
        self.config.region().map_or("us-east-1", Region::as_ref)
    }
}

/// Refuses every call but a read (`Describe*`, `Get*`, `List*`) before it is sent.
#[derive(Debug)]
struct ReadOnly;

/// Left in a refused call's config bag, so the call metrics do not count a call never sent.
#[derive(Clone, Debug)]
pub(crate) struct Refused;

impl Storable for Refused {
    type Storer = StoreReplace<Self>;
}

impl Intercept for ReadOnly {
    fn name(&self) -> &'static str {
        "sagekeeper-read-only"
    }

    // Not `read_before_execution`: client interceptors run that before the operation's
    // config (its name among it) is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_default();
        if ["Describe", "Get", "List"].iter().any(|read| name.starts_with(read)) {
            return Ok(());
        }
        cfg.interceptor_state().store_put(Refused);
        Err(format!("{name} refused: a check only reads").into())
    }
}

/// Credentials from sts:AssumeRole. The session's identity cache calls it again shortly
/// before the credentials expire; an STS refusal is kept as an [`AwsError`] so every call that
/// needed these credentials reports the real cause.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<String>,
}

impl AssumedRole {
    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(SESSION_NAME)
            .set_external_id(self.external_id.clone())
            .duration_seconds(ROLE_SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| CredentialsError::provider_error(AwsError::from_sdk(e)))?;
        let creds = out.credentials.ok_or_else(|| {
            CredentialsError::provider_error(AwsError::from_code(
                "InvalidResponse",
                "AssumeRole returned no credentials",
                None,
            ))
        })?;
        let expiry = SystemTime::try_from(creds.expiration).ok();
        Ok(Credentials::new(
            creds.access_key_id,
            creds.secret_access_key,
            Some(creds.session_token),
            expiry,
            "sagekeeper-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions on a config whose endpoint nothing listens on, with static credentials.
    fn offline() -> Sessions {
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            )))
            .http_client(https_client())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let metrics = AwsCallMetrics::register(&prometheus::Registry::new()).unwrap();
        Sessions::new(base, metrics)
    }

    #[test]
    fn sessions_nobody_holds_or_asks_for_are_dropped_with_roles_no_session_uses() {
        let access = |n: u32| AccountAccess {
            role_arn: Some(format!("arn:aws:iam::{n:012}:role/sagekeeper-deployer")),
            ..AccountAccess::default()
        };
        let roles = |s: &Sessions| s.roles.lock().unwrap().len();

        // Kept while held or recently asked for.
        let kept = offline();
        let first = Arc::downgrade(&kept.session(&access(1)));
        kept.session(&access(2));
        assert!(first.upgrade().is_some(), "dropped within the idle time");
        assert_eq!(roles(&kept), 2);

        // Dropped once idle: an idle time of zero drops what nobody holds at the next ask.
        let sessions = offline().drop_idle_after(Duration::ZERO);
        let first = sessions.session(&access(1));
        let unused = Arc::downgrade(&first);
        let held = sessions.session(&access(2));
        assert!(unused.upgrade().is_some(), "a held session was dropped");
        assert_eq!(roles(&sessions), 2);
        drop(first);
        let again = sessions.session(&access(2));
        assert!(unused.upgrade().is_none(), "a session nobody holds outlived its idle time");
        assert!(Arc::ptr_eq(&held, &again), "a held session was replaced");
        assert_eq!(roles(&sessions), 1, "the dropped session's role is still cached");
        let cached = sessions.cache.lock().unwrap().sessions.len();
        assert_eq!(cached, 1);
    }

    #[tokio::test]
    async fn the_check_client_refuses_every_write_before_sending_it_and_sends_reads() {
        let session = offline().session(&AccountAccess::default());
        let ec2 = session.ec2_check();
        let write = ec2.create_tags().resources("vpc-1").send().await.map_err(AwsError::from_sdk).unwrap_err();
        assert!(write.message.contains("CreateTags refused"), "{write:?}");
        let revoke = ec2.revoke_security_group_ingress().group_id("sg-1").send().await;
        let revoke = revoke.map_err(AwsError::from_sdk).unwrap_err();
        assert!(revoke.message.contains("RevokeSecurityGroupIngress refused"), "{revoke:?}");
        // A read goes out (and finds nothing listening).
        let read = ec2.describe_vpcs().send().await.map_err(AwsError::from_sdk).unwrap_err();
        assert_eq!(read.code, "NetworkError", "{read:?}");
        // The session's ordinary client sends writes.
        let sent = session.ec2().create_tags().resources("vpc-1").send().await.map_err(AwsError::from_sdk);
        assert_eq!(sent.unwrap_err().code, "NetworkError");
    }
}
