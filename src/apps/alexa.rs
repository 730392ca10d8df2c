//! Alexa app-to-app account linking that starts in the operator's app, done by linkgate:
//!
//! 1. `start`: the URLs the app opens — the Alexa app's consent screen (its universal link) and
//!    Login with Amazon as the fallback when the Alexa app is not installed — with a fresh
//!    `state` bound to the customer (`state.rs`).
//! 2. Amazon sends the customer back to the app's universal link with an Amazon code and the
//!    state; the app hands both to `finish`, which spends the state (single use), exchanges the
//!    code at Login with Amazon, looks up the customer's Alexa API hosts, issues a linkgate code
//!    for the app's universal link and asks the skill enablement API to enable the skill linked
//!    with it; Alexa then redeems that code at `/token` like any other. If Amazon refuses,
//!    the linkgate code is withdrawn: nothing is left half-linked.
//! 3. `status` and `unlink` use the customer's Amazon tokens kept from `finish`
//!    (`store/app_links.rs`); `unlink` also revokes what linkgate issued for the link.

use super::amazon::{self, Enabled};
use super::customer::Customer;
use super::{state, AppError};
use crate::base::urlencoded::append_query;
use crate::config::{AlexaApp, Client};
use crate::metrics::count;
use crate::oauth::authorize::issue_code;
use crate::oauth::pending::Pending;
use crate::oauth::server::Server;
use crate::store::{now, AlexaLink, LOGIN_API_GENERATION};
use serde::Serialize;
use std::time::Duration;

/// The scope Amazon's consent screen asks for.
const SCOPE: &str = "alexa::skills:account_linking";

#[derive(Debug, Serialize)]
pub struct Started {
    pub alexa_app_url: String,
    pub lwa_url: String,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct Finished {
    /// "linked" or "already_linked".
    pub status: &'static str,
}

/// The client a request means: the one named, or the only one with `[clients.alexa_app]`.
fn alexa_client<'a>(
    app: &'a Server,
    client_id: Option<&str>,
) -> Result<(&'a Client, &'a AlexaApp), AppError> {
    let with_app = |c: &'a Client| c.alexa_app.as_ref().map(|a| (c, a));
    match client_id {
        Some(id) => match app.config.client(id) {
            Some(client) => with_app(client).ok_or_else(|| {
                AppError::NotConfigured(format!(
                    "client {id} has no [clients.alexa_app] (Alexa app-to-app linking)"
                ))
            }),
            None => Err(AppError::BadRequest(
                crate::oauth::OAuthError::InvalidRequest("unknown client_id".into()),
            )),
        },
        None => {
            let mut found = app.config.clients.iter().filter_map(with_app);
            match (found.next(), found.next()) {
                (Some(one), None) => Ok(one),
                (None, _) => Err(AppError::NotConfigured(
                    "no client has [clients.alexa_app] (Alexa app-to-app linking)".into(),
                )),
                (Some(_), Some(_)) => Err(AppError::BadRequest(
                    crate::oauth::OAuthError::InvalidRequest(
                        "several clients have [clients.alexa_app]: name one in client_id".into(),
                    ),
                )),
            }
        }
    }
}

fn timeout(app: &Server) -> Duration {
    app.config
        .apps
        .as_ref()
        .map_or(Duration::from_secs(3), |a| a.timeout)
}

/// `POST /app/alexa/start`.
pub fn start(
    app: &Server,
    customer: &Customer,
    client_id: Option<&str>,
) -> Result<Started, AppError> {
    let (client, alexa) = alexa_client(app, client_id)?;
    let state = state::seal(&app.store.form_key()?, &client.id, &customer.sub, now());
    let common = [
        ("client_id", alexa.lwa_client_id.as_str()),
        ("scope", SCOPE),
        ("response_type", "code"),
        ("redirect_uri", alexa.app_redirect_uri.as_str()),
        ("state", state.as_str()),
    ];
    let mut consent = vec![
        ("fragment", "skill-account-linking-consent"),
        ("skill_stage", alexa.stage.as_str()),
    ];
    consent.extend_from_slice(&common);
    tracing::info!(client = %client.id, "app: Alexa app-to-app link started");
    Ok(Started {
        alexa_app_url: append_query(&alexa.alexa_app_url, &consent),
        lwa_url: append_query(&alexa.lwa_authorize_url, &common),
        state,
    })
}

