//! Where a store is: `sqlite:PATH`, a PostgreSQL URL or a libpq keyword/value string, parsed once
//! into a [`StoreLocation`] that opens the store and, through `Display`, names it in every message
//! and report without its password.
//!
//! PostgreSQL locations follow libpq
//! (<https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING>):
//! `postgres[ql]://[user[:password]@][host][:port][,...][/dbname][?name=value&...]`, or
//! `host=... port=... dbname=...` with `'quoted values'` and `\` escapes. A parameter that neither
//! gives comes from its environment variable (see [`ENV_DEFAULTS`]). Both forms become one list of
//! libpq parameters, read and checked by the `postgres` client's own parser (`Config::from_str`),
//! except the three it does not know in libpq's meaning: `sslmode` (it lacks `allow`, `verify-ca`
//! and `verify-full`), `sslrootcert` and `passfile`, which are taken from the same list.
//!
//! A URL the client and URL syntax would read differently is refused, never guessed at: the
//! client takes the user name and password up to the first `@`, URL syntax ends them at the first
//! `/` or `?`. So `postgres://aoc:pa?ss/w0rd@host/db?sslmode=require` (whose `sslmode` a split at
//! the first `?` would lose) is an error that says to write `?` as `%3F` and `/` as `%2F`.

use crate::{Engine, StoreError};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use postgres::Config;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// libpq's environment variables, each with the parameter it supplies when the location has none.
/// `PGPASSWORD` is not here: the password is looked up when connecting (after the URL's, before
/// the password file's), so that a message can say where a refused password came from.
pub const ENV_DEFAULTS: [(&str, &str); 11] = [
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("passfile", "PGPASSFILE"),
];

/// The variables a PostgreSQL store location reads, as rows of a `--help` "Environment:" section.
pub const ENV_HELP: &[(&str, &str)] = &[
    (
        "PGHOST, PGHOSTADDR",
        "the server when the store names none (default: the local socket)",
    ),
    (
        "PGPORT",
        "its port when the store names none (default 5432)",
    ),
    (
        "PGUSER, PGDATABASE",
        "user and database when the store names none (default: the login name)",
    ),
    ("PGOPTIONS", "options when the store has none"),
    ("PGAPPNAME", "application_name when the store has none"),
    (
        "PGCONNECT_TIMEOUT",
        "connect_timeout (seconds) when the store has none",
    ),
    (
        "PGSSLMODE",
        "sslmode when the store has none (default prefer)",
    ),
    ("PGSSLROOTCERT", "sslrootcert when the store has none"),
    ("PGPASSWORD", "the password when the store has none"),
    (
        "PGPASSFILE",
        "the password file (default ~/.pgpass) when neither has one",
    ),
    ("HOME", "~/.pgpass and ~/.postgresql/root.crt"),
];

/// libpq's connection keywords (PostgreSQL 17) and the client's `keepalives_retries`: a name
/// outside this list is refused without being shown, since a stray space can make a piece of a
/// password look like a keyword. Known names the client does not support (`sslcert`, `service`)
/// are refused by its parser, by name.
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "keepalives_retries",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// How to write reserved characters in a URL's user name and password.
const ENCODING_HINT: &str = "percent-encode reserved characters in the user name and password: \
                             '/' as %2F, '?' as %3F, '#' as %23, '@' as %40, ':' as %3A, '%' as %25";

/// A store: where it is and which engine runs it. `Display` is the redacted form.
// A handful per process, never in a hot loop: the variants' size difference is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum StoreLocation {
    /// A SQLite database file (`:memory:`: a private in-memory database).
    Sqlite(String),
    Postgres(PgLocation),
}

