//! Connecting to PostgreSQL as libpq does, from a parsed [`PgLocation`] (its `sslmode` and
//! `sslrootcert` already taken from the URL, keyword string or `PGSSLMODE` / `PGSSLROOTCERT`): the
//! password from the location, else `PGPASSWORD`, else the password file (`passfile` /
//! `PGPASSFILE`, default `~/.pgpass`); every failure told as the server or the handshake told it,
//! never with the password.
//!
//! | sslmode | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `allow` | only when the server refuses a plain connection | as `require` |
//! | `prefer` (default) | when the server offers it | as `require` |
//! | `require` | always | not checked, unless a root certificate is there: then as `verify-ca` |
//! | `verify-ca` | always | chain up to `sslrootcert` |
//! | `verify-full` | always | chain up to `sslrootcert`, and the host name |
//!
//! The root certificate is `sslrootcert` (a PEM file, or `system` for the platform's roots, which
//! implies `verify-full`), else `~/.postgresql/root.crt` when that file exists. As in libpq,
//! Unix-domain sockets never use TLS. Unlike libpq, `prefer` does not retry without TLS after a
//! failed handshake.

use crate::location::{with_causes, PgLocation, SslMode};
use crate::pg_tls::{self, Check, MakeRustls, Roots};
use crate::StoreError;
use postgres::config::{Host, SslMode as WireMode};
use postgres::error::SqlState;
use postgres::{Client, Config};
use std::path::{Path, PathBuf};

/// Where the server certificate's trust anchors come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCert {
    None,
    File(PathBuf),
    System,
}

/// Where the password came from, for the hint after a failed password authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PasswordSource {
    Url,
    Env,
    File(PathBuf),
}

/// Everything needed to connect, resolved from the URL and the environment.
pub(crate) struct Settings {
    config: Config,
    sslmode: SslMode,
    /// Every host is a Unix-domain socket directory: no TLS, whatever `sslmode` says.
    socket_only: bool,
    rootcert: RootCert,
    password: Option<PasswordSource>,
    /// The password file looked at (whether or not it existed), for messages.
    password_file: Option<PathBuf>,
    /// `host:port/database`, for messages.
    target: String,
    /// Said on stderr before connecting (an ignored password file, a missing sslrootcert).
    warnings: Vec<String>,
}

/// Opens a connection to `location`, with the password and root certificate looked up in the
/// process environment.
pub(crate) fn connect(location: &PgLocation) -> crate::Result<Client> {
    let settings = Settings::resolve(location, &|name| std::env::var(name).ok())?;
    for warning in &settings.warnings {
        eprintln!("warning: {warning}");
    }
    settings.connect()
}

