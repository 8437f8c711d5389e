//! The authentication settings: which modes `--auth` enables and what each
//! needs. Checked at start like every other setting; `auth::Authenticator`
//! is built from them.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use super::{parse_duration, parse_positive_duration, redact_database_url};

/// One way of authenticating callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum AuthMode {
    /// No authentication: every caller is `anonymous` and may do everything.
    None,
    /// `Authorization: Bearer <JWT>`, verified against the issuer's keys.
    Jwt,
    /// The client certificate the TLS layer verified against
    /// `--tls-client-ca`.
    Mtls,
    /// `Authorization: Basic`, against `--basic-users-file`.
    Basic,
}

impl AuthMode {
    /// The mode's name, as `--auth` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Jwt => "jwt",
            Self::Mtls => "mtls",
            Self::Basic => "basic",
        }
    }
}

/// Where the keys that sign JWTs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// A local JWKS file (`--jwt-jwks-file`), reloaded when it changes.
    File(PathBuf),
    /// A JWKS URL (`--jwt-jwks-url`).
    Url(url::Url),
    /// The `jwks_uri` of the issuer's OpenID discovery document,
    /// `<issuer>/.well-known/openid-configuration`.
    Discovery(url::Url),
}

/// The settings of authentication, each a flag with an environment twin.
#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// How callers authenticate: a comma-separated list of `jwt`, `mtls`
    /// and `basic`, or `none` (alone). A request is authenticated by the
    /// first credential it presents: its `authorization` header (Bearer or
    /// Basic), else its client certificate.
    #[arg(
        long = "auth",
        env = "GROUPD_AUTH",
        value_enum,
        value_delimiter = ',',
        default_value = "none",
        global = true
    )]
    pub modes: Vec<AuthMode>,

    /// The issuer (`iss`) JWTs must name; with no JWKS flag, also the URL
    /// whose `/.well-known/openid-configuration` names the keys.
    #[arg(long, env = "GROUPD_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,

    /// The audience (`aud`) JWTs must include: groupd's name at the issuer.
    #[arg(long, env = "GROUPD_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,

    /// A local JWKS file holding the keys that sign JWTs, reloaded when it
    /// changes. At most one of this and `--jwt-jwks-url`.
    #[arg(long, env = "GROUPD_JWT_JWKS_FILE", global = true)]
    pub jwt_jwks_file: Option<PathBuf>,

    /// The URL of the issuer's JWKS (https, or http on a loopback address),
    /// fetched at start, every `--jwt-jwks-refresh`, and when a token names
    /// an unknown key.
    #[arg(long, env = "GROUPD_JWT_JWKS_URL", value_parser = parse_http_url, global = true)]
    pub jwt_jwks_url: Option<url::Url>,

    /// How often a remote JWKS is fetched again.
    #[arg(long, env = "GROUPD_JWT_JWKS_REFRESH", default_value = "5m", value_parser = parse_positive_duration, global = true)]
    pub jwt_jwks_refresh: Duration,

    /// How far `exp` and `nbf` may be off, for clocks that differ.
    #[arg(long, env = "GROUPD_JWT_LEEWAY", default_value = "30s", value_parser = parse_duration, global = true)]
    pub jwt_leeway: Duration,

    /// The claim naming the caller (a string, a valid principal id).
    #[arg(long, env = "GROUPD_JWT_PRINCIPAL_CLAIM", default_value = "sub", value_parser = parse_claim_name, global = true)]
    pub jwt_principal_claim: String,

    /// The claim holding the caller's roles: an array of strings, or one
    /// space-separated string. Roles groupd does not know are ignored.
    #[arg(long, env = "GROUPD_JWT_ROLES_CLAIM", default_value = "roles", value_parser = parse_claim_name, global = true)]
    pub jwt_roles_claim: String,

    /// A JSON file mapping principals to role names
    /// (`{"alice": ["groups.admin"]}`), added to the roles of callers of
    /// every mode; the only source of roles for mTLS and Basic callers.
    /// Reloaded when it changes.
    #[arg(long, env = "GROUPD_ROLES_FILE", global = true)]
    pub roles_file: Option<PathBuf>,

    /// The users of Basic authentication: an htpasswd file of bcrypt
    /// hashes, one `user:hash` per line. Reloaded when it changes.
    #[arg(long, env = "GROUPD_BASIC_USERS_FILE", global = true)]
    pub basic_users_file: Option<PathBuf>,
}

impl AuthSettings {
    /// Whether `mode` is enabled.
    pub fn has(&self, mode: AuthMode) -> bool {
        self.modes.contains(&mode)
    }

    /// Whether authentication is off (`--auth none`).
    pub fn is_off(&self) -> bool {
        self.modes.iter().all(|mode| *mode == AuthMode::None)
    }

    /// The enabled modes, sorted, without repeats.
    pub fn enabled(&self) -> Vec<AuthMode> {
        let mut modes = self.modes.clone();
        modes.sort();
        modes.dedup();
        modes
    }

