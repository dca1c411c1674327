//! CRI `AuthConfig` → engine credentials, as containerd's `ParseAuth`
//! (`internal/cri/server/images/image_pull.go`) reads it.
//!
//! In order: credentials whose `server_address` names another registry are
//! ignored (the pull goes anonymous, not failed); `username` (with
//! `password`) wins; then `identity_token`, which containerd hands to its
//! authorizer with an empty user name, i.e. as an OAuth2 refresh token, and
//! hoist as [`Credentials::identity_token`]; then `auth`, base64 of
//! `user:password` (trailing NULs trimmed from the password). An empty
//! config is anonymous.
//!
//! `registry_token` (a ready bearer token) is not used, as in containerd,
//! whose `ParseAuth` still has `TODO: Support RegistryToken` and falls
//! through to anonymous; the caller logs that it was ignored.
//!
//! One deliberate leniency: containerd parses `server_address` as a URL and
//! compares its host, so a scheme-less `registry.example:5000` never
//! matches there. Here a scheme is optional, and Docker Hub's aliases
//! (`index.docker.io`, `registry-1.docker.io`, `https://index.docker.io/v1/`)
//! all mean `docker.io`, the domain references normalize to.

use base64::Engine as _;
use hoist_engine::Credentials;
use hoist_engine::login::registry_host;

use super::proto::AuthConfig;

/// Why an `AuthConfig` could not be used. Messages never include a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// `auth` is not valid base64.
    #[error("invalid auth config: `auth` is not valid base64")]
    Base64,
    /// `auth` decodes to something without a `:` between user and password.
    #[error("invalid auth config: decoded `auth` is not user:password")]
    NoSeparator,
    /// `auth` decodes to bytes that are not UTF-8.
    #[error("invalid auth config: decoded `auth` is not UTF-8")]
    NotUtf8,
}

/// The credentials `auth` gives for a pull from `domain` (a normalized
/// reference's domain, e.g. `docker.io` or `127.0.0.1:5000`); `None` for an
/// anonymous pull.
pub(crate) fn credentials(
    auth: Option<&AuthConfig>,
    domain: &str,
) -> Result<Option<Credentials>, AuthError> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    if !auth.server_address.is_empty()
        && registry_host(&auth.server_address) != registry_host(domain)
    {
        return Ok(None);
    }
    if !auth.username.is_empty() {
        return Ok(Some(Credentials::new(&auth.username, &auth.password)));
    }
    if !auth.identity_token.is_empty() {
        return Ok(Some(Credentials::identity_token(&auth.identity_token)));
    }
    if !auth.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|_| AuthError::Base64)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::NotUtf8)?;
        let (user, password) = decoded.split_once(':').ok_or(AuthError::NoSeparator)?;
        return Ok(Some(Credentials::new(user, password.trim_matches('\0'))));
    }
    Ok(None)
}

/// Whether `auth` carries a `registry_token` that [`credentials`] ignores.
pub(crate) fn ignores_registry_token(auth: Option<&AuthConfig>) -> bool {
    auth.is_some_and(|auth| !auth.registry_token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(edit: impl FnOnce(&mut AuthConfig)) -> AuthConfig {
        let mut auth = AuthConfig::default();
        edit(&mut auth);
        auth
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn no_config_or_an_empty_one_is_anonymous() {
        assert_eq!(credentials(None, "docker.io"), Ok(None));
        assert_eq!(
            credentials(Some(&AuthConfig::default()), "docker.io"),
            Ok(None)
        );
    }

    #[test]
    fn username_and_password_win_over_the_rest() {
        let auth = config(|a| {
            a.username = "alice".into();
            a.password = "s3cret".into();
            a.identity_token = "refresh".into();
            a.auth = b64("bob:other");
        });
        assert_eq!(
            credentials(Some(&auth), "127.0.0.1:5000"),
            Ok(Some(Credentials::new("alice", "s3cret")))
        );
    }

    #[test]
    fn an_identity_token_is_a_refresh_token() {
        let auth = config(|a| a.identity_token = "refresh".into());
        let found = credentials(Some(&auth), "docker.io").unwrap().unwrap();
        assert!(found.is_identity_token());
        assert_eq!(found, Credentials::identity_token("refresh"));
    }

    #[test]
    fn auth_is_base64_of_user_colon_password() {
        let auth = config(|a| a.auth = b64("alice:pa:ss\0\0"));
        assert_eq!(
            credentials(Some(&auth), "docker.io"),
            Ok(Some(Credentials::new("alice", "pa:ss")))
        );
        let bad = config(|a| a.auth = "%%%".into());
        assert_eq!(credentials(Some(&bad), "docker.io"), Err(AuthError::Base64));
        let no_colon = config(|a| a.auth = b64("alice"));
        assert_eq!(
            credentials(Some(&no_colon), "docker.io"),
            Err(AuthError::NoSeparator)
        );
        // The error says what is wrong, never the secret.
        assert!(!AuthError::NoSeparator.to_string().contains("alice"));
    }

    #[test]
    fn a_registry_token_alone_is_anonymous_as_in_containerd() {
        let auth = config(|a| a.registry_token = "bearer".into());
        assert_eq!(credentials(Some(&auth), "docker.io"), Ok(None));
        assert!(ignores_registry_token(Some(&auth)));
        assert!(!ignores_registry_token(Some(&AuthConfig::default())));
    }

    #[test]
    fn credentials_for_another_registry_are_not_sent() {
        let auth = config(|a| {
            a.server_address = "https://other.example".into();
            a.username = "alice".into();
            a.password = "s3cret".into();
        });
        assert_eq!(credentials(Some(&auth), "registry.example"), Ok(None));
        let same = config(|a| {
            a.server_address = "registry.example:5000".into();
            a.username = "alice".into();
        });
        assert!(
            credentials(Some(&same), "registry.example:5000")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn docker_hub_aliases_match_docker_io() {
        for address in [
            "https://index.docker.io/v1/",
            "registry-1.docker.io",
            "docker.io",
            "https://registry.hub.docker.com",
        ] {
            let auth = config(|a| {
                a.server_address = address.into();
                a.username = "alice".into();
            });
            assert!(
                credentials(Some(&auth), "docker.io").unwrap().is_some(),
                "{address}"
            );
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let auth = config(|a| {
            a.username = "alice".into();
            a.password = "pw-secret".into();
            a.auth = "auth-secret".into();
            a.identity_token = "id-secret".into();
            a.registry_token = "reg-secret".into();
        });
        let shown = format!("{auth:?}");
        assert!(shown.contains("alice"), "{shown}");
        for secret in ["pw-secret", "auth-secret", "id-secret", "reg-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
