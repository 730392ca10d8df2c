//! Who the app's customer is. Either the operator's app presents its own session token
//! (`Authorization: Bearer …`), which linkgate asks the operator's session API about
//! (`[apps] session_url`, GET, the same header passed on); or the operator's backend
//! authenticates with HTTP Basic `backend:<secret>` (`[apps] backend_secret_hash`) and names the
//! customer in `subject`. Fails closed: the API saying no is 401, the API not answering is 503.
//! Nothing is cached: every request asks again, so a session the operator ends is over at once.

use super::AppError;
use crate::base::secret::{self, Secret};
use crate::config::Apps;
use crate::oauth::server::Server;
use crate::outbound::{self, Call};
use std::net::IpAddr;

/// The longest subject accepted: it becomes `sub` in every token answer.
const MAX_SUBJECT_CHARS: usize = 255;

/// The customer an `/app/*` request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Stable id from the operator (`sub` in tokens, as for `[login.api]` customers).
    pub sub: String,
    /// A name to show (`--list-users`, `/userinfo`'s `preferred_username`); the subject if none.
    pub name: String,
}

/// The credentials an `/app/*` request carries.
pub enum Presented {
    /// The app's own session token.
    Session(String),
    /// The operator's backend secret (HTTP Basic `backend:<secret>`).
    Backend(Secret),
    None,
}

/// The customer the request is for, or why not.
pub async fn identify(
    app: &Server,
    presented: Presented,
    subject: Option<&str>,
    ip: IpAddr,
) -> Result<Customer, AppError> {
    let Some(apps) = &app.config.apps else {
        return Err(AppError::NotConfigured(
            "linking from the operator's app is not configured ([apps])".into(),
        ));
    };
    match presented {
        Presented::Session(token) => session(apps, &token).await,
        Presented::Backend(secret) => backend(app, apps, secret, subject, ip).await,
        Presented::None => Err(AppError::Unauthorized(
            "send the app's session token (Authorization: Bearer) or the backend's credentials"
                .into(),
        )),
    }
}

/// Asks the operator's session API who holds `token`.
async fn session(apps: &Apps, token: &str) -> Result<Customer, AppError> {
    let Some(target) = &apps.session else {
        return Err(AppError::Unauthorized(
            "app sessions are not accepted here ([apps] session_url is not set)".into(),
        ));
    };
    let call = Call {
        method: hyper::Method::GET,
        target,
        headers: vec![("authorization", format!("Bearer {token}"))],
        body: None,
        timeout: apps.timeout,
    };
    let answer = match outbound::send(call).await {
        Ok(answer) => answer,
        Err(fault) => {
            tracing::warn!(reason = %fault, "the operator's session API could not be asked");
            return Err(AppError::Unavailable(
                "the operator's session API did not answer".into(),
            ));
        }
    };
    judge(apps, answer.status, &answer.body)
}

/// What the session API's answer means. Pure, so every case is tested.
fn judge(apps: &Apps, status: u16, body: &[u8]) -> Result<Customer, AppError> {
    match status {
        401 | 403 => {
            tracing::info!(status, "the operator's session API refused an app session");
            return Err(AppError::Unauthorized(
                "the app's session is not valid (the operator's API refused it)".into(),
            ));
        }
        200..=299 => {}
        _ => {
            tracing::warn!(status, "the operator's session API answered an error");
            return Err(AppError::Unavailable(format!(
                "the operator's session API answered {status}"
            )));
        }
    }
    let unavailable = |why: &str| {
        tracing::warn!("the operator's session API answered 2xx {why}");
        AppError::Unavailable(format!("the operator's session API answered 2xx {why}"))
    };
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| unavailable("that is not JSON"))?;
    let text = |pointer: &str| match json.pointer(pointer) {
        Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
        // An integer id as written; a number JSON cannot carry exactly (beyond 64 bits, or a
        // fraction) is refused rather than rounded into someone else's id.
        Some(serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    };
    let sub = text(&apps.subject)
        .filter(|s| valid_subject(s))
        .ok_or_else(|| unavailable("without a usable subject at `subject`"))?;
    let name = apps
        .display_name
        .as_deref()
        .and_then(text)
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| sub.clone());
    Ok(Customer { sub, name })
}