/// A PostgreSQL database: the client's configuration (password included, for connecting) and the
/// libpq settings the client does not know. `Display` shows every parameter but the password.
#[derive(Clone)]
pub struct PgLocation {
    /// Every parameter given or taken from the environment, in that order (the last of a repeated
    /// one wins, as in libpq), without the password: what messages show.
    params: Vec<(String, String)>,
    /// A password was part of the URL or keyword string (shown as `***`).
    has_password: bool,
    pub(crate) config: Config,
    pub(crate) sslmode: Option<SslMode>,
    pub(crate) sslrootcert: Option<String>,
    pub(crate) passfile: Option<PathBuf>,
}

impl StoreLocation {
    /// Parses a store argument, with libpq's defaults from the process environment.
    pub fn parse(s: &str) -> crate::Result<StoreLocation> {
        StoreLocation::parse_with_env(s, &|name| std::env::var(name).ok())
    }

    /// Parses a store argument; `env` looks up an environment variable (a test's, or the
    /// process's).
    ///
    /// - `sqlite:PATH` or `sqlite://PATH` (`sqlite:///abs/path`, `sqlite:rel.db`,
    ///   `sqlite::memory:`);
    /// - `postgres://...` or `postgresql://...`: a libpq URL;
    /// - `host=... dbname=...`: a libpq keyword/value string.
    pub fn parse_with_env(
        s: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> crate::Result<StoreLocation> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::BadUrl("sqlite: with no path".into()));
            }
            return Ok(StoreLocation::Sqlite(path.to_owned()));
        }
        let given = if let Some(rest) = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            url_params(rest)?
        } else if s.contains('=') {
            keyword_params(s)?
        } else {
            // Never echoed: a mistyped argument may be a password.
            return Err(StoreError::BadUrl(match scheme(s) {
                Some(scheme) => format!("scheme {scheme:?}"),
                None => "argument (no sqlite: or postgres:// scheme, no key=value)".into(),
            }));
        };
        PgLocation::new(given, env).map(StoreLocation::Postgres)
    }

    pub fn engine(&self) -> Engine {
        match self {
            StoreLocation::Sqlite(_) => Engine::Sqlite,
            StoreLocation::Postgres(_) => Engine::Postgres,
        }
    }

    /// The location without its password, for messages, reports and JSON (the `Display` form).
    pub fn redacted(&self) -> String {
        self.to_string()
    }
}

impl FromStr for StoreLocation {
    type Err = StoreError;

    fn from_str(s: &str) -> crate::Result<StoreLocation> {
        StoreLocation::parse(s)
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite://{path}"),
            StoreLocation::Postgres(pg) => pg.fmt(f),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgLocation({self})")
    }
}

/// What a URL or keyword string says: its parameters in order, and the password apart (bytes: a
/// URL's percent-encoded password need not be UTF-8).
#[derive(Default)]
struct Given {
    params: Vec<(String, String)>,
    password: Option<Vec<u8>>,
}

impl Given {
    fn push(&mut self, key: &str, value: String) {
        if key == "password" {
            self.password = Some(value.into_bytes());
        } else {
            self.params.push((key.to_owned(), value));
        }
    }
}

