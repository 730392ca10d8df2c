//! `POST /app/authorize`: the Alexa app (app-to-app linking that starts in the Alexa app) or the
//! Google app (App Flip) handed the operator's app the usual OAuth parameters; the app, whose
//! customer is signed in, asks for a code for exactly those parameters. They are validated
//! exactly as `GET /authorize` validates them (`oauth::authorize::decide`: registered client,
//! exact redirect URI, PKCE, scope), and the code is the browser's code: same TTL, single use,
//! bound to the customer, the client, the redirect URI and the PKCE challenge.

use super::customer::Customer;
use super::AppError;
use crate::base::urlencoded::{append_query, Params};
use crate::oauth::authorize::{decide, issue_code, Decision, ErrorPage};
use crate::oauth::server::Server;
use crate::oauth::OAuthError;
use crate::store::{now, LOGIN_API_GENERATION};

/// What the app does next: open `redirect_to`. `code` is also given on its own (App Flip on
/// Android returns it in an intent rather than a URL).
#[derive(Debug)]
pub struct Authorized {
    pub code: Option<String>,
    pub redirect_to: String,
}

/// `form` is the request's parameters, form-encoded (`http::app_routes` turns JSON into a form).
pub async fn authorize(
    app: &Server,
    customer: &Customer,
    form: &[u8],
) -> Result<Authorized, AppError> {
    let (client, pending) = match decide(&app.config.clients, form, now()) {
        Decision::Proceed { client, pending } => (client, pending),
        Decision::ErrorPage(page) => return Err(AppError::BadRequest(page_error(page))),
        Decision::Redirect { to, .. } => return Err(AppError::BadRequest(redirect_error(&to))),
    };
    let decision = Params::parse(form)
        .ok()
        .and_then(|p| p.single("decision").ok().flatten().map(str::to_string));
    let with_state = |query: &[(&str, &str)]| {
        let mut query = query.to_vec();
        if let Some(state) = &pending.state {
            query.push(("state", state));
        }
        append_query(&pending.redirect_uri, &query)
    };
    match decision.as_deref() {
        None | Some("allow") => {}
        Some("deny") => {
            tracing::info!(client = %client.id, "app: the customer declined the link");
            let error = OAuthError::AccessDenied;
            let description = error.description();
            return Ok(Authorized {
                code: None,
                redirect_to: with_state(&[
                    ("error", error.code()),
                    ("error_description", &description),
                ]),
            });
        }
        Some(_) => {
            return Err(AppError::BadRequest(OAuthError::InvalidRequest(
                "decision must be `allow` or `deny`".into(),
            )))
        }
    }
    let code = issue_code(
        app,
        client,
        &pending,
        customer.sub.clone(),
        customer.name.clone(),
        LOGIN_API_GENERATION,
    )
    .await?;
    tracing::info!(client = %client.id, "app: authorization code issued to the operator's app");
    count_app_link(app);
    Ok(Authorized {
        redirect_to: with_state(&[("code", code.expose())]),
        code: Some(code.expose().to_string()),
    })
}

fn count_app_link(app: &Server) {
    crate::metrics::count(&app.metrics.app_codes_issued);
}

/// The OAuth error for a request `GET /authorize` would answer with an error page.
fn page_error(page: ErrorPage) -> OAuthError {
    match page {
        ErrorPage::UnknownClient => OAuthError::InvalidRequest("unknown client_id".into()),
        ErrorPage::UnregisteredRedirectUri => {
            OAuthError::InvalidRequest("redirect_uri is not registered for this client".into())
        }
        ErrorPage::LinkMissing(name) => OAuthError::InvalidRequest(format!("{name} is required")),
        ErrorPage::LinkRepeated(name) => {
            OAuthError::InvalidRequest(format!("parameter `{name}` must not be repeated"))
        }
        _ => OAuthError::InvalidRequest("the parameters are not valid UTF-8".into()),
    }
}

/// The OAuth error `GET /authorize` would send back to the client's redirect URI.
fn redirect_error(to: &str) -> OAuthError {
    let query = to.rsplit_once('?').map_or("", |(_, q)| q);
    let params = Params::parse(query.as_bytes()).ok();
    let get = |name: &str| {
        params
            .as_ref()
            .and_then(|p| p.single(name).ok().flatten().map(str::to_string))
            .unwrap_or_default()
    };
    let description = get("error_description");
    match get("error").as_str() {
        "unsupported_response_type" => OAuthError::UnsupportedResponseType(description),
        "invalid_scope" => OAuthError::InvalidScope(description),
        _ => OAuthError::InvalidRequest(description),
    }
}
