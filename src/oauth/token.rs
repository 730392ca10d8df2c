//! `POST /token` (RFC 6749 §4.1.3, §6): exchanges an authorization code, or a refresh token, for
//! tokens. Every stored change is durable before the answer leaves, because Alexa keeps whatever
//! we answer and a lost refresh token unlinks the customer.

use super::client::{self, Caller};
use super::linking_log::Step;
use super::refusal::refusal;
use super::tokens::{self, issue, Issue, Refreshed};
use super::{customer_check, normalize_scope, scope_within, target, OAuthError, MAX_TOKEN_LEN};
use crate::base::secret::{self, Secret};
use crate::base::urlencoded::Params;
use crate::config::{Client, GrantType};
use crate::metrics::count;
use crate::oauth::server::Server;
use crate::store::{now, CodeRecord, Grant, Redeemed, TokenRecord};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::atomic::AtomicU64;

pub use super::TokenResponse;

/// Token prefixes: what a token is can be seen from its value.
pub use super::tokens::{ACCESS_PREFIX, REFRESH_PREFIX};

/// `POST /token`: every refusal is logged with its reason and reference (`linking_log`), every
/// success kept for `--linking-log`.
pub async fn exchange(
    app: &Server,
    params: &Params,
    caller: Caller,
) -> Result<TokenResponse, OAuthError> {
    let step = match params.single("grant_type") {
        Ok(Some("authorization_code")) => Step::CodeExchange,
        Ok(Some("refresh_token")) => Step::Refresh,
        Ok(Some("client_credentials")) => Step::ClientCredentials,
        _ => Step::Token,
    };
    let result = grant(app, params, &caller).await;
    let claimed = client::claimed_id(params, &caller);
    if result.is_ok() {
        app.linking.succeeded(step, claimed.unwrap_or(""), "");
    }
    result.map_err(|error| refusal(app, step, claimed, error))
}

async fn grant(
    app: &Server,
    params: &Params,
    caller: &Caller,
) -> Result<TokenResponse, OAuthError> {
    let client = client::authenticate(app, params, caller).await?;
    let grant_type = params.single("grant_type")?;
    if let Some(grant) = GrantType::ALL
        .into_iter()
        .find(|g| Some(g.name()) == grant_type)
    {
        if !client.allows(grant) {
            return Err(OAuthError::UnauthorizedClient(format!(
                "this client may not use grant_type `{}` (its grant_types)",
                grant.name()
            )));
        }
    }
    match grant_type {
        None => Err(OAuthError::InvalidRequest("grant_type is required".into())),
        Some("client_credentials") => {
            let m = &app.metrics;
            counted(
                Box::pin(super::service::client_credentials(app, client, params)).await,
                &m.service_grants_ok,
                &m.service_grants_failed,
            )
        }
        Some("authorization_code") => {
            let m = &app.metrics;
            counted(
                // Boxed: once per link, and its future is the largest of /token's.
                Box::pin(authorization_code(app, client, params)).await,
                &m.code_grants_ok,
                &m.code_grants_failed,
            )
        }
        Some("refresh_token") => {
            let m = &app.metrics;
            counted(
                refresh(app, client, params).await,
                &m.refresh_grants_ok,
                &m.refresh_grants_failed,
            )
        }
        Some(other) => Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type `{other}` is not supported; use authorization_code, refresh_token or client_credentials"
        ))),
    }
}

/// Counts a grant's outcome for `/metrics`.
fn counted<T>(
    result: Result<T, OAuthError>,
    ok: &AtomicU64,
    failed: &AtomicU64,
) -> Result<T, OAuthError> {
    count(if result.is_ok() { ok } else { failed });
    result
}

