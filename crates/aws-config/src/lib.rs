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
//! **May depend on:** aws-config. **Never:** any piflow crate.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

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
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    let overridden = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !overridden {
        loader =
            loader.retry_config(RetryConfig::standard().with_max_attempts(DEFAULT_MAX_ATTEMPTS));
    }
    loader.load().await
}