impl Settings {
    /// `env` looks up an environment variable (the process environment, or a test's): `HOME`
    /// and `PGPASSWORD`; the location already holds what the other variables supply.
    pub(crate) fn resolve(
        location: &PgLocation,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> crate::Result<Settings> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut config = location.config.clone();
        let mut warnings = Vec::new();

        let rootcert_setting = location.sslrootcert.clone();
        let system = rootcert_setting.as_deref() == Some("system");
        let sslmode = match location.sslmode {
            Some(mode) => mode,
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        // libpq ignores sslmode on Unix-domain sockets: the server never speaks TLS there.
        let socket_only = config.get_hostaddrs().is_empty()
            && !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| matches!(h, Host::Unix(_)));
        let home = env("HOME").map(PathBuf::from);
        let rootcert = match rootcert_setting {
            Some(_) if system => {
                if sslmode != SslMode::VerifyFull {
                    return Err(StoreError::PgConfig(format!(
                        "weak sslmode {:?} may not be used with sslrootcert=system (use \
                         \"verify-full\")",
                        sslmode.name()
                    )));
                }
                RootCert::System
            }
            _ if sslmode == SslMode::Disable || socket_only => RootCert::None,
            Some(path) => {
                let path = PathBuf::from(path);
                if path.exists() {
                    RootCert::File(path)
                } else if sslmode.verifies() {
                    return Err(missing_root(&path));
                } else {
                    warnings.push(format!(
                        "sslrootcert {} does not exist: the server certificate is not checked \
                         (sslmode={})",
                        path.display(),
                        sslmode.name()
                    ));
                    RootCert::None
                }
            }
            None => {
                let default = home.as_ref().map(|h| h.join(".postgresql/root.crt"));
                match default {
                    Some(path) if path.exists() => RootCert::File(path),
                    Some(path) if sslmode.verifies() => return Err(missing_root(&path)),
                    None if sslmode.verifies() => {
                        return Err(StoreError::PgConfig(format!(
                            "sslmode={} needs a root certificate: give sslrootcert=FILE (or \
                             PGSSLROOTCERT)",
                            sslmode.name()
                        )))
                    }
                    _ => RootCert::None,
                }
            }
        };

        // libpq's default user is the operating system's; the `postgres` client picks the same
        // one, but the password file lookup needs it now.
        if config.get_user().is_none() {
            if let Ok(user) = whoami::username() {
                config.user(&user);
            }
        }
        let user = config.get_user().unwrap_or_default().to_owned();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let dbname = config.get_dbname().unwrap_or(&user).to_owned();
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(dir)) => dir.display().to_string(),
            None => config
                .get_hostaddrs()
                .first()
                .map_or_else(|| "localhost".into(), |a| a.to_string()),
        };

        let password_file = location
            .passfile
            .clone()
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
        let password = if config.get_password().is_some_and(|p| !p.is_empty()) {
            Some(PasswordSource::Url)
        } else if let Some(pw) = env("PGPASSWORD") {
            config.password(pw);
            Some(PasswordSource::Env)
        } else {
            let pass_host = match config.get_hosts().first() {
                Some(Host::Unix(dir)) if is_default_socket_dir(dir) => "localhost".to_owned(),
                _ => host.clone(),
            };
            password_file.as_ref().and_then(|file| {
                let text = read_password_file(file, &mut warnings)?;
                let pw = lookup_password(&text, &pass_host, &port.to_string(), &dbname, &user)?;
                config.password(pw);
                Some(PasswordSource::File(file.clone()))
            })
        };

        Ok(Settings {
            config,
            sslmode,
            socket_only,
            rootcert,
            password,
            password_file,
            target: format!("{host}:{port}/{dbname}"),
            warnings,
        })
    }

    fn check(&self) -> crate::Result<Check> {
        let roots = match &self.rootcert {
            RootCert::None => None,
            RootCert::File(path) => Some(Roots::from_file(path)),
            RootCert::System => Some(Roots::system()),
        }
        .transpose()
        .map_err(StoreError::PgConfig)?;
        Ok(match (self.sslmode, roots) {
            (SslMode::VerifyFull, Some(roots)) => Check::ChainAndName(roots),
            (_, Some(roots)) => Check::Chain(roots),
            (_, None) => Check::Nothing,
        })
    }

    pub(crate) fn connect(mut self) -> crate::Result<Client> {
        let plain = self.sslmode == SslMode::Disable || self.socket_only;
        let check = if plain { Check::Nothing } else { self.check()? };
        let tls = MakeRustls::new(check).map_err(StoreError::PgConfig)?;
        self.config.ssl_mode(match self.sslmode {
            _ if plain => WireMode::Disable,
            SslMode::Disable | SslMode::Allow => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        });
        match self.config.connect(tls.clone()) {
            Ok(client) => Ok(client),
            // allow: TLS only when the server refused the plain connection (over TCP).
            Err(e) if self.sslmode == SslMode::Allow && !plain && e.as_db_error().is_some() => {
                self.config.ssl_mode(WireMode::Require);
                self.config.connect(tls).map_err(|e| self.error(&e))
            }
            Err(e) => Err(self.error(&e)),
        }
    }

    fn error(&self, e: &postgres::Error) -> StoreError {
        let mut message = if let Some(h) = pg_tls::handshake_error(e) {
            format!("TLS: {h}")
        } else if let Some(db) = e.as_db_error() {
            format!("the server said: {db}")
        } else if self.password.is_none() && with_causes(e).ends_with("password missing") {
            format!(
                "the server asks for a password, and there is none in the URL, PGPASSWORD or \
                 the password file{}",
                self.password_file
                    .as_ref()
                    .map_or_else(String::new, |f| format!(" {}", f.display()))
            )
        } else {
            with_causes(e)
        };
        if e.code() == Some(&SqlState::INVALID_PASSWORD) {
            match &self.password {
                Some(PasswordSource::Env) => message.push_str(" (password from PGPASSWORD)"),
                Some(PasswordSource::File(path)) => message.push_str(&format!(
                    " (password from the password file {})",
                    path.display()
                )),
                _ => {}
            }
        }
        StoreError::PgConnect {
            target: format!("{} (sslmode={})", self.target, self.sslmode.name()),
            message,
        }
    }
}

fn missing_root(path: &Path) -> StoreError {
    StoreError::PgConfig(format!(
        "root certificate file {} does not exist: give sslrootcert=FILE (or PGSSLROOTCERT), use \
         sslrootcert=system, or choose an sslmode that does not verify the server",
        path.display()
    ))
}