async fn authorization_code(
    app: &Server,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = params
        .single("code")?
        .ok_or_else(|| OAuthError::InvalidRequest("code is required".into()))?;
    let redirect_uri = params.single("redirect_uri")?;
    let verifier = params.single("code_verifier")?;
    let key = Secret::new(code).key();
    let now = now();
    let dead = || {
        OAuthError::InvalidGrant(
            "the authorization code is invalid, expired or already used".into(),
        )
    };
    if code.len() > MAX_TOKEN_LEN {
        return Err(dead());
    }
    let read = app
        .store
        .code_for_exchange(&key, now)
        .await?
        .ok_or_else(|| {
            dead().because(format!(
                "the code is unknown or expired (codes live tokens.code_ttl_secs = {} s)",
                app.config.tokens.code_secs
            ))
        })?;
    let record = &read.record;
    if let Some(grant_id) = &record.redeemed_by {
        return Err(replayed(app, grant_id).await);
    }
    check_code(record, &client.id, redirect_uri, verifier)?;
    let resource = target::granted(record.resource.as_deref(), params)?;

    let mut grant = Grant::new(
        &record.sub,
        &record.username,
        &client.id,
        &record.scope,
        record.generation,
        now,
        match app.config.tokens.refresh_secs {
            0 => 0,
            ttl => now + ttl,
        },
    );
    grant.resource = resource;
    match app.store.redeem_read_code(&key, &read, now, &grant).await? {
        Redeemed::Issued => {}
        Redeemed::AlreadyUsed(grant_id) => return Err(replayed(app, &grant_id).await),
        Redeemed::Unknown => {
            return Err(dead().because("the code expired or was used while being exchanged"))
        }
    }
    let access_secs = app.config.tokens.access_secs;
    let access_token = issue::access(&app.store, &grant, &grant.scope, now, access_secs)?;
    let refresh_token = issue::refresh(&grant, 0, now)?;
    app.store.flush().await?;
    tracing::info!(client = %client.id, "tokens issued for an authorization code");
    Ok(TokenResponse {
        access_token,
        expires_in: app.config.tokens.access_secs,
        refresh_token: Some(refresh_token),
        scope: grant.scope,
    })
}

/// §4.1.2: a code used twice is refused, and the tokens from its first use are revoked, because
/// one of the two users of the code was not the client.
async fn replayed(app: &Server, grant_id: &str) -> OAuthError {
    tracing::warn!("an authorization code was used twice; revoking the tokens issued for it");
    let cause = "its authorization code was used a second time";
    let revoked = match app.store.revoke_grant(grant_id, cause) {
        Ok(()) => app.store.flush().await,
        Err(e) => Err(e),
    };
    if let Err(e) = revoked {
        return e.into();
    }
    OAuthError::InvalidGrant(
        "the authorization code was already used; the tokens issued for it are revoked".into(),
    )
}

/// §4.1.3: whether the unused, live code `record` may be exchanged by `client_id` with this
/// `redirect_uri` and PKCE `verifier`.
fn check_code(
    record: &CodeRecord,
    client_id: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    if record.client_id != client_id {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was issued to another client".into(),
        )
        .because(format!(
            "the code was issued to client {}, not to this one",
            record.client_id
        )));
    }
    // §4.1.3: redirect_uri must be repeated, identically, if the authorization request had it.
    if (record.redirect_uri_given || redirect_uri.is_some())
        && redirect_uri != Some(record.redirect_uri.as_str())
    {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri does not match the authorization request".into(),
        )
        .because(format!(
            "redirect_uri {} does not match {} of the authorization request{}",
            redirect_uri.map_or("(none)".to_string(), |u| u.chars().take(300).collect()),
            record.redirect_uri,
            if record.redirect_uri_given {
                ""
            } else {
                " (which named none: send none)"
            }
        )));
    }
    check_pkce(record.code_challenge.as_deref(), verifier)
}