impl PgLocation {
    fn new(given: Given, env: &dyn Fn(&str) -> Option<String>) -> crate::Result<PgLocation> {
        if given
            .params
            .iter()
            .any(|(k, _)| !KEYWORDS.contains(&k.as_str()))
        {
            return Err(StoreError::PgConfig(
                "a parameter name that is no libpq keyword (not shown: it may be part of a \
                 password; quote a value that holds spaces: key='a value')"
                    .into(),
            ));
        }
        // libpq: the last of a repeated parameter wins, and an empty value is no value.
        let mut params: Vec<(String, String)> = Vec::new();
        for (key, value) in given.params {
            match params.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => params.push((key, value)),
            }
        }
        params.retain(|(_, v)| !v.is_empty());
        for (key, var) in ENV_DEFAULTS {
            if !params.iter().any(|(k, _)| k == key) {
                if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                    params.push((key.to_owned(), value));
                }
            }
        }

        let (mut sslmode, mut sslrootcert, mut passfile) = (None, None, None);
        let mut keywords = String::new();
        for (key, value) in &params {
            match key.as_str() {
                "sslmode" => sslmode = Some(SslMode::from_name(value)?),
                "sslrootcert" => sslrootcert = Some(value.clone()),
                "passfile" => passfile = Some(PathBuf::from(value)),
                _ => {
                    keywords.push_str(key);
                    keywords.push_str("='");
                    for c in value.chars() {
                        if matches!(c, '\'' | '\\') {
                            keywords.push('\\');
                        }
                        keywords.push(c);
                    }
                    keywords.push_str("' ");
                }
            }
        }
        // The password never goes through this text: the client's parse errors stay free of it.
        let mut config = Config::from_str(&keywords)
            .map_err(|e| StoreError::PgConfig(format!("store location: {}", with_causes(&e))))?;
        let has_password = given.password.as_ref().is_some_and(|p| !p.is_empty());
        if let Some(password) = given.password.filter(|p| !p.is_empty()) {
            config.password(password);
        }
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            let port = config.get_ports().first().copied().unwrap_or(5432);
            config.host_path(default_socket_dir(port));
        }
        Ok(PgLocation {
            params,
            has_password,
            config,
            sslmode,
            sslrootcert,
            passfile,
        })
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// libpq's default when no host is given: the server's Unix-domain socket, in the directory of the
/// PostgreSQL packages (`/var/run/postgresql`) or of builds from source (`/tmp`), whichever holds
/// the socket for `port`.
fn default_socket_dir(port: u16) -> &'static Path {
    const DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];
    let socket = format!(".s.PGSQL.{port}");
    DIRS.iter()
        .map(Path::new)
        .find(|dir| dir.join(&socket).exists())
        .or_else(|| DIRS.iter().map(Path::new).find(|dir| dir.is_dir()))
        .unwrap_or(Path::new(DIRS[1]))
}

/// What a URL component may hold unencoded when shown: letters, digits and `-._~` (RFC 3986's
/// unreserved set); control and non-ASCII characters are always encoded.
const COMPONENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'!')
    .add(b'"')
    .add(b'#')
    .add(b'$')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b',')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// An IPv6 address inside `[...]`: its colons stay.
const IPV6: &AsciiSet = &COMPONENT.remove(b':');

impl fmt::Display for PgLocation {
    /// `postgres://USER[:***]@HOST:PORT/DBNAME?name=value&...`: the password, when one was given,
    /// as `***`; every value percent-encoded, so no control character reaches a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| utf8_percent_encode(s, COMPONENT).to_string();
        f.write_str("postgres://")?;
        if let Some(user) = self.param("user") {
            f.write_str(&enc(user))?;
        }
        if self.has_password {
            f.write_str(":***")?;
        }
        if self.param("user").is_some() || self.has_password {
            f.write_str("@")?;
        }
        let hosts: Vec<&str> = self
            .param("host")
            .map_or(vec![], |h| h.split(',').collect());
        let ports: Vec<&str> = self
            .param("port")
            .map_or(vec![], |p| p.split(',').collect());
        // Ports go with their hosts when they pair up; otherwise they are a parameter.
        let ports_in_authority = ports.is_empty()
            || ports.len() == hosts.len()
            || (hosts.is_empty() && ports.len() == 1);
        if hosts.is_empty() && ports_in_authority && ports.len() == 1 {
            write!(f, ":{}", enc(ports[0]))?;
        }
        for (i, host) in hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if host.contains(':') && !host.starts_with('/') {
                write!(f, "[{}]", utf8_percent_encode(host, IPV6))?;
            } else {
                f.write_str(&enc(host))?;
            }
            if ports_in_authority {
                if let Some(port) = ports.get(i).filter(|p| !p.is_empty()) {
                    write!(f, ":{}", enc(port))?;
                }
            }
        }
        if let Some(dbname) = self.param("dbname") {
            write!(f, "/{}", enc(dbname))?;
        }
        let mut separator = '?';
        for (key, value) in &self.params {
            let shown_above = matches!(key.as_str(), "user" | "host" | "dbname")
                || (key == "port" && ports_in_authority);
            if !shown_above {
                write!(f, "{separator}{}={}", enc(key), enc(value))?;
                separator = '&';
            }
        }
        Ok(())
    }
}

