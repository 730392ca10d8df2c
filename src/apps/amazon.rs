//! The calls to Amazon for an Alexa app-to-app link (Amazon's "App-to-App Account Linking
//! (Starting From Your App)"): Login with Amazon's token endpoint (the customer's Amazon code,
//! and later a refresh), the Alexa API endpoint lookup (`GET /v1/alexaApiEndpoint`, which names
//! the customer's region hosts), and the skill enablement API on a region host
//! (`/v1/users/~current/skills/{skillId}/enablement`: POST to enable and link, GET for the
//! status, DELETE to disable). Amazon's tokens are sent only to the configured Amazon URLs and
//! the hosts Amazon itself named; nothing of them is logged.

use super::AppError;
use crate::base::urlencoded::encode;
use crate::config::{is_loopback_host, parse_target, AlexaApp, Target};
use crate::outbound::{self, Answer, Call};
use std::time::Duration;

/// The customer's Amazon tokens.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
}

/// What the enablement call said.
#[derive(Debug, PartialEq, Eq)]
pub enum Enabled {
    /// 200/201: the skill is enabled and linked with linkgate's code.
    Linked,
    /// 409: the skill was already enabled for this customer.
    AlreadyEnabled,
}

/// The code Amazon sent to the app's universal link, for the customer's Amazon tokens.
pub async fn exchange_code(
    alexa: &AlexaApp,
    code: &str,
    timeout: Duration,
) -> Result<Tokens, AppError> {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&client_secret={}",
        encode(code),
        encode(&alexa.app_redirect_uri),
        encode(&alexa.lwa_client_id),
        encode(alexa.lwa_client_secret.expose()),
    );
    lwa_token(alexa, body, "Login with Amazon code exchange", timeout).await
}

/// A new Amazon access token from the stored refresh token.
pub async fn refresh(
    alexa: &AlexaApp,
    refresh_token: &str,
    timeout: Duration,
) -> Result<Tokens, AppError> {
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}&client_secret={}",
        encode(refresh_token),
        encode(&alexa.lwa_client_id),
        encode(alexa.lwa_client_secret.expose()),
    );
    lwa_token(alexa, body, "Login with Amazon refresh", timeout).await
}

async fn lwa_token(
    alexa: &AlexaApp,
    body: String,
    step: &'static str,
    timeout: Duration,
) -> Result<Tokens, AppError> {
    let call = Call {
        method: hyper::Method::POST,
        target: &alexa.lwa_token_url,
        headers: Vec::new(),
        body: Some((body.into_bytes(), "application/x-www-form-urlencoded")),
        timeout,
    };
    let answer = send(call, step).await?;
    if !(200..300).contains(&answer.status) {
        return Err(refused(step, &answer));
    }
    let json = answer.json().unwrap_or_default();
    let access_token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| nonsense(step, "no access_token"))?
        .to_string();
    Ok(Tokens {
        access_token,
        refresh_token: json["refresh_token"].as_str().map(str::to_string),
        // A number, or (some Login with Amazon answers) a string of digits.
        expires_in: json["expires_in"]
            .as_u64()
            .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3600),
    })
}