/// The socket directories of the PostgreSQL packages and of builds from source: libpq matches
/// them as `localhost` in the password file.
fn is_default_socket_dir(dir: &Path) -> bool {
    ["/var/run/postgresql", "/run/postgresql", "/tmp"]
        .iter()
        .any(|d| dir == Path::new(d))
}

/// The password file's text, or `None` (after a warning) when libpq would ignore it: not a
/// plain file, or readable by group or others. A missing file is silently `None`.
fn read_password_file(path: &Path, warnings: &mut Vec<String>) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        warnings.push(format!(
            "password file {} is not a plain file: ignored",
            path.display()
        ));
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            warnings.push(format!(
                "password file {} has group or world access; permissions should be u=rw (0600) \
                 or less: ignored",
                path.display()
            ));
            return None;
        }
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            warnings.push(format!(
                "password file {} is unreadable ({e}): ignored",
                path.display()
            ));
            None
        }
    }
}

/// The password of the first line of a `.pgpass` text matching the connection:
/// `hostname:port:database:username:password`, `*` matching any value of a field, `\` escaping
/// `:` and `\`, `#` starting a comment line.
fn lookup_password(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .find_map(|line| {
            let mut rest = line;
            for want in [host, port, dbname, user] {
                rest = match_field(rest, want)?;
            }
            Some(unescape_password(rest))
        })
}

/// Matches the line's first field against `want`; what follows the field's `:` when it does.
fn match_field<'a>(line: &'a str, want: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut chars = line.char_indices();
    let mut want = want.chars();
    loop {
        let (i, c) = chars.next()?;
        let (c, escaped) = match c {
            '\\' => (chars.next()?.1, true),
            c => (c, false),
        };
        if c == ':' && !escaped {
            return want.next().is_none().then(|| &line[i + 1..]);
        }
        if want.next() != Some(c) {
            return None;
        }
    }
}