/// `POST /app/alexa/finish`: `code` is Amazon's, `state` the one `start` gave.
pub async fn finish(
    app: &Server,
    customer: &Customer,
    code: &str,
    state: &str,
) -> Result<Finished, AppError> {
    let opened = state::open(&app.store.form_key()?, state, &customer.sub, now()).map_err(|r| {
        tracing::info!("app: an Alexa link's state was refused: it {}", r.reason());
        AppError::BadState(r.reason())
    })?;
    let (client, alexa) = alexa_client(app, Some(&opened.client_id))?;
    // Single use, on every node: of a burst of finishes with one state, one goes on to Amazon.
    if !app.store.spend_form(&opened.nonce, opened.expires_at)? {
        tracing::info!(client = %client.id, "app: an Alexa link's state was used again");
        return Err(AppError::BadState("has been used already"));
    }
    let result = link(app, customer, client, alexa, code).await;
    match &result {
        Ok(Finished { status: "linked" }) => count(&app.metrics.alexa_linked),
        Ok(_) => count(&app.metrics.alexa_already_linked),
        Err(_) => count(&app.metrics.alexa_failed),
    }
    result
}

async fn link(
    app: &Server,
    customer: &Customer,
    client: &Client,
    alexa: &AlexaApp,
    amazon_code: &str,
) -> Result<Finished, AppError> {
    let timeout = timeout(app);
    let tokens = amazon::exchange_code(alexa, amazon_code, timeout).await?;
    let hosts = amazon::endpoints(alexa, &tokens.access_token, timeout).await?;
    // The code Alexa will redeem: for the app's universal link, no PKCE (Amazon sends none).
    let pending = Pending::new(
        client.id.clone(),
        alexa.app_redirect_uri.clone(),
        true,
        None,
        String::new(),
        None,
        now(),
    );
    let code = issue_code(
        app,
        client,
        &pending,
        customer.sub.clone(),
        customer.name.clone(),
        LOGIN_API_GENERATION,
    )
    .await?;
    count(&app.metrics.app_codes_issued);
    let mut last_error = None;
    for host in &hosts {
        match amazon::enable(alexa, host, &tokens.access_token, code.expose(), timeout).await {
            Ok(enabled) => {
                if enabled == Enabled::AlreadyEnabled {
                    // Amazon kept the link it had; the new code is not needed.
                    app.store.withdraw_code(&code.key())?;
                }
                let at = now();
                app.store.put_alexa_link(&AlexaLink {
                    client_id: client.id.clone(),
                    sub: customer.sub.clone(),
                    endpoint: host.clone(),
                    amazon_access_token: tokens.access_token.clone(),
                    amazon_access_expires_at: at + tokens.expires_in,
                    amazon_refresh_token: tokens.refresh_token.clone().unwrap_or_default(),
                    linked_at: at,
                })?;
                let status = match enabled {
                    Enabled::Linked => "linked",
                    Enabled::AlreadyEnabled => "already_linked",
                };
                tracing::info!(client = %client.id, status, "app: Alexa skill enabled from the operator's app");
                return Ok(Finished { status });
            }
            Err(e) => last_error = Some(e),
        }
    }
    // No host enabled the skill: the code must not outlive the attempt.
    app.store.withdraw_code(&code.key())?;
    Err(last_error.unwrap_or_else(|| AppError::Amazon {
        step: "skill enablement",
        status: 502,
        message: "no Alexa API host to call".into(),
    }))
}