/// RFC 7636 §4.6, and RFC 9700 §2.1.1: a verifier for a request that had no challenge is a
/// downgrade attempt and is refused too.
fn check_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::InvalidGrant(
            "code_verifier sent, but the authorization request had no code_challenge".into(),
        )),
        (Some(_), None) => Err(OAuthError::InvalidGrant("code_verifier is required".into())),
        (Some(challenge), Some(verifier)) => {
            let valid_form = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            let computed = URL_SAFE_NO_PAD.encode(secret::sha256(verifier.as_bytes()));
            if valid_form && secret::ct_eq(computed.as_bytes(), challenge.as_bytes()) {
                Ok(())
            } else {
                Err(OAuthError::InvalidGrant(
                    "code_verifier does not match the code_challenge".into(),
                ))
            }
        }
    }
}

async fn refresh(
    app: &Server,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let presented = params
        .single("refresh_token")?
        .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".into()))?;
    let requested_scope = params.single("scope")?;
    let presented = Secret::new(presented);
    let now = now();
    let dead =
        || OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
    if presented.expose().len() > MAX_TOKEN_LEN {
        return Err(dead().because("the refresh token is longer than any token linkgate issues"));
    }
    let mut scope = String::new();
    let mut link = None;
    // On PostgreSQL the grant's read is awaited here, not waited for by a thread.
    let ahead = tokens::prefetch(&app.store, presented.expose(), now).await?;
    let outcome = tokens::refresh(
        &app.store,
        presented.expose(),
        now,
        ahead.as_ref(),
        |token, grant| {
            scope = check_refresh(&client.id, requested_scope, token, grant)?;
            // The audience survives the refresh; `resource` may repeat it, not change it.
            target::granted(grant.resource.as_deref(), params)?;
            link = Some(customer_check::Link::of(grant));
            Ok::<_, OAuthError>(Issue {
                scope: scope.clone(),
                access_secs: app.config.tokens.access_secs,
                rotate: client.rotate_refresh_tokens,
            })
        },
    )
    .await?;
    let (access_token, rotated) = match outcome {
        Refreshed::Issued {
            access,
            refresh,
            wrote,
        } => {
            if wrote {
                app.store.flush().await?;
            }
            let Some(link) = link else {
                return Err(OAuthError::ServerError(
                    "a refresh without its grant".into(),
                ));
            };
            // For "last refresh" on /account; a failure to note it must not fail the refresh.
            if let Err(e) = app.store.note_refresh(&link.grant_id, now) {
                tracing::warn!("noting a refresh failed: {e}");
            }
            // A login API customer deleted in the operator's system ends here (`check_url`).
            customer_check::after_refresh(app, &client.id, &link, now).await?;
            (access, refresh)
        }
        Refreshed::Dead => {
            let why = match presented.expose().starts_with(ACCESS_PREFIX) {
                true => "is an access token, not a refresh token".to_string(),
                false => tokens::why_dead(&app.store, presented.expose(), now)?,
            };
            return Err(dead().because(format!("the refresh token {why}")));
        }
        Refreshed::Reused => {
            app.store.flush().await?;
            tracing::warn!(client = %client.id, "a rotated-out refresh token was reused; the grant is revoked");
            return Err(OAuthError::InvalidGrant(
                "the refresh token was already replaced; the link is revoked".into(),
            ));
        }
    };
    if access_token.expose().len() > MAX_TOKEN_LEN {
        return Err(OAuthError::InvalidScope(
            "the requested scope is too long to fit in a token".into(),
        ));
    }
    // Debug, not info: refreshes are the hot path, and the access log line already records each.
    tracing::debug!(client = %client.id, rotated = rotated.is_some(), "tokens refreshed");
    Ok(TokenResponse {
        access_token,
        expires_in: app.config.tokens.access_secs,
        refresh_token: Some(rotated.unwrap_or(presented)),
        scope,
    })
}

/// §6: whether `client_id` may refresh `token` of `grant`; the scope of the new access token.
fn check_refresh(
    client_id: &str,
    requested_scope: Option<&str>,
    token: &TokenRecord,
    grant: &Grant,
) -> Result<String, OAuthError> {
    if grant.client_id != client_id {
        return Err(OAuthError::InvalidGrant(
            "the refresh token was issued to another client".into(),
        ));
    }
    narrowed_scope(requested_scope, &token.scope, &grant.scope)
}