/// The password field: up to an unescaped `:` or the end of the line, escapes removed.
fn unescape_password(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Parses `url` and resolves it, both with `vars` as the environment.
    fn resolve(url: &str, vars: &[(&str, &str)]) -> crate::Result<Settings> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = |name: &str| vars.get(name).cloned();
        match crate::StoreLocation::parse_with_env(url, &env)? {
            crate::StoreLocation::Postgres(location) => Settings::resolve(&location, &env),
            crate::StoreLocation::Sqlite(_) => panic!("{url} is no PostgreSQL location"),
        }
    }

    fn message(r: crate::Result<Settings>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn password_file_fields_wildcards_and_escapes() {
        let text = "# comment\n\
                    other:5432:db:u:wrong\n\
                    db.example:*:*:u:first\\:part\\\\two:ignored\n\
                    *:*:*:u:fallback\r\n";
        let look = |host, db, user| lookup_password(text, host, "5432", db, user);
        assert_eq!(
            look("db.example", "x", "u").as_deref(),
            Some("first:part\\two")
        );
        assert_eq!(look("elsewhere", "x", "u").as_deref(), Some("fallback"));
        assert_eq!(look("other", "db", "u").as_deref(), Some("wrong"));
        assert_eq!(look("other", "db", "v"), None);
        // Escaped colons in a matched field, and a prefix is no match.
        assert_eq!(
            lookup_password("h\\:1:5432:d:u:pw", "h:1", "5432", "d", "u").as_deref(),
            Some("pw")
        );
        assert_eq!(
            lookup_password("host:5432:d:u:pw", "ho", "5432", "d", "u"),
            None
        );
        assert_eq!(
            lookup_password("host:5432:d:u:pw", "hostx", "5432", "d", "u"),
            None
        );
        // A line with too few fields matches nothing.
        assert_eq!(lookup_password("*:*:*:u", "h", "5432", "d", "u"), None);
    }

    #[cfg(unix)]
    #[test]
    fn password_file_readable_by_others_is_ignored_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "*:*:*:*:secret\n").unwrap();
        let url = "postgres://u@db.example:5433/d";
        let pgpass = file.to_str().unwrap();
        for (mode, found) in [(0o600, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let s = resolve(url, &[("PGPASSFILE", pgpass)]).unwrap();
            assert_eq!(s.config.get_password().is_some(), found, "mode {mode:o}");
            assert_eq!(s.warnings.len(), usize::from(!found), "mode {mode:o}");
            if !found {
                assert!(
                    s.warnings[0].contains("group or world access"),
                    "{:?}",
                    s.warnings
                );
            }
        }
        // The URL's password, then PGPASSWORD, come before the file.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = resolve(url, &[("PGPASSFILE", pgpass), ("PGPASSWORD", "env")]).unwrap();
        assert_eq!(s.config.get_password(), Some(&b"env"[..]));
        assert_eq!(s.password, Some(PasswordSource::Env));
        let s = resolve("postgres://u:url@h/d", &[("PGPASSWORD", "env")]).unwrap();
        assert_eq!(s.config.get_password(), Some(&b"url"[..]));
        // ~/.pgpass by default.
        std::fs::copy(&file, dir.path().join(".pgpass")).unwrap();
        let home = dir.path().to_str().unwrap();
        let s = resolve(url, &[("HOME", home)]).unwrap();
        assert_eq!(
            s.password,
            Some(PasswordSource::File(dir.path().join(".pgpass")))
        );
    }

    #[test]
    fn sslmode_and_rootcert_from_the_url_else_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca with space.pem");
        std::fs::write(&ca, "not read until connecting").unwrap();
        let ca_str = ca.to_str().unwrap();
        let encoded = ca_str.replace(' ', "%20");

        let s = resolve(
            &format!(
                "postgres://u@h/d?sslmode=verify-full&sslrootcert={encoded}&application_name=x"
            ),
            &[("PGSSLMODE", "disable")],
        )
        .unwrap();
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.rootcert, RootCert::File(ca.clone()));
        assert_eq!(s.config.get_application_name(), Some("x"));

        let s = resolve(
            "postgres://u@h/d",
            &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", ca_str)],
        )
        .unwrap();
        assert_eq!(
            (s.sslmode, s.rootcert),
            (SslMode::VerifyCa, RootCert::File(ca.clone()))
        );

        // Default: prefer, no root certificate unless ~/.postgresql/root.crt exists; then even
        // require verifies the chain.
        let home = dir.path().to_str().unwrap();
        let s = resolve("postgres://u@h/d", &[("HOME", home)]).unwrap();
        assert_eq!((s.sslmode, s.rootcert), (SslMode::Prefer, RootCert::None));
        std::fs::create_dir(dir.path().join(".postgresql")).unwrap();
        std::fs::copy(&ca, dir.path().join(".postgresql/root.crt")).unwrap();
        let s = resolve("postgres://u@h/d?sslmode=require", &[("HOME", home)]).unwrap();
        assert_eq!(
            s.rootcert,
            RootCert::File(dir.path().join(".postgresql/root.crt"))
        );

        // sslrootcert=system implies verify-full and refuses weaker modes.
        let s = resolve("postgres://u@h/d?sslrootcert=system", &[]).unwrap();
        assert_eq!(
            (s.sslmode, s.rootcert),
            (SslMode::VerifyFull, RootCert::System)
        );
        assert!(message(resolve(
            "postgres://u@h/d?sslrootcert=system&sslmode=require",
            &[]
        ))
        .contains("weak sslmode \"require\""));

        // Verifying modes need a root certificate; unknown modes are refused.
        let missing = dir.path().join("missing.pem");
        let url = format!(
            "postgres://u@h/d?sslmode=verify-ca&sslrootcert={}",
            missing.display()
        );
        assert!(message(resolve(&url, &[])).contains("does not exist"));
        let s = resolve(&url.replace("verify-ca", "require"), &[]).unwrap();
        assert_eq!(s.rootcert, RootCert::None);
        assert!(s.warnings[0].contains("not checked"), "{:?}", s.warnings);
        assert!(
            message(resolve("postgres://u@h/d?sslmode=verify", &[])).contains("not one of disable")
        );
    }

    #[test]
    fn unix_sockets_never_use_tls_nor_need_a_root_certificate() {
        let s = resolve(
            "postgres://u@/d?host=/run/postgresql&sslmode=verify-full",
            &[("HOME", "relative-home-without-root-crt")],
        )
        .unwrap();
        assert!(s.socket_only);
        assert_eq!(s.rootcert, RootCert::None);
        assert_eq!(s.target, "/run/postgresql:5432/d");
        let s = resolve("postgres://u@db.example/d?sslmode=verify-full", &[]);
        assert!(message(s).contains("root certificate"));
    }

    #[test]
    fn target_names_host_port_and_database_never_the_password() {
        let s = resolve("postgresql://u:secret@db.example:6543/store", &[]).unwrap();
        assert_eq!(s.target, "db.example:6543/store");
        let e = message(resolve("postgres://u:secret@h/d?sslmode=bogus", &[]));
        assert!(!e.contains("secret"), "{e}");
    }
}
