//! Client authentication at `/token`, `/introspect` and `/revoke` (RFC 6749 §2.3.1): HTTP Basic
//! (`client_secret_basic`, what Alexa sends) or `client_id` + `client_secret` in the form body
//! (`client_secret_post`, what Google sends). Never both.

pub use super::secret_cache::SecretCache;
use super::OAuthError;
use crate::base::secret::{self, Secret};
use crate::base::urlencoded::Params;
use crate::config::{Client, ClientSecret};
use crate::oauth::server::Server;
use std::net::IpAddr;

/// Credentials from an `Authorization: Basic` header, already form-decoded.
#[derive(Debug)]
pub struct BasicCredentials {
    pub client_id: String,
    pub secret: Secret,
}

/// Who is calling a client-authenticated endpoint: the credentials it presents in HTTP Basic
/// (the body's are in the form) and the address it calls from (for the guessing throttle).
#[derive(Debug)]
pub struct Caller {
    pub basic: Option<BasicCredentials>,
    pub ip: IpAddr,
}

/// Identifies and authenticates the calling client. Each check of a secret first reserves an
/// attempt in `app.client_throttle` (`oauth::client_throttle`): a wrong secret keeps it, a right
/// one gives it back. Only the check is held, not the request after it, so a client with many
/// requests in flight from one address (Alexa's egress) is never counted for them; a plain
/// secret is reserved, compared and settled without yielding, so a burst is held like a sequence.
pub async fn authenticate<'a>(
    app: &'a Server,
    params: &Params,
    caller: &Caller,
) -> Result<&'a Client, OAuthError> {
    let (client_id, presented) = presented_credentials(params, caller.basic.as_ref())?;
    let client = app.config.client(client_id);
    let failed = || {
        OAuthError::InvalidClient("client authentication failed".into()).because(match client {
            Some(_) => "the client secret does not match".to_string(),
            None => format!(
                "client_id {} is not configured (configured: {})",
                client_id.chars().take(100).collect::<String>(),
                app.config
                    .clients
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    };
    // Only registered ids get a count of their own (bounded by the config).
    let counted_id = client.map(|c| c.id.as_str());
    // Several nodes: the counts of the others first (a database error leaves this node's own).
    let shared = app.store.shared();
    if shared {
        let now = crate::store::now();
        match app
            .client_throttle
            .shared_wait(&app.store, caller.ip, counted_id, now)
        {
            Ok(Some(wait)) => {
                tracing::warn!(client = counted_id.unwrap_or("(unknown)"), ip = %caller.ip, "client authentication throttled for {wait} s (counted on all nodes)");
                return Err(OAuthError::ClientThrottled(wait));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the shared client-secret throttle failed: {e}"),
        }
    }
    let attempt = app
        .client_throttle
        .reserve(caller.ip, counted_id, crate::store::now())
        .map_err(|wait| {
            tracing::warn!(client = counted_id.unwrap_or("(unknown)"), ip = %caller.ip, "client authentication throttled for {wait} s");
            OAuthError::ClientThrottled(wait)
        })?;
    let matched = match client {
        Some(client) => secret_matches(app, client, presented).await,
        None => Ok(false),
    };
    match (matched, client) {
        (Ok(true), Some(client)) => {
            app.client_throttle.succeeded(attempt);
            Ok(client)
        }
        (Ok(_), _) => {
            // Never the secret: who, from where.
            tracing::warn!(client = counted_id.unwrap_or("(unknown)"), ip = %caller.ip, "client authentication failed");
            if shared {
                let now = crate::store::now();
                if let Err(e) = app
                    .client_throttle
                    .shared_failure(&app.store, caller.ip, counted_id, now)
                {
                    tracing::warn!("counting a client-secret failure on all nodes failed: {e}");
                }
            }
            Err(failed())
        }
        (Err(error), _) => {
            app.client_throttle.succeeded(attempt);
            Err(error)
        }
    }
}

/// The client id the request claims (HTTP Basic's, else the body's), before it is checked: for
/// the linking log.
pub fn claimed_id<'a>(params: &'a Params, caller: &'a Caller) -> Option<&'a str> {
    match &caller.basic {
        Some(basic) => Some(&basic.client_id),
        None => params.single("client_id").ok().flatten(),
    }
}

/// The client id and secret the request presents, by exactly one method (§2.3.1).
fn presented_credentials<'a>(
    params: &'a Params,
    basic: Option<&'a BasicCredentials>,
) -> Result<(&'a str, &'a str), OAuthError> {
    let body_id = params.single("client_id")?;
    let body_secret = params.single("client_secret")?;
    let (client_id, presented) = match (basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method, not both HTTP Basic and client_secret"
                    .into(),
            ))
        }
        (Some(basic), None) => {
            if body_id.is_some_and(|id| id != basic.client_id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the one in HTTP Basic".into(),
                ));
            }
            (basic.client_id.as_str(), basic.secret.expose())
        }
        (None, Some(secret)) => match body_id {
            Some(id) => (id, secret),
            None => return Err(OAuthError::InvalidClient("client_id is missing".into())),
        },
        (None, None) => {
            return Err(OAuthError::InvalidClient(
                "client authentication is required (HTTP Basic or client_id and client_secret)"
                    .into(),
            ))
        }
    };
    Ok((client_id, presented))
}

