//! The doctor's look at linking from the operator's app (`[apps]`, `[clients.alexa_app]`):
//! - the session API, called once with a made-up session token: it must refuse it (401/403);
//! - each Alexa client's Login with Amazon credentials, by redeeming a made-up code: Login with
//!   Amazon answers `invalid_grant` to a known client and `invalid_client` to wrong credentials;
//! - the app's universal link: registered on the client, and when it lives on linkgate's host,
//!   the association files served at that host's root, where Apple and Google fetch them.

use super::Check;
use crate::base::secret;
use crate::base::urlencoded::encode;
use crate::config::{parse_target, AlexaApp, Config};
use crate::outbound::{self, Call};
use std::time::Duration;

const NAME: &str = "app_to_app";

/// The checks, or none when the config links from no app.
pub fn checks(config: &Config) -> Vec<Check> {
    let alexa: Vec<(&str, &AlexaApp)> = config
        .clients
        .iter()
        .filter_map(|c| c.alexa_app.as_ref().map(|a| (c.id.as_str(), a)))
        .collect();
    if config.apps.is_none() && alexa.is_empty() {
        return Vec::new();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return vec![Check::fail(
                NAME,
                format!("cannot start the async runtime: {e}"),
            )]
        }
    };
    let mut checks = Vec::new();
    let Some(apps) = &config.apps else {
        checks.push(Check::fail(
            NAME,
            "a client has [clients.alexa_app] but there is no [apps] table: the app cannot say who its customer is",
        ));
        return checks;
    };
    if let (Some(target), Some(url)) = (&apps.session, &apps.session_url) {
        let token = secret::new_token("doctor-probe-");
        let call = Call {
            method: hyper::Method::GET,
            target,
            headers: vec![("authorization", format!("Bearer {}", token.expose()))],
            body: None,
            timeout: apps.timeout,
        };
        checks.push(session_judgement(
            url,
            runtime.block_on(outbound::send(call)).map(|a| a.status),
        ));
    }
    for (client_id, alexa) in alexa {
        checks.push(lwa_judgement(
            client_id,
            runtime.block_on(lwa_probe(alexa, apps.timeout)),
        ));
        checks.push(Check::ok(
            NAME,
            format!(
                "client {client_id}: the app's universal link {} is one of its redirect_uris; enter it in the Alexa console under App-to-App Account Linking",
                alexa.app_redirect_uri
            ),
        ));
        if let Some(check) = runtime.block_on(association(config, &alexa.app_redirect_uri)) {
            checks.push(check);
        }
    }
    runtime.shutdown_timeout(Duration::from_millis(100));
    checks
}

/// What the session API's answer to a made-up token says.
pub fn session_judgement(url: &str, answer: Result<u16, outbound::Fault>) -> Check {
    match answer {
        Ok(status @ (401 | 403)) => Check::ok(
            NAME,
            format!("the session API {url} answered {status} to a made-up session token, as expected"),
        ),
        Ok(status @ 200..=299) => Check::fail(
            NAME,
            format!("the session API {url} ACCEPTED a made-up session token ({status}): anyone could link as someone. It must answer 401 or 403"),
        ),
        Ok(status) => Check::fail(
            NAME,
            format!("the session API {url} answered {status} to a made-up session token; it must answer 401 or 403 (app links fail with 503 meanwhile)"),
        ),
        Err(fault) => Check::fail(
            NAME,
            format!("the session API {url} could not be asked: {fault}"),
        ),
    }
}

/// Login with Amazon's status and `error` for a made-up code.
async fn lwa_probe(alexa: &AlexaApp, timeout: Duration) -> Result<(u16, String), outbound::Fault> {
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&client_secret={}",
        encode(secret::new_token("doctor-probe-").expose()),
        encode(&alexa.app_redirect_uri),
        encode(&alexa.lwa_client_id),
        encode(alexa.lwa_client_secret.expose()),
    );
    let call = Call {
        method: hyper::Method::POST,
        target: &alexa.lwa_token_url,
        headers: Vec::new(),
        body: Some((body.into_bytes(), "application/x-www-form-urlencoded")),
        timeout,
    };
    let answer = outbound::send(call).await?;
    let error = answer
        .json()
        .and_then(|j| j["error"].as_str().map(str::to_string))
        .unwrap_or_default();
    Ok((answer.status, error))
}

