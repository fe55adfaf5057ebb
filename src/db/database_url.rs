//! The database URL: a secret (it may hold a password), shown only redacted.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A MySQL/MariaDB URL (`mysql://user:password@host:port/database`). `Debug` and `Display` show
/// it with its password masked; only connecting exposes it.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// For clap: never fails, so the value never appears in an argument error (clap would echo
    /// it, password included); a malformed URL is reported when the engine first connects.
    pub fn from_flag(raw: &str) -> Result<DatabaseUrl, Infallible> {
        Ok(DatabaseUrl::from(raw))
    }

    /// The URL itself, password included: only to connect with.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with its password masked, for logs and error messages.
    pub fn redacted(&self) -> String {
        redact(self.expose_secret())
    }

    /// The server's URL (no database in the path) and the database's name.
    pub(super) fn split(&self) -> anyhow::Result<(DatabaseUrl, String)> {
        let (server, name) = split_database_url(self.expose_secret())?;
        Ok((DatabaseUrl::from(server), name))
    }
}

impl From<String> for DatabaseUrl {
    fn from(raw: String) -> Self {
        DatabaseUrl(SecretString::from(raw))
    }
}

impl From<&str> for DatabaseUrl {
    fn from(raw: &str) -> Self {
        DatabaseUrl(SecretString::from(raw))
    }
}

impl FromStr for DatabaseUrl {
    type Err = Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::from_flag(raw)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Parsed as Diesel parses it (with `url`), so what is accepted here is what connects.
fn split_database_url(raw: &str) -> anyhow::Result<(String, String)> {
    let Ok(mut url) = Url::parse(raw) else {
        bail!("the database URL is not a URL (mysql://user:password@host:port/database)");
    };
    if url.scheme() != "mysql" {
        bail!("the database URL must start with mysql://");
    }
    let name = url.path().trim_start_matches('/').to_owned();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        bail!("the database URL must name a database made of letters, digits and underscores");
    }
    url.set_path("");
    url.set_query(None);
    url.set_fragment(None);
    Ok((url.into(), name))
}

/// The URL with its password masked; one that does not parse is not shown at all, as where its
/// password starts is unknown.
fn redact(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Fails only for URLs that cannot hold a password, which then have none.
                let _ = url.set_password(Some("***"));
            }
            url.into()
        }
        Err(_) => "(a database URL that does not parse)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_split_and_redacted() {
        let (server, name) = split_database_url("mysql://root:pw@127.0.0.1:3306/pe_1?x=y").unwrap();
        assert_eq!(server, "mysql://root:pw@127.0.0.1:3306");
        assert_eq!(name, "pe_1");
        assert!(split_database_url("mysql://root@host/").is_err());
        assert!(split_database_url("mysql://root@host/a;drop").is_err());
        assert!(split_database_url("postgres://x/y").is_err());
        assert_eq!(
            redact("mysql://root:secret@h:1/db"),
            "mysql://root:***@h:1/db"
        );
        assert_eq!(redact("mysql://root@h:1/db"), "mysql://root@h:1/db");
    }

    #[test]
    fn the_password_never_shows_in_debug_or_display() {
        let url = DatabaseUrl::from("mysql://root:hunter2-secret@db:3306/pe");
        for shown in [format!("{url:?}"), url.to_string(), url.redacted()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("root:***@db:3306/pe"), "{shown}");
        }
        let (server, _) = url.split().unwrap();
        assert!(!format!("{server:?}").contains("hunter2"));
        assert_eq!(
            server.expose_secret(),
            "mysql://root:hunter2-secret@db:3306"
        );
        assert!(!redact("mysql://root:p w@[bad/db").contains("p w"));
    }
}
