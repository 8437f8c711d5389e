//! `groupd dev-keys` and `groupd dev-token` as a developer runs them: the
//! real binary writes a key and a JWKS, signs a token, and groupd's
//! authenticator accepts it.

use std::process::Command;

use groupd::{auth::KeysFrom, domain::Role};

use super::{support::*, *};

fn groupd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_groupd"))
        .args(args)
        .env_remove("GROUPD_AUTH")
        .output()
        .unwrap_or_else(|error| panic!("cannot run groupd: {error}"))
}

#[tokio::test]
async fn a_dev_token_is_accepted_by_the_dev_keys_jwks() {
    for alg in ["eddsa", "es256"] {
        let dir = TempDir::new();
        let keys = dir.join("keys");
        let keys_arg = keys.display().to_string();
        let made = groupd(&["dev-keys", "--dir", &keys_arg, "--alg", alg]);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(keys.join("private.pem"))
                .map(|metadata| metadata.permissions().mode() & 0o777)
                .unwrap_or_default();
            assert_eq!(mode, 0o600, "the private key is readable by its owner only");
        }
        let again = groupd(&["dev-keys", "--dir", &keys_arg]);
        assert!(!again.status.success(), "existing keys are not overwritten");

        let signed = groupd(&[
            "dev-token",
            "--key",
            &keys_arg,
            "--issuer",
            "https://dev.test",
            "--audience",
            AUDIENCE,
            "--sub",
            "alice",
            "--roles",
            "groups.admin,groups.reader",
            "--ttl",
            "1h",
        ]);
        assert!(
            signed.status.success(),
            "{}",
            String::from_utf8_lossy(&signed.stderr)
        );
        let token = String::from_utf8_lossy(&signed.stdout).trim().to_owned();
        let exp = payload(&token)["exp"].as_u64().unwrap_or_default();
        assert!(exp.abs_diff(now() + 3600) <= 5, "a ttl of one hour");

        let mut config = config();
        config.jwt = Some(jwt_config(
            "https://dev.test",
            KeysFrom::File(keys.join("jwks.json")),
        ));
        let auth = build(config).await;
        let alice = caller(&auth, &bearer(&token)).await;
        assert_eq!(alice.principal().as_str(), "alice", "{alg}");
        assert_eq!(roles(&alice), vec![Role::Admin, Role::Reader]);
    }
}

#[test]
fn the_dev_commands_say_they_are_for_development_only() {
    for command in ["dev-keys", "dev-token"] {
        let help = groupd(&[command, "--help"]);
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("For development only"), "{command}: {text}");
    }
}
