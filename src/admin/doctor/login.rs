//! The doctor's look at `[login.api]`: it calls the operator's login API once, the way a sign-in
//! does, with a made-up username and a deliberately wrong password, and reports what came back.
//! A healthy API is reachable, passes TLS verification and answers 400, 401 or 403; one that
//! accepts the made-up credentials would let anyone sign in, and is a failure.

use super::Check;
use crate::base::secret::{self, Secret};
use crate::config::Config;
use crate::login_api::{Failure, LoginApiClient, Outcome};
use std::time::{Duration, Instant};

/// The username the probe sends: recognisable in the API's logs, and no one's account.
pub const PROBE_USERNAME: &str = "linkgate-doctor-probe@invalid";

/// `None` when the config does not use a login API.
pub fn check(config: &Config) -> Option<Check> {
    let api = config.login.api.clone()?;
    if !config.login.source.uses_api() {
        return None;
    }
    let url = api.url.clone();
    let https = api.https;
    let client = match LoginApiClient::new(api) {
        Ok(client) => client,
        Err(e) => return Some(Check::fail("login_api", e)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return Some(Check::fail(
                "login_api",
                format!("cannot start the async runtime: {e}"),
            ))
        }
    };
    // A fresh random password each run, so no real account can match it.
    let password = Secret::new(secret::new_token("wrong-").expose().to_string());
    let started = Instant::now();
    let outcome = runtime.block_on(client.verify(PROBE_USERNAME, &password));
    runtime.shutdown_timeout(Duration::from_millis(100));
    Some(judge(&url, https, outcome, started.elapsed()))
}

/// What the probe's outcome says about the API.
pub fn judge(url: &str, https: bool, outcome: Outcome, took: Duration) -> Check {
    let ms = took.as_millis();
    let tls = if https { ", TLS verified" } else { "" };
    match outcome {
        Outcome::Refused(status) => Check::ok(
            "login_api",
            format!("{url} answered {status} to a deliberately wrong password in {ms} ms{tls}, as expected"),
        ),
        Outcome::Accepted { subject, .. } => Check::fail(
            "login_api",
            format!("{url} ACCEPTED a made-up username ({PROBE_USERNAME}) with a random password (subject `{subject}`): anyone could sign in. Check the API and login.api.subject"),
        ),
        Outcome::Unavailable(Failure::Tls(e)) => Check::fail(
            "login_api",
            format!("{url}: TLS failed: {e}. If the API's certificate comes from a private CA, set login.api.ca_file"),
        ),
        Outcome::Unavailable(failure @ (Failure::NotJson | Failure::NoSubject)) => Check::fail(
            "login_api",
            format!("{url} answered 2xx to a deliberately wrong password ({failure}); it must answer 400, 401 or 403"),
        ),
        Outcome::Unavailable(failure) => Check::fail(
            "login_api",
            format!("{url}: {failure}; customers cannot sign in. A wrong password must get 400, 401 or 403"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::doctor::Status;

    fn run(outcome: Outcome) -> Check {
        judge(
            "https://api.example.com/login",
            true,
            outcome,
            Duration::from_millis(12),
        )
    }

    #[test]
    fn only_a_refusal_is_healthy() {
        let ok = run(Outcome::Refused(401));
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.message.contains("answered 401") && ok.message.contains("TLS verified"));
        let accepted = run(Outcome::Accepted {
            subject: "42".into(),
            display_name: None,
        });
        assert_eq!(accepted.status, Status::Fail);
        assert!(
            accepted.message.contains("anyone could sign in"),
            "{}",
            accepted.message
        );
        for failure in [
            Failure::Timeout,
            Failure::Status(500),
            Failure::Redirect(302),
            Failure::NotJson,
            Failure::Tls("UnknownIssuer".into()),
            Failure::Connect("refused".into()),
        ] {
            let check = run(Outcome::Unavailable(failure.clone()));
            assert_eq!(check.status, Status::Fail, "{failure:?}");
        }
        let tls = run(Outcome::Unavailable(Failure::Tls("UnknownIssuer".into())));
        assert!(tls.message.contains("ca_file"), "{}", tls.message);
    }
}
