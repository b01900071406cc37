//! Where alerts go: one SNS topic, each message with a subject cut to what
//! SNS takes and the `condition` and `severity` attributes subscription
//! filter policies match on.

use aws_sdk_sns::types::MessageAttributeValue;
use serde_json::Value;

use super::evaluate::subject_line;
use super::AlertError;

/// Where alerts go.
#[derive(Clone, Debug)]
pub struct AlertTopic {
    pub client: aws_sdk_sns::Client,
    pub topic_arn: String,
}

impl AlertTopic {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: &str) -> Self {
        Self {
            client,
            topic_arn: topic_arn.to_owned(),
        }
    }

    /// Publishes one message: `Subject` (cut to 100 characters), the body
    /// as pretty JSON, and the message attributes `condition` and `severity`
    /// for subscription filter policies.
    pub async fn publish(
        &self,
        subject: &str,
        body: &Value,
        condition: &str,
        severity: &str,
    ) -> Result<(), AlertError> {
        let failed = |message: String| AlertError::Publish {
            topic: self.topic_arn.clone(),
            message,
        };
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| failed(e.to_string()))
        };
        let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string());
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject_line(subject))
            .message(text)
            .message_attributes("condition", attribute(condition)?)
            .message_attributes("severity", attribute(severity)?)
            .send()
            .await
            .map_err(|e| failed(aws_sdk_sns::error::DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
