//! A database connection kept in AWS Secrets Manager, so that a deployed
//! function's plan file names a secret's ARN instead of carrying a password.
//!
//! The secret's `SecretString` is either a database URL
//! (`postgres://USER:PASSWORD@HOST:PORT/DB`, any scheme `DatabaseUrl` takes)
//! or the JSON RDS keeps for a database's credentials:
//! `{"engine", "host", "port", "username", "password", "dbname"}` (`engine`
//! one of postgres, aurora-postgresql, mysql, mariadb, aurora-mysql, aurora;
//! `port` a number or a string of digits; `dbname` the database to dump).
//!
//! Nothing of a secret's value reaches a log or a message: errors name the
//! secret's ARN and the field at fault, never a value.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serde_json::Value;

use super::url::{is_secret_arn, DatabaseUrl, UrlError};

/// A database connection that could not be read from its secret; never
/// quotes the secret's value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secrets Manager secret {arn}: {message}")]
    Secret { arn: String, message: String },
    #[error(transparent)]
    Url(#[from] UrlError),
}

/// The database `source` names: a database URL, or the ARN of a secret that
/// holds one (or RDS-style JSON), read with `secrets` (GetSecretValue).
pub async fn resolve_database(
    source: &str,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<DatabaseUrl, SecretError> {
    if !is_secret_arn(source) {
        return Ok(DatabaseUrl::parse(source)?);
    }
    let secret_error = |message: String| SecretError::Secret {
        arn: source.to_owned(),
        message,
    };
    let output = secrets
        .get_secret_value()
        .secret_id(source)
        .send()
        .await
        .map_err(|e| secret_error(read_failure(&e)))?;
    let text = output.secret_string().ok_or_else(|| {
        secret_error(
            "it holds binary data, not a string: store the database URL, or RDS-style JSON {engine, host, port, username, password, dbname}, as the secret's string"
                .to_owned(),
        )
    })?;
    let url = database_url(text.trim()).map_err(secret_error)?;
    tracing::info!(secret = %source, database = %url, "database connection read from its secret");
    Ok(url)
}

/// What a failed GetSecretValue means, and what to do.
fn read_failure<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let SdkError::ServiceError(service) = error else {
        return format!("Secrets Manager could not be reached: {}", DisplayErrorContext(error));
    };
    let err = service.err();
    let code = err.code().unwrap_or("error");
    let message = err.message().unwrap_or_default();
    let hint = match code {
        "ResourceNotFoundException" => {
            "check the ARN, and that the secret is in the region the ARN names (the caller's region, AWS_REGION)"
        }
        "AccessDeniedException" => {
            "the caller needs secretsmanager:GetSecretValue on this secret (the stack's DatabaseSecretArns parameter), and kms:Decrypt on its key if that is a customer-managed key"
        }
        "DecryptionFailure" => "the caller needs kms:Decrypt on the secret's KMS key",
        "InvalidRequestException" => "the secret may be scheduled for deletion: restore it, or name another",
        _ => "see the message",
    };
    format!("GetSecretValue failed ({code}: {message}): {hint}")
}

/// The database a secret's string describes. Messages never quote it.
fn database_url(text: &str) -> Result<DatabaseUrl, String> {
    let url_text = if text.starts_with('{') {
        url_from_json(text)?
    } else if text.contains("://") {
        text.to_owned()
    } else {
        return Err(
            "it holds neither a database URL (postgres://USER:PASSWORD@HOST:PORT/DB, mysql://…) nor RDS-style JSON {engine, host, port, username, password, dbname}"
                .to_owned(),
        );
    };
    // The message says what is wrong; the URL it was about stays unsaid.
    DatabaseUrl::parse(&url_text).map_err(|error| format!("its database URL is not usable: {}", error.message))
}

