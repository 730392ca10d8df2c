//! RFC 6749 §4.4 `client_credentials`: a token for the client itself, naming no user — what an
//! Alexa+ add-on uses for service-level calls to its MCP server (`initialize`, `tools/list`,
//! health checks). Only for clients whose `grant_types` enable it (checked by the caller); the
//! client is authenticated like every grant (and throttled like every secret check). The scope
//! is limited to the client's `service_scopes`, the audience is its `resource` (RFC 8707), and
//! there is no refresh token: the client asks again.

use super::{normalize_scope, target, OAuthError, TokenResponse};
use crate::base::urlencoded::Params;
use crate::config::Client;
use crate::oauth::server::Server;
use crate::store::now;

pub async fn client_credentials(
    app: &Server,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let scope = service_scope(client, params.single("scope")?)?;
    let resource = target::requested(client, params)?;
    let now = now();
    let grant = app
        .store
        .service_grant(&client.id, &scope, resource.as_deref(), now)
        .await?;
    let access_secs = app.config.tokens.access_secs;
    let access_token =
        super::tokens::issue::access(&app.store, &grant, &grant.scope, now, access_secs)?;
    tracing::info!(client = %client.id, "service token issued (client_credentials)");
    Ok(TokenResponse {
        access_token,
        expires_in: access_secs,
        refresh_token: None,
        scope,
    })
}

/// The scope of a service token: the requested scopes, each one of the client's
/// `service_scopes`, or all of them when none is requested (RFC 6749 §3.3 lets the server pick).
/// Sorted and without repeats, so one scope is one service grant.
fn service_scope(client: &Client, requested: Option<&str>) -> Result<String, OAuthError> {
    let requested = match requested {
        None => client.service_scopes.join(" "),
        Some(scope) => normalize_scope(scope).ok_or_else(|| {
            OAuthError::InvalidScope("scope contains characters that are not allowed".into())
        })?,
    };
    let mut scopes: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(other) = scopes
        .iter()
        .find(|s| !client.service_scopes.iter().any(|allowed| allowed == *s))
    {
        return Err(OAuthError::InvalidScope(format!(
            "scope `{}` is not one of this client's service_scopes",
            other.chars().take(100).collect::<String>()
        )));
    }
    scopes.sort_unstable();
    scopes.dedup();
    Ok(scopes.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(service_scopes: &[&str]) -> Client {
        let mut client = crate::config::Client::for_tests("mcp");
        client.service_scopes = service_scopes.iter().map(|s| s.to_string()).collect();
        client
    }

    #[test]
    fn a_service_scope_is_within_service_scopes_sorted_and_all_of_them_by_default() {
        let c = client(&["tools", "catalog"]);
        assert_eq!(service_scope(&c, None).unwrap(), "catalog tools");
        assert_eq!(
            service_scope(&c, Some("tools  catalog tools")).unwrap(),
            "catalog tools"
        );
        assert_eq!(service_scope(&c, Some("")).unwrap(), "");
        let refused = service_scope(&c, Some("catalog profile")).unwrap_err();
        assert_eq!(refused.code(), "invalid_scope");
        assert!(refused.description().contains("`profile`"));
        assert_eq!(service_scope(&client(&[]), None).unwrap(), "");
        assert_eq!(
            service_scope(&c, Some("bad\"quote")).unwrap_err().code(),
            "invalid_scope"
        );
    }
}