    /// Where the JWT signing keys come from, once [`Self::check`] passed
    /// with `jwt` on.
    pub fn jwks_location(&self) -> Option<JwksLocation> {
        if let Some(path) = &self.jwt_jwks_file {
            return Some(JwksLocation::File(path.clone()));
        }
        if let Some(url) = &self.jwt_jwks_url {
            return Some(JwksLocation::Url(url.clone()));
        }
        let issuer = url::Url::parse(self.jwt_issuer.as_deref()?).ok()?;
        Some(JwksLocation::Discovery(issuer))
    }

    /// Checks what one flag's parser cannot: `none` alone, what each mode
    /// needs, and no flag of a mode that is off. The message names the
    /// flags, never a value.
    pub fn check(&self) -> Result<(), String> {
        let modes = self.enabled();
        if modes.contains(&AuthMode::None) && modes.len() > 1 {
            return Err("'--auth none' cannot be combined with another mode".to_owned());
        }
        let jwt = self.has(AuthMode::Jwt);
        let jwt_flags = [
            ("--jwt-issuer", self.jwt_issuer.is_some()),
            ("--jwt-audience", self.jwt_audience.is_some()),
            ("--jwt-jwks-file", self.jwt_jwks_file.is_some()),
            ("--jwt-jwks-url", self.jwt_jwks_url.is_some()),
        ];
        if !jwt {
            if let Some((flag, _)) = jwt_flags.iter().find(|(_, set)| *set) {
                return Err(format!("'{flag}' is set but '--auth' does not include jwt"));
            }
        } else {
            for (flag, set) in &jwt_flags[..2] {
                if !set {
                    return Err(format!("'--auth jwt' needs '{flag}'"));
                }
            }
            if self.jwt_issuer.as_deref().is_some_and(str::is_empty) {
                return Err("'--jwt-issuer' is empty".to_owned());
            }
            if self.jwt_audience.as_deref().is_some_and(str::is_empty) {
                return Err("'--jwt-audience' is empty".to_owned());
            }
            if self.jwt_jwks_file.is_some() && self.jwt_jwks_url.is_some() {
                return Err(
                    "'--jwt-jwks-file' and '--jwt-jwks-url' are both set; give at most one"
                        .to_owned(),
                );
            }
            if self.jwt_jwks_file.is_none() && self.jwt_jwks_url.is_none() {
                let issuer = self.jwt_issuer.as_deref().unwrap_or_default();
                parse_http_url(issuer).map_err(|problem| {
                    format!(
                        "'--jwt-issuer' must be an http(s) URL when neither '--jwt-jwks-file' \
                         nor '--jwt-jwks-url' is set (its discovery document names the keys): \
                         {problem}"
                    )
                })?;
            }
        }
        let basic = self.has(AuthMode::Basic);
        if basic && self.basic_users_file.is_none() {
            return Err("'--auth basic' needs '--basic-users-file'".to_owned());
        }
        if !basic && self.basic_users_file.is_some() {
            return Err(
                "'--basic-users-file' is set but '--auth' does not include basic".to_owned(),
            );
        }
        if self.is_off() && self.roles_file.is_some() {
            return Err(
                "'--roles-file' is set but authentication is off ('--auth none')".to_owned(),
            );
        }
        Ok(())
    }

    /// Logs the effective authentication settings as one line. They hold no
    /// secret: files are named by path, a JWKS URL is redacted like the
    /// database URL.
    pub fn log_effective(&self) {
        let modes: Vec<&str> = self.enabled().into_iter().map(AuthMode::as_str).collect();
        let jwks = match self
            .has(AuthMode::Jwt)
            .then(|| self.jwks_location())
            .flatten()
        {
            Some(JwksLocation::File(path)) => format!("file {}", path.display()),
            Some(JwksLocation::Url(url)) => format!("url {}", redact_database_url(url.as_str())),
            Some(JwksLocation::Discovery(issuer)) => {
                format!("discovery {}", redact_database_url(issuer.as_str()))
            }
            None => "-".to_owned(),
        };
        let path = |path: &Option<PathBuf>| {
            path.as_ref()
                .map_or_else(|| "-".to_owned(), |path| path.display().to_string())
        };
        tracing::info!(
            auth = %modes.join(","),
            jwt_issuer = self.jwt_issuer.as_deref().unwrap_or("-"),
            jwt_audience = self.jwt_audience.as_deref().unwrap_or("-"),
            jwt_jwks = %jwks,
            jwt_jwks_refresh = ?self.jwt_jwks_refresh,
            jwt_leeway = ?self.jwt_leeway,
            jwt_principal_claim = %self.jwt_principal_claim,
            jwt_roles_claim = %self.jwt_roles_claim,
            roles_file = %path(&self.roles_file),
            basic_users_file = %path(&self.basic_users_file),
            "effective authentication configuration"
        );
    }
}

/// An http or https URL with a host; plain http only to a loopback
/// address, so that the keys that sign tokens cannot be swapped on the way.
pub fn parse_http_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err("plain http is accepted only for loopback addresses".to_owned()),
        _ => return Err("the scheme must be https".to_owned()),
    }
    if url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    Ok(url)
}

/// Whether `url` names this machine: `localhost` or a loopback address.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

