//! What a skill backend asks about a token: `/userinfo` (who is this?), `/introspect`
//! (RFC 7662: is it alive, and whose is it?) and `/revoke` (RFC 7009).

use super::client::{self, Caller};
use super::linking_log::Step;
use super::refusal::refusal;
use super::tokens;
use super::{OAuthError, MAX_TOKEN_LEN};
use crate::base::urlencoded::Params;
use crate::config::GrantType;
use crate::oauth::server::Server;
use crate::store::{now, TokenKind};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub sub: String,
    pub preferred_username: String,
}

/// `GET /userinfo` with `Authorization: Bearer <access token>`; a refusal is logged with its
/// reason and reference (`linking_log`).
pub async fn userinfo(app: &Server, bearer: Option<&str>) -> Result<UserInfo, OAuthError> {
    let result = checked_userinfo(app, bearer).await;
    result.map_err(|error| {
        // The token names its client only once it checks out; a refused one is nobody's.
        refusal(app, Step::Userinfo, None, error)
    })
}

async fn checked_userinfo(app: &Server, bearer: Option<&str>) -> Result<UserInfo, OAuthError> {
    let token = bearer.ok_or(OAuthError::InvalidToken(None))?;
    let invalid =
        || OAuthError::InvalidToken(Some("the access token is invalid or expired".into()));
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid());
    }
    match checked_token(app, token).await? {
        // A service token (`client_credentials`) names no user.
        Some((record, grant)) if record.kind == TokenKind::Access && !grant.is_service() => {
            Ok(UserInfo {
                sub: grant.sub,
                preferred_username: grant.username,
            })
        }
        Some((record, grant)) if record.kind == TokenKind::Access => {
            Err(invalid().because(format!(
                "a service token of client {} names no user",
                grant.client_id
            )))
        }
        Some(_) => Err(invalid().because("a refresh token is not an access token")),
        None => {
            let why = tokens::why_dead(&app.store, token, now())?;
            Err(invalid().because(format!("the access token {why}")))
        }
    }
}

/// The live token `presented` with its grant. On PostgreSQL its one query is awaited here, on
/// the request's task (`tokens::prefetch`); the check itself then reads nothing more.
async fn checked_token(
    app: &Server,
    presented: &str,
) -> Result<Option<(crate::store::TokenRecord, crate::store::Grant)>, OAuthError> {
    let now = now();
    let ahead = tokens::prefetch(&app.store, presented, now).await?;
    Ok(tokens::token(&app.store, presented, now, ahead.as_ref())?)
}

/// RFC 7662 §2.2. Inactive tokens carry only `active: false`.
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// The RFC 8707 resource the token is for, if the client named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// `POST /introspect`. A client learns only about its own tokens: another client's token is
/// reported inactive, as an unknown one is.
pub async fn introspect(
    app: &Server,
    params: &Params,
    caller: Caller,
) -> Result<Introspection, OAuthError> {
    let result = checked_introspect(app, params, &caller).await;
    result.map_err(|error| {
        let claimed = client::claimed_id(params, &caller);
        refusal(app, Step::Introspect, claimed, error)
    })
}

async fn checked_introspect(
    app: &Server,
    params: &Params,
    caller: &Caller,
) -> Result<Introspection, OAuthError> {
    let client = client::authenticate(app, params, caller).await?;
    let token = required_token(params)?;
    if token.len() > MAX_TOKEN_LEN {
        return Ok(Introspection::default());
    }
    let Some((record, grant)) = checked_token(app, token).await? else {
        return Ok(Introspection::default());
    };
    if grant.client_id != client.id || record.retired {
        return Ok(Introspection::default());
    }
    // A service token dies with the client's client_credentials grant type.
    let service = grant.is_service();
    if service && !client.allows(GrantType::ClientCredentials) {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        // RFC 7662 §2.2: a service token's subject is the client itself.
        sub: Some(grant.sub),
        username: (!service).then_some(grant.username),
        aud: grant.resource,
        client_id: Some(grant.client_id),
        scope: Some(record.scope),
        exp: (record.expires_at != 0).then_some(record.expires_at),
        iat: Some(record.issued_at),
        token_type: Some(match record.kind {
            TokenKind::Access => "Bearer",
            TokenKind::Refresh => "refresh_token",
        }),
    })
}

/// `POST /revoke`. Revoking a refresh token revokes the whole grant (its access tokens too,
/// RFC 7009 §2.1); revoking an access token revokes just that token (a deny entry until it
/// expires). Unknown tokens, and other
/// clients' tokens, are answered with success and left alone (§2.2).
pub async fn revoke(app: &Server, params: &Params, caller: Caller) -> Result<(), OAuthError> {
    let result = checked_revoke(app, params, &caller).await;
    result.map_err(|error| {
        let claimed = client::claimed_id(params, &caller);
        refusal(app, Step::Revoke, claimed, error)
    })
}

async fn checked_revoke(app: &Server, params: &Params, caller: &Caller) -> Result<(), OAuthError> {
    let client = client::authenticate(app, params, caller).await?;
    let token = required_token(params)?;
    if token.len() > MAX_TOKEN_LEN {
        return Ok(());
    }
    let Some((record, grant)) = tokens::token(&app.store, token, now(), None)? else {
        return Ok(());
    };
    if grant.client_id != client.id {
        return Ok(());
    }
    match record.kind {
        TokenKind::Refresh => app.store.revoke_grant(
            &grant.id,
            &format!("revoked by client {} at /revoke", client.id),
        )?,
        TokenKind::Access => tokens::revoke_access(&app.store, token)?,
    }
    app.store.flush().await?;
    tracing::info!(client = %client.id, kind = ?record.kind, "token revoked");
    Ok(())
}

fn required_token(params: &Params) -> Result<&str, OAuthError> {
    params
        .single("token")?
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))
}