pub fn lwa_judgement(client_id: &str, answer: Result<(u16, String), outbound::Fault>) -> Check {
    match answer {
        Ok((400, error)) if error == "invalid_grant" => Check::ok(
            NAME,
            format!("client {client_id}: Login with Amazon knows lwa_client_id and lwa_client_secret (it refused only the made-up code)"),
        ),
        Ok((_, error)) if error == "invalid_client" || error == "unauthorized_client" => Check::fail(
            NAME,
            format!("client {client_id}: Login with Amazon refused lwa_client_id/lwa_client_secret ({error}): copy the Alexa Client Id and Secret from the skill's account linking page"),
        ),
        Ok((status, error)) => Check::warn(
            NAME,
            format!("client {client_id}: Login with Amazon answered {status} {error} to a made-up code; expected 400 invalid_grant"),
        ),
        Err(fault) => Check::fail(
            NAME,
            format!("client {client_id}: Login with Amazon could not be asked: {fault}"),
        ),
    }
}

/// When the app's universal link is on linkgate's own host: are the association files served at
/// that host's root?
async fn association(config: &Config, app_link: &str) -> Option<Check> {
    let link = crate::base::url::parse(app_link)?;
    let public = crate::base::url::parse(&config.public_url)?;
    if !link.bare_host().eq_ignore_ascii_case(public.bare_host()) {
        return Some(Check::ok(
            NAME,
            format!("the universal link {app_link} is on another host: serve the apps' association files there"),
        ));
    }
    let apps = config.apps.as_ref()?;
    if apps.ios_app_ids.is_empty() && apps.android_package.is_none() {
        return Some(Check::warn(
            NAME,
            format!("the universal link {app_link} is on linkgate's host but [apps] names no ios_app_ids or android_package: phones open it in the browser, not the app"),
        ));
    }
    let scheme = if public.https { "https" } else { "http" };
    let origin = match public.port {
        Some(port) => format!("{scheme}://{}:{port}", public.host),
        None => format!("{scheme}://{}", public.host),
    };
    let mut missing = Vec::new();
    let files = [
        (
            !apps.ios_app_ids.is_empty(),
            "/.well-known/apple-app-site-association",
        ),
        (
            apps.android_package.is_some(),
            "/.well-known/assetlinks.json",
        ),
    ];
    for (wanted, path) in files {
        if !wanted {
            continue;
        }
        let url = format!("{origin}{path}");
        let served = match parse_target(&url) {
            Ok(target) => {
                let call = Call {
                    method: hyper::Method::GET,
                    target: &target,
                    headers: Vec::new(),
                    body: None,
                    timeout: Duration::from_secs(5),
                };
                match outbound::send(call).await {
                    Ok(answer) if answer.status == 200 && answer.json().is_some() => None,
                    Ok(answer) => Some(format!("{url} answered {}", answer.status)),
                    Err(fault) => Some(format!("{url}: {fault}")),
                }
            }
            Err(why) => Some(format!("{url} {why}")),
        };
        missing.extend(served);
    }
    Some(if missing.is_empty() {
        Check::ok(
            NAME,
            format!(
                "the association files are served at {origin}/.well-known/ for the universal link"
            ),
        )
    } else {
        Check::fail(
            NAME,
            format!(
                "the universal link's association files are not served where Apple and Google fetch them ({}); a proxy in front must pass /.well-known/ to linkgate",
                missing.join("; ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::doctor::Status;

    #[test]
    fn only_a_refusal_of_the_made_up_token_and_code_is_healthy() {
        let url = "https://api.example.com/me";
        assert_eq!(session_judgement(url, Ok(401)).status, Status::Ok);
        assert_eq!(session_judgement(url, Ok(200)).status, Status::Fail);
        assert_eq!(session_judgement(url, Ok(500)).status, Status::Fail);
        let ok = lwa_judgement("alexa", Ok((400, "invalid_grant".into())));
        assert_eq!(ok.status, Status::Ok);
        let wrong = lwa_judgement("alexa", Ok((401, "invalid_client".into())));
        assert_eq!(wrong.status, Status::Fail);
        assert!(
            wrong.message.contains("Alexa Client Id"),
            "{}",
            wrong.message
        );
        assert_eq!(
            lwa_judgement("alexa", Ok((500, String::new()))).status,
            Status::Warn
        );
    }
}