fn valid_subject(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_SUBJECT_CHARS && !s.chars().any(char::is_control)
}

/// The operator's backend: its secret (throttled like a client secret), then the subject it
/// names.
async fn backend(
    app: &Server,
    apps: &Apps,
    presented: Secret,
    subject: Option<&str>,
    ip: IpAddr,
) -> Result<Customer, AppError> {
    let Some(phc) = &apps.backend_secret_hash else {
        return Err(AppError::Unauthorized(
            "backend credentials are not accepted here ([apps] backend_secret_hash is not set)"
                .into(),
        ));
    };
    let attempt = app
        .client_throttle
        .reserve(ip, None, crate::store::now())
        .map_err(|wait| {
            tracing::warn!(%ip, "app backend authentication throttled for {wait} s");
            AppError::Throttled(wait)
        })?;
    let cache_key = secret::sha256(format!("[apps] backend\0{}", presented.expose()).as_bytes());
    let cached = app.client_secret_cache.contains(&cache_key);
    let matched = if cached {
        true
    } else {
        let phc = phc.clone();
        let ok = app
            .password_workers
            .run(move || secret::verify_password(&presented, &phc))
            .await
            .unwrap_or(false);
        if ok {
            app.client_secret_cache.insert(cache_key);
        }
        ok
    };
    if !matched {
        tracing::warn!(%ip, "app backend authentication failed");
        return Err(AppError::Unauthorized(
            "backend authentication failed".into(),
        ));
    }
    app.client_throttle.succeeded(attempt);
    match subject.map(str::trim) {
        Some(sub) if valid_subject(sub) => Ok(Customer {
            sub: sub.to_string(),
            name: sub.to_string(),
        }),
        _ => Err(AppError::BadRequest(crate::oauth::OAuthError::InvalidRequest(
            format!("the backend must name the customer in `subject` (1 to {MAX_SUBJECT_CHARS} printable characters)"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> Apps {
        Apps {
            session: None,
            session_url: None,
            subject: "/user/id".into(),
            display_name: Some("/user/name".into()),
            timeout: std::time::Duration::from_secs(3),
            backend_secret_hash: None,
            ios_app_ids: Vec::new(),
            android_package: None,
            android_cert_fingerprints: Vec::new(),
        }
    }

    #[test]
    fn a_session_answer_names_the_customer_or_fails_closed() {
        let ok = judge(&apps(), 200, br#"{"user":{"id":"c-7","name":"Rita"}}"#).unwrap();
        assert_eq!(
            ok,
            Customer {
                sub: "c-7".into(),
                name: "Rita".into()
            }
        );
        let numeric = judge(&apps(), 200, br#"{"user":{"id":42}}"#).unwrap();
        assert_eq!(numeric.name, "42");
        // Beyond 64 bits two ids would round to one float: refused, never merged.
        for big in [
            &br#"{"user":{"id":18446744073709551617}}"#[..],
            br#"{"user":{"id":1.5}}"#,
        ] {
            assert!(matches!(
                judge(&apps(), 200, big),
                Err(AppError::Unavailable(_))
            ));
        }
        for status in [401, 403] {
            assert!(matches!(
                judge(&apps(), status, b"{}"),
                Err(AppError::Unauthorized(_))
            ));
        }
        for status in [302, 400, 404, 500, 503] {
            assert!(matches!(
                judge(&apps(), status, b"{}"),
                Err(AppError::Unavailable(_))
            ));
        }
        for body in [
            &b"<html>"[..],
            b"{}",
            br#"{"user":{"id":""}}"#,
            br#"{"user":{"id":"a\nb"}}"#,
        ] {
            assert!(matches!(
                judge(&apps(), 200, body),
                Err(AppError::Unavailable(_))
            ));
        }
    }
}