/// A URL scheme (`mysql` of `mysql://...`), if `s` starts with one and `://`.
fn scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

fn url_error(message: String) -> StoreError {
    StoreError::PgConfig(format!("store URL: {message}"))
}

/// The parameters of a libpq URL, `rest` being what follows `postgres://`.
fn url_params(rest: &str) -> crate::Result<Given> {
    if rest.contains('#') {
        return Err(url_error(format!(
            "an unencoded '#' (URL syntax ends the URL there, the PostgreSQL client does not); \
             {ENCODING_HINT}"
        )));
    }
    // The authority ends at the first '/' or '?'; the client reads the user info up to the first
    // '@' wherever it is. They agree only when that '@' is inside the authority.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    if rest.find('@').is_some_and(|at| at > end) {
        let c = &rest[end..=end];
        return Err(url_error(format!(
            "ambiguous: an '@' follows an unencoded '{c}', so the user name and password end at \
             a different place for the PostgreSQL client than for URL syntax; {ENCODING_HINT} \
             (and any other '@' as %40)"
        )));
    }
    let (authority, tail) = rest.split_at(end);
    let mut given = Given::default();
    let hostspec = match authority.split_once('@') {
        Some((userinfo, hostspec)) => {
            if hostspec.contains('@') {
                return Err(url_error(format!(
                    "ambiguous: more than one '@' before the host; {ENCODING_HINT}"
                )));
            }
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let bad_percent = || {
                url_error(
                    "the user name or password holds a '%' that does not start a \
                     percent-encoded byte (%XX): write a '%' as %25"
                        .into(),
                )
            };
            given.push("user", decode(user).map_err(|_| bad_percent())?);
            if let Some(password) = password {
                given.password = Some(decode_bytes(password).ok_or_else(bad_percent)?);
            }
            hostspec
        }
        None => authority,
    };

    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    let chunks = hostspec.split(',').take_while(|_| !hostspec.is_empty());
    for chunk in chunks {
        let (host, port) = match chunk.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| url_error("a '[' with no ']' in the host".into()))?;
                let port = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or_else(|| {
                        url_error("something other than ':PORT' after a ']' in the host".into())
                    })?),
                };
                (host, port)
            }
            None => match chunk.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (chunk, None),
            },
        };
        hosts.push(decode(host).map_err(|m| url_error(format!("host: {m}")))?);
        ports.push(decode(port.unwrap_or("")).map_err(|m| url_error(format!("port: {m}")))?);
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        given.push("host", hosts.join(","));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        given.push("port", ports.join(","));
    }

    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    if let Some(dbname) = path.strip_prefix('/') {
        given.push(
            "dbname",
            decode(dbname).map_err(|m| url_error(format!("database name: {m}")))?,
        );
    }
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        if param.is_empty() {
            continue;
        }
        let (key, value) = param
            .split_once('=')
            .ok_or_else(|| url_error("a query parameter without '=' (write name=value)".into()))?;
        let key = decode(key).map_err(|m| url_error(format!("parameter name: {m}")))?;
        let value = decode(value).map_err(|m| url_error(format!("a parameter value: {m}")))?;
        given.push(&key, value);
    }
    Ok(given)
}

/// Percent-decodes a URL component into UTF-8, refusing a stray `%` as libpq does.
fn decode(s: &str) -> Result<String, String> {
    let bytes = decode_bytes(s).ok_or("a '%' that does not start a percent-encoded byte (%XX)")?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 once percent-decoded".into())
}

