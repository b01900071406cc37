//! Database URLs: what `lifeboat` and the plan file name a database by.
//!
//! `DatabaseUrl::parse` reads `postgres://`, `mysql://`, `sqlite:///`,
//! `duckdb:///` and `redis://` URLs into an engine, a server (or a file) and
//! a database; its `Display` is the URL without the password, which is what
//! the catalog, logs and messages show, and `UrlError` never quotes a
//! password either. `is_secret_arn` tells a Secrets Manager secret's ARN,
//! which names a connection kept in a secret (`crate::db::secret`), from a
//! URL. Pure: no process, no network, no AWS.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgresql,
    Mysql,
    Sqlite,
    Redis,
    Duckdb,
}

impl Engine {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
            Self::Duckdb => "duckdb",
        }
    }

    /// A file, not a server: SQLite and DuckDB.
    pub fn is_file(&self) -> bool {
        matches!(self, Self::Sqlite | Self::Duckdb)
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "postgresql" => Some(Self::Postgresql),
            "mysql" => Some(Self::Mysql),
            "sqlite" => Some(Self::Sqlite),
            "redis" => Some(Self::Redis),
            "duckdb" => Some(Self::Duckdb),
            _ => None,
        }
    }

    /// The manifest's one entry for a dump of `database`.
    pub fn entry_path(&self, database: &str) -> String {
        match self {
            Self::Postgresql => format!("postgresql/{database}.pgdump"),
            Self::Mysql => format!("mysql/{database}.sql"),
            Self::Sqlite | Self::Duckdb => {
                let name = std::path::Path::new(database)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "database".into());
                let extension = if *self == Self::Sqlite { "sql" } else { "tar" };
                format!("{}/{name}.{extension}", self.as_str())
            }
            // An RDB snapshot holds every database of the server.
            Self::Redis => "redis/dump.rdb".to_owned(),
        }
    }

    fn default_port(&self) -> u16 {
        match self {
            Self::Postgresql => 5432,
            Self::Mysql => 3306,
            Self::Sqlite | Self::Duckdb => 0,
            Self::Redis => 6379,
        }
    }
}

/// A database URL that cannot be used; `url` is shown without its password.
#[derive(Debug, thiserror::Error)]
#[error("database URL {url:?}: {message} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE or mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE or sqlite:///PATH or duckdb:///PATH or redis://[:PASSWORD@]HOST[:PORT][/DB])")]
pub struct UrlError {
    pub url: String,
    pub message: String,
}

/// A database to dump or restore into, parsed from a URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    pub engine: Engine,
    pub user: Option<String>,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// The URL without its password: what the catalog and messages show.
impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://", self.engine.as_str())?;
        if self.engine.is_file() {
            return write!(f, "{}", self.database);
        }
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.database)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        // Never echo a password back.
        let shown = redact(text);
        let bad = |message: &str| UrlError {
            url: shown.clone(),
            message: message.to_owned(),
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let engine = match scheme {
            "postgres" | "postgresql" => Engine::Postgresql,
            "mysql" | "mariadb" => Engine::Mysql,
            "sqlite" => Engine::Sqlite,
            "redis" => Engine::Redis,
            "duckdb" => Engine::Duckdb,
            _ => {
                return Err(bad(
                    "the scheme must be postgres, postgresql, mysql, mariadb, sqlite, duckdb or redis",
                ))
            }
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(bad(
                "query parameters are not supported; give the connection in the URL itself",
            ));
        }
        let parsed = if engine.is_file() {
            Self::parse_file(engine, scheme, rest)
        } else {
            Self::parse_server(engine, rest)
        };
        parsed.map_err(|message| bad(&message))
    }

    /// `sqlite:///absolute/file.db` or `sqlite://relative/file.db` (after
    /// the `://`): a file, no server.
    fn parse_file(engine: Engine, scheme: &str, rest: &str) -> Result<Self, String> {
        let path = percent_decode(rest).ok_or("the file path is badly percent-encoded")?;
        if path.is_empty() || path.ends_with('/') {
            return Err(format!("no database file ({scheme}:///PATH/TO/FILE)"));
        }
        let path = std::path::absolute(&path).map_err(|e| format!("the file path: {e}"))?;
        Ok(Self {
            engine,
            user: None,
            password: None,
            host: String::new(),
            port: 0,
            database: path.to_string_lossy().into_owned(),
        })
    }

    /// `[USER[:PASSWORD]@]HOST[:PORT]/DATABASE` (after the `://`): a server.
    fn parse_server(engine: Engine, rest: &str) -> Result<Self, String> {
        let (authority, database) = match rest.split_once('/') {
            Some(split) => split,
            // Redis: database 0 unless given.
            None if engine == Engine::Redis => (rest, "0"),
            None => return Err("no database name".to_owned()),
        };
        let database = parse_database(engine, database)?;
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => parse_credentials(c)?,
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or("unclosed '[' in the host")?;
            (host.to_owned(), after.strip_prefix(':'))
        } else {
            match host_port.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (host_port.to_owned(), None),
            }
        };
        let port = match port {
            None | Some("") => engine.default_port(),
            Some(p) => p.parse().map_err(|_| "the port is not a number from 1 to 65535")?,
        };
        Ok(Self {
            engine,
            user,
            password,
            host: if host.is_empty() { "localhost".into() } else { host },
            port,
            database,
        })
    }

    /// The password, if the URL has one: for the clients that connect, never for display.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The same server, another database.
    pub(crate) fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }
}