/// The customer's Amazon access token for `link`, refreshed at Login with Amazon when it has
/// expired (and kept).
async fn amazon_token(
    app: &Server,
    alexa: &AlexaApp,
    link: &mut AlexaLink,
) -> Result<String, AppError> {
    if link.amazon_access_expires_at > now() + 30 || link.amazon_refresh_token.is_empty() {
        return Ok(link.amazon_access_token.clone());
    }
    let tokens = amazon::refresh(alexa, &link.amazon_refresh_token, timeout(app)).await?;
    link.amazon_access_token = tokens.access_token.clone();
    link.amazon_access_expires_at = now() + tokens.expires_in;
    if let Some(refresh) = tokens.refresh_token {
        link.amazon_refresh_token = refresh;
    }
    Ok(tokens.access_token)
}

/// `GET /app/alexa/status`: the enablement as Amazon reports it.
pub async fn status(
    app: &Server,
    customer: &Customer,
    client_id: Option<&str>,
) -> Result<serde_json::Value, AppError> {
    let (client, alexa) = alexa_client(app, client_id)?;
    let linked_here = app
        .store
        .user_grants(&customer.sub)?
        .iter()
        .any(|g| g.client_id == client.id);
    let Some(mut link) = app.store.alexa_link(&client.id, &customer.sub)? else {
        return Ok(serde_json::json!({
            "status": "not_linked",
            "linkgate_grant": linked_here,
        }));
    };
    let token = amazon_token(app, alexa, &mut link).await?;
    app.store.put_alexa_link(&link)?;
    let reported = amazon::status(alexa, &link.endpoint, &token, timeout(app)).await?;
    let Some(reported) = reported else {
        return Ok(serde_json::json!({
            "status": "not_linked",
            "linkgate_grant": linked_here,
        }));
    };
    let account_link = reported["accountLink"]["status"].as_str().unwrap_or("");
    let status = if account_link == "LINKED" {
        "linked"
    } else {
        "not_linked"
    };
    Ok(serde_json::json!({
        "status": status,
        "skill_status": reported["status"],
        "account_link_status": reported["accountLink"]["status"],
        "linkgate_grant": linked_here,
    }))
}

/// `POST /app/alexa/unlink`: revokes what linkgate issued to the customer for the client, then
/// disables the skill at Amazon. linkgate's side is done first: should Amazon not answer, Alexa's
/// next refresh fails and Alexa unlinks the customer anyway.
pub async fn unlink(
    app: &Server,
    customer: &Customer,
    client_id: Option<&str>,
) -> Result<serde_json::Value, AppError> {
    let (client, alexa) = alexa_client(app, client_id)?;
    // Codes first, as `--unlink-user` (admin.rs): a racing exchange's grant is then listed below.
    app.store.revoke_subject_codes(&customer.sub)?;
    let mut revoked = 0;
    for grant in app.store.user_grants(&customer.sub)? {
        if grant.client_id == client.id {
            app.store.revoke_grant(
                &grant.id,
                "unlinked from the operator's app (/app/alexa/unlink)",
            )?;
            revoked += 1;
        }
    }
    app.store.flush().await?;
    count(&app.metrics.alexa_unlinked);
    tracing::info!(client = %client.id, grants = revoked, "app: Alexa link ended from the operator's app");
    let Some(mut link) = app.store.remove_alexa_link(&client.id, &customer.sub)? else {
        return Ok(serde_json::json!({
            "status": "unlinked",
            "grants_revoked": revoked,
            "skill_disabled": false,
        }));
    };
    let disabled = async {
        let token = amazon_token(app, alexa, &mut link).await?;
        amazon::disable(alexa, &link.endpoint, &token, timeout(app)).await
    }
    .await;
    Ok(match disabled {
        Ok(()) => serde_json::json!({
            "status": "unlinked",
            "grants_revoked": revoked,
            "skill_disabled": true,
        }),
        Err(e) => serde_json::json!({
            "status": "unlinked",
            "grants_revoked": revoked,
            "skill_disabled": false,
            "message": e.message(),
        }),
    })
}