fn decode_bytes(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let well_formed = b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let decoded: Vec<u8> = percent_decode_str(s).collect();
    // A NUL would end the value inside libpq; it is no part of any name or password.
    (well_formed && !decoded.contains(&0)).then_some(decoded)
}

/// The parameters of a libpq keyword/value string: `keyword = value` separated by whitespace, a
/// value either bare (up to whitespace) or in single quotes, `\` escaping the next character.
/// Errors name no value (one may be a password).
fn keyword_params(s: &str) -> crate::Result<Given> {
    let error = |m: &str| StoreError::PgConfig(format!("connection string: {m}"));
    let mut given = Given::default();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(given);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|&c| !c.is_whitespace() && c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return Err(error(
                "expected keyword=value pairs separated by spaces (quote a value that holds \
                 spaces: key='a value')",
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(error("a quoted value has no closing quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                match c {
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            if value.is_empty() {
                return Err(error(
                    "a keyword with no value (write key='' for an empty one)",
                ));
            }
        }
        given.push(&key, value);
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// `verify-full` for "verify-full"; any other text is refused, naming the choices.
    pub(crate) fn from_name(name: &str) -> crate::Result<SslMode> {
        SslMode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                StoreError::PgConfig(format!(
                    "sslmode {name:?} is not one of disable, allow, prefer, require, verify-ca, \
                     verify-full"
                ))
            })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub(crate) fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// An error and its causes, `: `-separated (the `postgres` client's errors show only their kind).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres::config::Host;
    use std::collections::HashMap;

    fn hosts(pg: &PgLocation) -> Vec<String> {
        pg.config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect()
    }

    fn parse(s: &str, vars: &[(&str, &str)]) -> crate::Result<StoreLocation> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StoreLocation::parse_with_env(s, &|name| vars.get(name).cloned())
    }

    fn pg(s: &str, vars: &[(&str, &str)]) -> PgLocation {
        match parse(s, vars) {
            Ok(StoreLocation::Postgres(pg)) => pg,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn refused(s: &str) -> String {
        match parse(s, &[]) {
            Ok(l) => panic!("{s} parsed as {l}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sqlite_with_and_without_slashes() {
        for (arg, path) in [
            ("sqlite:///abs/store.db", "/abs/store.db"),
            ("sqlite:/abs/store.db", "/abs/store.db"),
            ("sqlite://rel/store.db", "rel/store.db"),
            ("sqlite:rel.db", "rel.db"),
            ("sqlite::memory:", ":memory:"),
            ("sqlite://:memory:", ":memory:"),
        ] {
            match parse(arg, &[]).unwrap() {
                StoreLocation::Sqlite(p) => assert_eq!(p, path, "{arg}"),
                other => panic!("{arg}: {other:?}"),
            }
        }
        assert_eq!(
            parse("sqlite:rel.db", &[]).unwrap().to_string(),
            "sqlite://rel.db"
        );
        for bad in ["sqlite:", "sqlite://"] {
            assert!(refused(bad).contains("sqlite: with no path"), "{bad}");
        }
    }

    #[test]
    fn url_parts_are_percent_decoded_and_passwords_never_shown() {
        let password = "/?@#%:";
        let url = "postgresql://aoc:%2F%3F%40%23%25%3A@db.example:6543/st%20ore\
                   ?sslmode=verify-full&sslrootcert=/etc/ca%20file.pem&application_name=a%26b";
        let l = pg(url, &[]);
        assert_eq!(l.config.get_user(), Some("aoc"));
        assert_eq!(l.config.get_password(), Some(password.as_bytes()));
        assert_eq!(hosts(&l), ["db.example"]);
        assert_eq!(l.config.get_ports(), [6543]);
        assert_eq!(l.config.get_dbname(), Some("st ore"));
        assert_eq!(l.config.get_application_name(), Some("a&b"));
        assert_eq!(l.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(l.sslrootcert.as_deref(), Some("/etc/ca file.pem"));
        let shown = l.to_string();
        assert_eq!(
            shown,
            "postgres://aoc:***@db.example:6543/st%20ore?sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca%20file.pem&application_name=a%26b"
        );
        assert!(!format!("{l:?}").contains("%2F%3F"), "{l:?}");

        // A password as a query parameter is a password too.
        let l = pg("postgres://aoc@h/d?password=hunter2&sslmode=disable", &[]);
        assert_eq!(l.config.get_password(), Some(&b"hunter2"[..]));
        assert_eq!(l.to_string(), "postgres://aoc:***@h/d?sslmode=disable");
    }

    #[test]
    fn url_hosts_ports_sockets_and_ipv6() {
        let l = pg("postgres://u@h1:5433,h2:5434/d", &[]);
        assert_eq!(hosts(&l), ["h1", "h2"]);
        assert_eq!(l.config.get_ports(), [5433, 5434]);
        assert_eq!(l.to_string(), "postgres://u@h1:5433,h2:5434/d");

        let l = pg("postgres://u@[::1]:5433/d", &[]);
        assert_eq!(hosts(&l), ["::1"]);
        assert_eq!(l.to_string(), "postgres://u@[::1]:5433/d");

        let l = pg("postgres://u@%2Frun%2Fpostgresql/d", &[]);
        assert_eq!(hosts(&l), ["/run/postgresql"]);
        let l = pg("postgres:///d?host=/run/postgresql&port=5433", &[]);
        assert_eq!(hosts(&l), ["/run/postgresql"]);
        assert_eq!(l.to_string(), "postgres://%2Frun%2Fpostgresql:5433/d");

        // A query parameter overrides the authority's (libpq: the last value wins).
        let l = pg("postgres://u@h1/d?host=h2", &[]);
        assert_eq!(hosts(&l), ["h2"]);
    }

    #[test]
    fn keyword_value_strings() {
        let l = pg(
            r"host=db.example port = 6543 dbname='my store' user=aoc password='it\'s a \\ pw' sslmode=require",
            &[],
        );
        assert_eq!(hosts(&l), ["db.example"]);
        assert_eq!(l.config.get_ports(), [6543]);
        assert_eq!(l.config.get_dbname(), Some("my store"));
        assert_eq!(l.sslmode, Some(SslMode::Require));
        assert!(l.config.get_password().is_some());
        assert_eq!(
            l.to_string(),
            "postgres://aoc:***@db.example:6543/my%20store?sslmode=require"
        );
        let l = pg(r"host=h password=a\ b\'c dbname=d", &[]);
        assert_eq!(l.config.get_password(), Some(&b"a b'c"[..]));

        // Syntax errors name no value: a misplaced quote or space may cut a password in two.
        for (bad, why) in [
            ("host=h password=s3cret dbname", "keyword=value"),
            ("host=h password='s3cret", "no closing quote"),
            ("host=h password=s3 cret=x", "no libpq keyword"),
            ("password=s3cret host=", "no value"),
            ("=s3cret", "keyword=value"),
        ] {
            let e = refused(bad);
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{bad}: {e}");
        }
        // Unknown parameters and bad values: the client's own parser says so.
        assert!(refused("host=h sslcert=/x").contains("unknown option `sslcert`"));
        assert!(refused("host=h port=x").contains("`port`"));
        assert!(refused("host=h sslmode=verify").contains("not one of"));
    }

    #[test]
    fn ambiguous_user_info_is_refused_without_echoing_it() {
        for (url, hint) in [
            ("postgres://aoc:pa?ss/w0rd@host/db?sslmode=require", "'?'"),
            ("postgres://aoc:pa/ssw0rd@host/db?sslmode=require", "'/'"),
            ("postgres://aoc:pa#ssw0rd@host/db", "'#'"),
            ("postgres://aoc:pa@ssw0rd@host/db", "more than one '@'"),
            ("postgres://aoc:pa%ssw0rd@host/db", "%25"),
            ("postgres://aoc:pa%zzw0rd@host/db", "%25"),
        ] {
            let e = refused(url);
            assert!(e.contains(hint), "{url}: {e}");
            assert!(!e.contains("ssw0rd") && !e.contains("w0rd"), "{url}: {e}");
        }
        let e = refused("postgres://aoc:pa?ss/w0rd@host/db?sslmode=require");
        assert!(e.contains("'?' as %3F") && e.contains("'/' as %2F"), "{e}");
        // An '@' in a parameter must be encoded too: the client would take what precedes it as
        // the user name.
        assert!(refused("postgres://h/d?application_name=a@b").contains("%40"));
        let l = pg("postgres://h/d?application_name=a%40b", &[]);
        assert_eq!(l.config.get_application_name(), Some("a@b"));
    }

    #[test]
    fn the_environment_fills_what_the_location_leaves_out() {
        let vars = [
            ("PGHOST", "db.example"),
            ("PGPORT", "6543"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGOPTIONS", "-c search_path=x"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
            ("PGPASSFILE", "/etc/pgpass"),
            ("PGPASSWORD", "not-a-parameter"),
        ];
        let l = pg("postgres://", &vars);
        assert_eq!(hosts(&l), ["db.example"]);
        assert_eq!(l.config.get_ports(), [6543]);
        assert_eq!(l.config.get_user(), Some("envuser"));
        assert_eq!(l.config.get_dbname(), Some("envdb"));
        assert_eq!(l.config.get_options(), Some("-c search_path=x"));
        assert_eq!(l.config.get_application_name(), Some("envapp"));
        assert_eq!(
            l.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        assert_eq!(l.sslmode, Some(SslMode::VerifyCa));
        assert_eq!(l.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(l.passfile.as_deref(), Some(Path::new("/etc/pgpass")));
        // PGPASSWORD is read when connecting, never shown.
        assert_eq!(l.config.get_password(), None);
        assert!(!l.to_string().contains("not-a-parameter"));
        assert!(l
            .to_string()
            .starts_with("postgres://envuser@db.example:6543/envdb?"));

        // What the location says wins, in both forms; an empty value is no value.
        for given in [
            "postgres://u@h:1/d?sslmode=disable&application_name=",
            "host=h port=1 user=u dbname=d sslmode=disable application_name=''",
        ] {
            let l = pg(given, &vars);
            assert_eq!(hosts(&l), ["h"], "{given}");
            assert_eq!(l.config.get_ports(), [1]);
            assert_eq!(l.config.get_user(), Some("u"));
            assert_eq!(l.config.get_dbname(), Some("d"));
            assert_eq!(l.sslmode, Some(SslMode::Disable));
            assert_eq!(l.config.get_application_name(), Some("envapp"));
        }

        // PGHOSTADDR alone is enough to connect to; a bad PGPORT is the client's error.
        let l = pg("postgres://", &[("PGHOSTADDR", "127.0.0.1")]);
        assert!(l.config.get_hosts().is_empty());
        assert_eq!(l.config.get_hostaddrs().len(), 1);
        assert!(refused_with("postgres://", &[("PGPORT", "x")]).contains("`port`"));

        // No host anywhere: libpq's default, the Unix-domain socket directory.
        let l = pg("postgres:///d", &[]);
        assert!(matches!(l.config.get_hosts(), [Host::Unix(_)]));
    }

    fn refused_with(s: &str, vars: &[(&str, &str)]) -> String {
        parse(s, vars).err().unwrap().to_string()
    }

    #[test]
    fn anything_else_is_refused_without_echoing_it() {
        let e = refused("mysql://root:hunter2@db/x");
        assert!(e.contains("\"mysql\"") && !e.contains("hunter2"), "{e}");
        for bad in ["hunter2", "hunter:2"] {
            let e = refused(bad);
            assert!(!e.contains("hunter"), "{e}");
            assert!(e.contains("no sqlite: or postgres:// scheme"), "{e}");
        }
    }
}
