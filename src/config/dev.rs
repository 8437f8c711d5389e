//! The arguments of the development commands, `groupd dev-keys` and
//! `groupd dev-token`. They make keys and tokens for trying groupd's JWT
//! authentication locally; a real deployment takes its tokens from an
//! identity provider.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use crate::auth::dev::KeyAlgorithm;

/// `groupd dev-keys`: a fresh private key and the JWKS holding its public
/// half. For development only: the private key is a plain file.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(
    after_help = "For development only. Writes DIR/private.pem (PKCS#8, mode 0600) and \
                  DIR/jwks.json; serve with `--auth jwt --jwt-jwks-file DIR/jwks.json` and \
                  sign tokens with `groupd dev-token --key DIR`. Existing files are not \
                  overwritten."
)]
pub struct DevKeysArgs {
    /// The directory to write `private.pem` and `jwks.json` into (created
    /// when missing).
    #[arg(long)]
    pub dir: PathBuf,

    /// The signing algorithm of the key.
    #[arg(long, value_enum, default_value = "eddsa")]
    pub alg: KeyAlgorithm,
}

/// `groupd dev-token`: a JWT signed with a key of `groupd dev-keys`, printed
/// on standard output. For development only.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(
    after_help = "For development only. The token names its key by the same kid as the \
                  JWKS that `groupd dev-keys` wrote, so a groupd serving that JWKS accepts it."
)]
pub struct DevTokenArgs {
    /// The private key: the directory `groupd dev-keys` wrote, or its
    /// `private.pem`.
    #[arg(long)]
    pub key: PathBuf,

    /// The token's issuer (`iss`): groupd's `--jwt-issuer`.
    #[arg(long)]
    pub issuer: String,

    /// The token's audience (`aud`): groupd's `--jwt-audience`.
    #[arg(long)]
    pub audience: String,

    /// The caller the token names (`sub`).
    #[arg(long)]
    pub sub: String,

    /// The caller's roles, comma-separated, e.g.
    /// `groups.admin,groups.reader`.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,

    /// How long the token is valid, e.g. `15m` or `1h`.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
}

/// A lifetime such as `90s`, `15m` or `2h`.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let duration = match text.trim().strip_suffix('h') {
        Some(hours) => hours
            .parse::<u64>()
            .map(|hours| Duration::from_secs(hours * 3600))
            .map_err(|_| format!("`{text}` is not a duration such as 90s, 15m or 2h"))?,
        None => super::parse_duration(text)?,
    };
    if duration.is_zero() {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(duration)
}