/// The URL of RDS-style credentials JSON, user and password percent-encoded.
fn url_from_json(text: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "it starts like JSON but is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let field = |name: &str| -> Result<String, String> {
        match value.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) if name == "port" => Ok(n.to_string()),
            Some(_) => Err(format!("its \"{name}\" is not a non-empty string")),
            None => Err(format!(
                "its JSON has no \"{name}\": RDS-style secrets need engine, host, port, username, password and dbname (the database to dump)"
            )),
        }
    };
    let engine = field("engine")?;
    let scheme = match engine.as_str() {
        "postgres" | "postgresql" | "aurora-postgresql" => "postgres",
        "mysql" | "mariadb" | "aurora-mysql" | "aurora" => "mysql",
        _ => {
            return Err(format!(
                "its engine {engine:?} is not one Lifeboat dumps (postgres, aurora-postgresql, mysql, mariadb, aurora-mysql)"
            ))
        }
    };
    let host = field("host")?;
    let port = field("port")?;
    if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
        return Err("its \"port\" is not a number from 1 to 65535".to_owned());
    }
    let user = field("username")?;
    // An empty password is none (a server that asks for none).
    let password = match value.get("password") {
        Some(Value::String(p)) if p.is_empty() => String::new(),
        _ => format!(":{}", percent_encode(&field("password")?)),
    };
    let database = field("dbname")?;
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    Ok(format!(
        "{scheme}://{}{password}@{host}:{port}/{}",
        percent_encode(&user),
        percent_encode(&database)
    ))
}

/// Every byte but RFC 3986's unreserved characters, as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::url::Engine;

    #[test]
    fn rds_json_and_urls_become_the_same_database() {
        let json = r#"{"engine": "postgres", "host": "db.internal", "port": 5433, "username": "app",
                       "password": "p@ss:w/rd%", "dbname": "orders", "dbInstanceIdentifier": "orders-db"}"#;
        let url = database_url(json).expect("RDS JSON");
        assert_eq!(url.engine, Engine::Postgresql);
        assert_eq!(url.to_string(), "postgresql://app@db.internal:5433/orders");
        assert_eq!(url.password(), Some("p@ss:w/rd%"));

        let mysql = database_url(
            r#"{"engine":"aurora-mysql","host":"::1","port":"3306","username":"root","password":"x","dbname":"shop"}"#,
        )
        .expect("port as a string, an IPv6 host");
        assert_eq!(mysql.to_string(), "mysql://root@[::1]:3306/shop");
        let no_password = database_url(
            r#"{"engine":"mariadb","host":"h","port":3306,"username":"root","password":"","dbname":"shop"}"#,
        )
        .expect("an empty password");
        assert_eq!(no_password.password(), None);

        let plain = database_url("postgres://app:secret@db.internal/orders").expect("a URL");
        assert_eq!(plain.password(), Some("secret"));
    }

    #[test]
    fn bad_secrets_say_what_is_wrong_without_their_value() {
        let cases = [
            ("hunter2-password", "neither a database URL"),
            (
                r#"{"engine":"postgres","host":"h","port":5432,"username":"u","password":"hunter2-password"}"#,
                "no \"dbname\"",
            ),
            (
                r#"{"engine":"sqlserver","host":"h","port":1433,"username":"u","password":"hunter2-password","dbname":"d"}"#,
                "not one Lifeboat dumps",
            ),
            (
                r#"{"engine":"postgres","host":"h","port":99999,"username":"u","password":"hunter2-password","dbname":"d"}"#,
                "\"port\"",
            ),
            (
                r#"{"engine":"postgres","host":"h","port":5432,"username":"u","password":7,"dbname":"d"}"#,
                "\"password\" is not",
            ),
            (
                r#"{"engine": "postgres", "password": "hunter2-password""#,
                "not valid JSON",
            ),
            ("postgres://u:hunter2-password@h/d?sslmode=require", "not usable"),
        ];
        for (text, expected) in cases {
            let message = database_url(text).expect_err(text);
            assert!(message.contains(expected), "{text}: {message}");
            assert!(
                !message.contains("hunter2"),
                "{text}: the message shows the secret: {message}"
            );
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(percent_encode("p@ss:w/rd%ü"), "p%40ss%3Aw%2Frd%25%C3%BC");
    }
}