/// The customer's Alexa API region hosts, in the order Amazon gives them.
pub async fn endpoints(
    alexa: &AlexaApp,
    access_token: &str,
    timeout: Duration,
) -> Result<Vec<String>, AppError> {
    let step = "Alexa API endpoint lookup";
    let call = Call {
        method: hyper::Method::GET,
        target: &alexa.alexa_endpoint_url,
        headers: vec![("authorization", format!("Bearer {access_token}"))],
        body: None,
        timeout,
    };
    let answer = send(call, step).await?;
    if answer.status != 200 {
        return Err(refused(step, &answer));
    }
    let json = answer.json().unwrap_or_default();
    let hosts: Vec<String> = json["endpoints"]
        .as_array()
        .map(|hosts| {
            hosts
                .iter()
                .filter_map(|h| h.as_str())
                .filter(|h| endpoint_target(h, "/").is_ok())
                .take(8)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if hosts.is_empty() {
        return Err(nonsense(step, "no usable endpoints"));
    }
    Ok(hosts)
}

/// Enables the skill for the customer on `host`, linked with linkgate's `auth_code`.
pub async fn enable(
    alexa: &AlexaApp,
    host: &str,
    access_token: &str,
    auth_code: &str,
    timeout: Duration,
) -> Result<Enabled, AppError> {
    let step = "skill enablement";
    let target = enablement(alexa, host, step)?;
    let body = serde_json::json!({
        "stage": alexa.stage,
        "accountLinkRequest": {
            "redirectUri": alexa.app_redirect_uri,
            "authCode": auth_code,
            "type": "AUTH_CODE",
        }
    });
    let call = Call {
        method: hyper::Method::POST,
        target: &target,
        headers: vec![("authorization", format!("Bearer {access_token}"))],
        body: Some((body.to_string().into_bytes(), "application/json")),
        timeout,
    };
    let answer = send(call, step).await?;
    match answer.status {
        200 | 201 => Ok(Enabled::Linked),
        409 => Ok(Enabled::AlreadyEnabled),
        _ => Err(refused(step, &answer)),
    }
}

/// The enablement as Amazon reports it on `host`: `None` when the skill is not enabled (404).
pub async fn status(
    alexa: &AlexaApp,
    host: &str,
    access_token: &str,
    timeout: Duration,
) -> Result<Option<serde_json::Value>, AppError> {
    let step = "skill enablement status";
    let target = enablement(alexa, host, step)?;
    let call = Call {
        method: hyper::Method::GET,
        target: &target,
        headers: vec![("authorization", format!("Bearer {access_token}"))],
        body: None,
        timeout,
    };
    let answer = send(call, step).await?;
    match answer.status {
        200 => Ok(Some(answer.json().unwrap_or_default())),
        404 => Ok(None),
        _ => Err(refused(step, &answer)),
    }
}

/// Disables the skill for the customer on `host` (not enabled already: done too).
pub async fn disable(
    alexa: &AlexaApp,
    host: &str,
    access_token: &str,
    timeout: Duration,
) -> Result<(), AppError> {
    let step = "skill disablement";
    let target = enablement(alexa, host, step)?;
    let call = Call {
        method: hyper::Method::DELETE,
        target: &target,
        headers: vec![("authorization", format!("Bearer {access_token}"))],
        body: None,
        timeout,
    };
    let answer = send(call, step).await?;
    match answer.status {
        200..=299 | 404 => Ok(()),
        _ => Err(refused(step, &answer)),
    }
}

fn enablement(alexa: &AlexaApp, host: &str, step: &'static str) -> Result<Target, AppError> {
    let path = format!(
        "/v1/users/~current/skills/{}/enablement",
        encode(&alexa.skill_id)
    );
    endpoint_target(host, &path).map_err(|why| nonsense(step, &why))
}

/// A region host as Amazon names it (`api.amazonalexa.com`: https), or a URL base as a stand-in
/// may name it (`http://127.0.0.1:8443`); a bare loopback host is plain http.
pub fn endpoint_target(host: &str, path: &str) -> Result<Target, String> {
    let host = host.trim_end_matches('/');
    let url = if host.contains("://") {
        format!("{host}{path}")
    } else {
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        let scheme = if is_loopback_host(name.trim_matches(['[', ']'])) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}{path}")
    };
    if host.contains(['/', '?', '#', '@']) && !host.contains("://") {
        return Err(format!("`{host}` is not a host name"));
    }
    parse_target(&url).map_err(|why| format!("`{host}` {why}"))
}

async fn send(call: Call<'_>, step: &'static str) -> Result<Answer, AppError> {
    outbound::send(call).await.map_err(|fault| {
        tracing::warn!(step, reason = %fault, "Amazon could not be reached");
        AppError::Amazon {
            step,
            status: 0,
            message: fault.to_string(),
        }
    })
}

/// Amazon answered an error: its status and its own words (`message`, `error_description`).
fn refused(step: &'static str, answer: &Answer) -> AppError {
    let json = answer.json().unwrap_or_default();
    let words = ["message", "error_description", "error"]
        .iter()
        .find_map(|k| json[*k].as_str())
        .unwrap_or("");
    let message: String = words
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    tracing::warn!(step, status = answer.status, amazon = %message, "Amazon refused");
    AppError::Amazon {
        step,
        status: answer.status,
        message,
    }
}

fn nonsense(step: &'static str, why: &str) -> AppError {
    tracing::warn!(step, "Amazon's answer is not usable: {why}");
    AppError::Amazon {
        step,
        status: 502,
        message: format!("an answer linkgate cannot use: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_hosts_are_https_and_stand_ins_may_name_a_url() {
        let t = endpoint_target("api.amazonalexa.com", "/v1/x").unwrap();
        assert!(t.https);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("api.amazonalexa.com", 443, "/v1/x")
        );
        let t = endpoint_target("127.0.0.1:9000", "/v1/x").unwrap();
        assert!(!t.https);
        assert_eq!(t.port, 9000);
        let t = endpoint_target("http://127.0.0.1:9001/", "/v1/x").unwrap();
        assert_eq!((t.port, t.path.as_str()), (9001, "/v1/x"));
        assert!(endpoint_target("http://api.example.com", "/v1/x").is_err());
        assert!(endpoint_target("evil.example/path", "/v1/x").is_err());
        assert!(endpoint_target("user@evil.example", "/v1/x").is_err());
    }
}
