//! AWS clients, built once from the standard SDK configuration.
//!
//! `AWS_ENDPOINT_URL` (and the per-service variants), `AWS_REGION` and
//! `AWS_PROFILE` work unchanged: the same code runs against AWS or an
//! emulator. There is no code path for the emulator alone.

use aws_config::{BehaviorVersion, Region, SdkConfig};

#[derive(Debug, thiserror::Error)]
#[error("no AWS region is configured: pass --region, or set AWS_REGION (or a region in your AWS profile); Lifeboat never guesses one")]
pub struct NoRegion;

/// Loads the SDK configuration; `region` overrides the environment's.
pub async fn load_config(region: Option<&str>) -> Result<SdkConfig, NoRegion> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(NoRegion);
    }
    Ok(config)
}

/// The clients Lifeboat uses, sharing one configuration.
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub rds: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    /// Database connections kept as secrets (`crate::db::secret::resolve_database`).
    pub secretsmanager: aws_sdk_secretsmanager::Client,
    pub region: String,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            s3: s3_client(config),
            kms: aws_sdk_kms::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            rds: aws_sdk_rds::Client::new(config),
            route53: aws_sdk_route53::Client::new(config),
            secretsmanager: aws_sdk_secretsmanager::Client::new(config),
            region: config.region().map(|r| r.to_string()).unwrap_or_default(),
        }
    }
}

/// An S3 client. With a custom endpoint (S3-compatible storage, an emulator,
/// a VPC endpoint by IP), buckets are addressed path-style, since such
/// endpoints rarely resolve `BUCKET.HOST` names.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let mut builder = aws_sdk_s3::config::Builder::from(config);
    if config.endpoint_url().is_some() {
        builder = builder.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// The AWS error code and message of an SDK error, for messages and matching.
pub fn error_code<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> (Option<String>, String)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().map(str::to_owned);
            let message = err.message().map(str::to_owned).unwrap_or_else(|| err.to_string());
            (code, message)
        }
        other => (None, aws_sdk_s3::error::DisplayErrorContext(other).to_string()),
    }
}