/// A server URL's database name, decoded and checked.
fn parse_database(engine: Engine, database: &str) -> Result<String, String> {
    let database = if engine == Engine::Redis && database.is_empty() {
        "0"
    } else {
        database
    };
    if engine == Engine::Redis && database.parse::<u32>().is_err() {
        return Err("a Redis database is a number (redis://HOST:PORT/0)".to_owned());
    }
    let database = percent_decode(database).ok_or("the database name is badly percent-encoded")?;
    if database.is_empty() {
        return Err("no database name".to_owned());
    }
    if !database
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
    {
        return Err("the database name may hold only ASCII letters, digits, '_', '-' and '$'".to_owned());
    }
    Ok(database)
}

/// `USER[:PASSWORD]`, decoded; an empty user is none.
fn parse_credentials(credentials: &str) -> Result<(Option<String>, Option<String>), String> {
    let (user, password) = match credentials.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (credentials, None),
    };
    let user = percent_decode(user).ok_or("the user name is badly percent-encoded")?;
    let password = password
        .map(|p| percent_decode(p).ok_or("the password is badly percent-encoded"))
        .transpose()?;
    Ok(((!user.is_empty()).then_some(user), password))
}

/// A URL (or what was meant as one) fit to print: its password, whatever
/// stands between the first `:` of the credentials and their last `@`,
/// written `***` (`postgres://app:***@db.example/orders`). Works on text
/// that does not parse as well, so that a mistyped URL is shown without its
/// secret too; text without credentials is returned as it is.
pub fn redact(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, text),
    };
    let redacted = match rest.rsplit_once('@') {
        Some((credentials, after)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{after}"),
            None => rest.to_owned(),
        },
        None => rest.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{redacted}"),
        None => redacted,
    }
}

/// The URL schemes of databases a plan's `sources` may name for logical
/// dumps (`crate::dump`).
pub const DATABASE_SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "sqlite",
    "redis",
    "duckdb",
];

/// Whether a plan source is a database URL (a logical dump) rather than an S3 location.
pub fn is_database_url(source: &str) -> bool {
    source
        .split_once("://")
        .is_some_and(|(scheme, rest)| DATABASE_SCHEMES.contains(&scheme) && !rest.is_empty())
}

/// Whether a source is a Secrets Manager secret's ARN
/// (`arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`), whose value
/// holds a database's connection (`crate::db::secret::resolve_database`).
pub fn is_secret_arn(source: &str) -> bool {
    let parts: Vec<&str> = source.splitn(7, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "secretsmanager", region, account, "secret", name]
            if !partition.is_empty() && !region.is_empty() && !name.is_empty()
                && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_their_password() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/shop",
                "postgresql://postgres@127.0.0.1:5432/shop",
            ),
            (
                "postgresql://u:s%40cret@db.example/app",
                "postgresql://u@db.example:5432/app",
            ),
            ("mysql://root@127.0.0.1:3306/shop", "mysql://root@127.0.0.1:3306/shop"),
            ("mariadb://root:pw@[::1]/x_1", "mysql://root@[::1]:3306/x_1"),
            ("postgres://127.0.0.1/db", "postgresql://127.0.0.1:5432/db"),
            ("sqlite:///var/lib/app/data.db", "sqlite:///var/lib/app/data.db"),
            ("sqlite:///tmp/my%20app.db", "sqlite:///tmp/my app.db"),
            ("duckdb:///srv/lake/events.duckdb", "duckdb:///srv/lake/events.duckdb"),
            ("redis://127.0.0.1", "redis://127.0.0.1:6379/0"),
            ("redis://:s3cret@127.0.0.1:6380/", "redis://127.0.0.1:6380/0"),
            (
                "redis://default:pw@cache.example:7000/3",
                "redis://default@cache.example:7000/3",
            ),
        ];
        for (text, shown) in cases {
            let url = DatabaseUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.to_string(), shown, "{text}");
            assert_eq!(format!("{url:?}"), format!("DatabaseUrl({shown})"));
        }
        let url = DatabaseUrl::parse("postgresql://u:s%40cret@db.example/app").unwrap();
        assert_eq!(url.password.as_deref(), Some("s@cret"));
    }

    #[test]
    fn redacted_urls_keep_everything_but_the_password() {
        for (text, shown) in [
            (
                "postgres://app:hunter2@db.example/orders",
                "postgres://app:***@db.example/orders",
            ),
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            ("postgress://app:hunt@er2@db/x", "postgress://app:***@db/x"),
            ("postgres:/app:hunter2@db/x", "postgres:***@db/x"),
            ("mysql://root@127.0.0.1/shop", "mysql://root@127.0.0.1/shop"),
            ("s3://bucket/prefix", "s3://bucket/prefix"),
            ("sqlite:///var/lib/app.db", "sqlite:///var/lib/app.db"),
        ] {
            assert_eq!(redact(text), shown, "{text}");
        }
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        let cases = [
            ("http://x/db", "scheme"),
            ("postgres://u:hunter2@host:99999/db", "port"),
            ("postgres://u:hunter2@host:5432/", "no database"),
            ("postgres://u:hunter2@host:5432", "no database"),
            ("mysql://root@host/my;db", "database name"),
            ("postgres://host/db?sslmode=require", "query parameters"),
            ("shop", "no scheme"),
            ("sqlite://", "no database file"),
            ("sqlite:///var/lib/", "no database file"),
            ("duckdb://", "no database file (duckdb:///PATH/TO/FILE)"),
            ("redis://:hunter2@host:6379/zero", "a Redis database is a number"),
            ("redis://:hunter2@host:port", "port"),
            ("postgres:/u:hunter2@host/db", "no scheme"),
        ];
        for (text, expected) in cases {
            let message = DatabaseUrl::parse(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(!message.contains("hunter2"), "{text}: {message}");
        }
    }
}