/// §6: a refresh may narrow the scope, never widen it. Without `scope`, the refresh token's own.
fn narrowed_scope(
    requested: Option<&str>,
    token_scope: &str,
    granted: &str,
) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(token_scope.to_string());
    };
    let requested = normalize_scope(requested).ok_or_else(|| {
        OAuthError::InvalidScope("scope contains characters that are not allowed".into())
    })?;
    if !scope_within(&requested, granted) {
        return Err(OAuthError::InvalidScope(
            "the requested scope exceeds what the user granted".into(),
        ));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures;

    #[test]
    fn pkce_s256_example_from_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_pkce(Some(challenge), Some(verifier)).is_ok());
        assert!(check_pkce(Some(challenge), Some(&verifier.replace('d', "e"))).is_err());
        assert!(check_pkce(Some(challenge), None).is_err());
        assert!(check_pkce(None, Some(verifier)).is_err());
        assert!(check_pkce(None, None).is_ok());
    }

    /// A live, unused code for `alexa`, from a request that named its redirect URI and had a
    /// PKCE challenge when `pkce`.
    fn code(redirect_uri_given: bool, pkce: bool) -> CodeRecord {
        CodeRecord {
            client_id: "alexa".into(),
            redirect_uri: "https://x.example/cb".into(),
            redirect_uri_given,
            code_challenge: pkce.then(|| "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            ..fixtures::code(0)
        }
    }

    fn refused(result: Result<impl std::fmt::Debug, OAuthError>) -> String {
        let error = result.expect_err("refused");
        format!("{} {}", error.code(), error.description())
    }

    #[test]
    fn a_code_is_exchanged_only_by_its_client_with_its_redirect_uri_and_verifier() {
        let uri = Some("https://x.example/cb");
        let verifier = Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert!(check_code(&code(true, false), "alexa", uri, None).is_ok());
        assert!(check_code(&code(true, true), "alexa", uri, verifier).is_ok());
        // Not named at /authorize: may be left out, but if given must match.
        assert!(check_code(&code(false, false), "alexa", None, None).is_ok());
        assert!(check_code(&code(false, false), "alexa", uri, None).is_ok());
        for (what, result) in [
            (
                "client",
                check_code(&code(true, false), "google", uri, None),
            ),
            (
                "missing uri",
                check_code(&code(true, false), "alexa", None, None),
            ),
            (
                "other uri",
                check_code(
                    &code(true, false),
                    "alexa",
                    Some("https://x.example/cb/"),
                    None,
                ),
            ),
            (
                "other uri, not named",
                check_code(
                    &code(false, false),
                    "alexa",
                    Some("https://evil.example/"),
                    None,
                ),
            ),
            (
                "no verifier",
                check_code(&code(true, true), "alexa", uri, None),
            ),
            (
                "downgrade",
                check_code(&code(true, false), "alexa", uri, verifier),
            ),
        ] {
            assert!(refused(result).starts_with("invalid_grant "), "{what}");
        }
    }

    #[test]
    fn a_refresh_is_for_its_client_and_may_narrow_but_not_widen_the_scope() {
        let grant = Grant {
            client_id: "alexa".into(),
            scope: "profile email".into(),
            ..fixtures::grant("g")
        };
        let token = TokenRecord::refresh(&grant, "profile email", 0);
        let scope = |client: &str, requested: Option<&str>| {
            check_refresh(client, requested, &token, &grant)
        };
        assert_eq!(scope("alexa", None).unwrap(), "profile email");
        assert_eq!(scope("alexa", Some(" email ")).unwrap(), "email");
        assert!(refused(scope("google", None)).starts_with("invalid_grant "));
        assert!(refused(scope("alexa", Some("profile admin"))).starts_with("invalid_scope "));
        assert!(refused(scope("alexa", Some("bad\\scope"))).starts_with("invalid_scope "));
    }
}
