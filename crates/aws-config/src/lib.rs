//! piflow-aws-config: the AWS SDK configuration every piflow component that
//! calls AWS shares. A leaf: the store's DynamoDB backend, the AWS steps and
//! the Step Functions/EventBridge deployment all call [`sdk_config`].
//!
//! **Invariant.** Everything comes from the standard AWS configuration
//! chain: region (`AWS_REGION`, `~/.aws/config`), credentials
//! (`AWS_ACCESS_KEY_ID`…, `AWS_PROFILE`, web identity, container and
//! instance roles) and endpoint (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_<SERVICE>`). An emulator such as moto is reached the
//! same way as AWS, through `AWS_ENDPOINT_URL`: there is no special code
//! path for it.
//!
//! **HTTPS.** Every SDK client piflow builds sends its requests through
//! [`http_client`]: hyper 1 and rustls with *ring* as its crypto, trusting
//! the system's root certificates (plus `AWS_CA_BUNDLE` when set, as the
//! SDK's own client does). The SDK crates are built without their
//! `default-https-client` feature (which would compile aws-lc-rs), so a
//! client made from a configuration that did not come from here has no HTTP
//! client and fails on its first call: build SDK configurations with
//! [`sdk_config`], or give a hand-made one `.http_client(http_client())`.
//!
//! **May depend on:** aws-config, the Smithy HTTP client. **Never:** any
//! piflow crate.

use std::sync::OnceLock;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The HTTPS client every SDK client of piflow's uses (one per process,
/// sharing its connection pool): hyper 1, rustls with ring, the system's
/// root certificates.
pub fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

/// How many times a throttled or transient call is tried (first attempt
/// included) unless `AWS_MAX_ATTEMPTS` or `AWS_RETRY_MODE` say otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;

/// The SDK configuration: the standard AWS chain, with standard-mode retries
/// (exponential back-off with jitter) and [`DEFAULT_MAX_ATTEMPTS`] attempts,
/// so that throttling (`ProvisionedThroughputExceededException`,
/// `ThrottlingException`) is absorbed by the SDK before an error reaches
/// piflow. When `AWS_MAX_ATTEMPTS` or `AWS_RETRY_MODE` is set, the retry
/// settings come from the AWS configuration instead (environment, then the
/// profile's `max_attempts` / `retry_mode`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    let overridden = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !overridden {
        loader =
            loader.retry_config(RetryConfig::standard().with_max_attempts(DEFAULT_MAX_ATTEMPTS));
    }
    loader.load().await
}