/// A claim name: not empty.
fn parse_claim_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("a claim name cannot be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut all = vec!["groupd"];
        all.extend_from_slice(args);
        Settings::parse_from_args(all).map_err(|error| error.to_string())
    }

    const JWT: [&str; 6] = [
        "--auth",
        "jwt",
        "--jwt-issuer",
        "https://issuer.example",
        "--jwt-audience",
        "groupd",
    ];

    #[test]
    fn authentication_is_off_by_default_with_the_documented_jwt_defaults() {
        let settings = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(settings.auth.is_off());
        assert_eq!(settings.auth.enabled(), vec![AuthMode::None]);
        assert_eq!(settings.auth.jwt_leeway, Duration::from_secs(30));
        assert_eq!(settings.auth.jwt_jwks_refresh, Duration::from_secs(300));
        assert_eq!(settings.auth.jwt_principal_claim, "sub");
        assert_eq!(settings.auth.jwt_roles_claim, "roles");
    }

    #[test]
    fn modes_combine_and_repeat_but_none_stands_alone() {
        let settings = parse(&[
            "--auth",
            "mtls,basic,mtls",
            "--basic-users-file",
            "/etc/groupd/users",
            "--tls-cert",
            "/etc/groupd/tls.crt",
            "--tls-key",
            "/etc/groupd/tls.key",
            "--tls-client-ca",
            "/etc/groupd/ca.crt",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            settings.auth.enabled(),
            vec![AuthMode::Mtls, AuthMode::Basic]
        );
        assert!(!settings.auth.is_off());
        let without_ca = parse(&["--auth", "mtls"]).err().unwrap_or_default();
        assert!(without_ca.contains("--tls-client-ca"), "{without_ca}");
        let refused = parse(&["--auth", "none,mtls"]).err().unwrap_or_default();
        assert!(refused.contains("'--auth none'"), "{refused}");
        let unknown = parse(&["--auth", "kerberos"]).err().unwrap_or_default();
        assert!(unknown.contains("--auth"), "{unknown}");
    }

    #[test]
    fn the_keys_come_from_a_file_a_url_or_discovery() {
        let location = |extra: &[&str]| {
            let mut args = JWT.to_vec();
            args.extend_from_slice(extra);
            parse(&args).map(|settings| settings.auth.jwks_location())
        };
        assert_eq!(
            location(&[]).ok().flatten(),
            Some(JwksLocation::Discovery(
                url::Url::parse("https://issuer.example").unwrap_or_else(|e| panic!("{e}"))
            ))
        );
        assert_eq!(
            location(&["--jwt-jwks-file", "/keys.json"]).ok().flatten(),
            Some(JwksLocation::File("/keys.json".into()))
        );
        for url in [
            "https://issuer.example/jwks",
            "http://127.0.0.1:8443/jwks",
            "http://localhost/jwks",
            "http://[::1]:80/jwks",
        ] {
            assert!(
                matches!(
                    location(&["--jwt-jwks-url", url]),
                    Ok(Some(JwksLocation::Url(_)))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn what_each_mode_needs_is_checked_at_start() {
        let refused = |args: &[&str], names: &str| {
            let mut all = vec!["groupd"];
            all.extend_from_slice(args);
            match Settings::parse_from_args(all) {
                Ok(_) => panic!("{args:?} was accepted"),
                Err(error) => {
                    let message = error.to_string();
                    assert!(message.contains(names), "{args:?}: {message}");
                }
            }
        };
        refused(
            &["--auth", "jwt", "--jwt-audience", "groupd"],
            "--jwt-issuer",
        );
        refused(
            &["--auth", "jwt", "--jwt-issuer", "https://issuer.example"],
            "--jwt-audience",
        );
        let mut both = JWT.to_vec();
        both.extend([
            "--jwt-jwks-file",
            "/k.json",
            "--jwt-jwks-url",
            "https://i.example/k",
        ]);
        refused(&both, "--jwt-jwks-url");
        refused(
            &[
                "--auth",
                "jwt",
                "--jwt-issuer",
                "groupd-dev",
                "--jwt-audience",
                "groupd",
            ],
            "--jwt-issuer",
        );
        let mut plain = JWT.to_vec();
        plain.extend(["--jwt-jwks-url", "http://keys.example/jwks"]);
        refused(&plain, "--jwt-jwks-url");
        let mut empty_claim = JWT.to_vec();
        empty_claim.extend(["--jwt-principal-claim", ""]);
        refused(&empty_claim, "--jwt-principal-claim");
        refused(&["--auth", "basic"], "--basic-users-file");
        refused(&["--basic-users-file", "/users"], "--basic-users-file");
        refused(&["--jwt-issuer", "https://issuer.example"], "--jwt-issuer");
        refused(&["--roles-file", "/roles.json"], "--roles-file");
        // A non-URL issuer is fine when the keys are a file.
        let mut file = vec!["--auth", "jwt", "--jwt-issuer", "groupd-dev"];
        file.extend(["--jwt-audience", "groupd", "--jwt-jwks-file", "/k.json"]);
        assert!(parse(&file).is_ok());
    }
}