async fn secret_matches(
    app: &Server,
    client: &Client,
    presented: &str,
) -> Result<bool, OAuthError> {
    match &client.secret {
        // Compare fixed-size digests in constant time, so neither content nor length leaks.
        ClientSecret::Plain(expected) => Ok(secret::ct_eq(
            &expected.key(),
            &secret::sha256(presented.as_bytes()),
        )),
        ClientSecret::Hash(phc) => {
            let cache_key = secret::sha256(format!("{}\0{presented}", client.id).as_bytes());
            if app.client_secret_cache.contains(&cache_key) {
                return Ok(true);
            }
            let (presented, phc) = (Secret::new(presented), phc.clone());
            // Boxed: an argon2 hash follows anyway, and every client-authenticated request's
            // future would otherwise carry room for this wait.
            let ok = Box::pin(
                app.password_workers
                    .run(move || secret::verify_password(&presented, &phc)),
            )
            .await
            .ok_or_else(|| OAuthError::ServerError("the password workers are gone".into()))?;
            if ok {
                app.client_secret_cache.insert(cache_key);
            }
            Ok(ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presented(body: &str, basic: Option<(&str, &str)>) -> Result<(String, String), String> {
        let params = Params::parse(body.as_bytes()).unwrap();
        let basic = basic.map(|(id, secret)| BasicCredentials {
            client_id: id.into(),
            secret: Secret::new(secret),
        });
        presented_credentials(&params, basic.as_ref())
            .map(|(id, secret)| (id.to_string(), secret.to_string()))
            .map_err(|e| e.code().to_string())
    }

    #[test]
    fn a_client_presents_its_credentials_one_way() {
        let ok = |id: &str, secret: &str| Ok((id.to_string(), secret.to_string()));
        assert_eq!(presented("", Some(("alexa", "s3"))), ok("alexa", "s3"));
        assert_eq!(
            presented("client_id=alexa", Some(("alexa", "s3"))),
            ok("alexa", "s3")
        );
        assert_eq!(
            presented("client_id=google&client_secret=s4", None),
            ok("google", "s4")
        );
        let refused = |body: &str, basic| presented(body, basic).unwrap_err();
        assert_eq!(
            refused("client_secret=s4", Some(("alexa", "s3"))),
            "invalid_request"
        );
        assert_eq!(
            refused("client_id=google", Some(("alexa", "s3"))),
            "invalid_request"
        );
        assert_eq!(refused("client_secret=s4", None), "invalid_client");
        assert_eq!(refused("client_id=google", None), "invalid_client");
        assert_eq!(refused("", None), "invalid_client");
        assert_eq!(
            refused("client_id=a&client_id=b&client_secret=s", None),
            "invalid_request"
        );
    }
}
