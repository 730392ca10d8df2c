//! `--doctor` on `[server.acme]`: days left on the certificate it obtained and the last renewal
//! error, read from the files the running server keeps (`acme::files`).

use super::Check;
use crate::acme::files::Files;
use crate::base::civil::format_time;
use crate::config::Config;

/// `--doctor`: days left on the ACME certificate and the last renewal error.
pub fn check(config: &Config, now: u64) -> Option<Check> {
    let acme = config.acme.as_ref()?;
    let files = Files::new(&config.storage_path);
    let state = match files.read_state() {
        Ok(state) => state.unwrap_or_default(),
        Err(e) => return Some(Check::fail("acme", e)),
    };
    let last_error = match (&state.last_error, state.last_error_at) {
        (Some(error), Some(at)) => format!(
            "last renewal error ({}, {} in a row): {error}",
            format_time(at),
            state.consecutive_failures
        ),
        (Some(error), None) => format!("last renewal error: {error}"),
        _ => "last renewal error: none".to_string(),
    };
    let cert = match files.read_certificate() {
        Ok(Some(cert)) if cert.domain == acme.domain && cert.directory == acme.directory => cert,
        Ok(_) => {
            return Some(Check::fail(
                "acme",
                format!(
                    "no certificate for {} from {} yet (linkgate orders one when it runs); {last_error}",
                    acme.domain, acme.directory
                ),
            ))
        }
        Err(e) => return Some(Check::fail("acme", e)),
    };
    let validity = match cert.validity() {
        Ok(validity) => validity,
        Err(e) => {
            return Some(Check::fail(
                "acme",
                format!("{}: {e}", files.dir().display()),
            ))
        }
    };
    let left = validity.not_after.saturating_sub(now);
    let message = format!(
        "certificate for {}: {} days left (until {}), renewal from {}; {last_error}",
        acme.domain,
        left / 86400,
        format_time(validity.not_after),
        format_time(validity.renew_at())
    );
    Some(if left == 0 {
        Check::fail("acme", format!("EXPIRED: {message}"))
    } else if state.last_error.is_some() || now > validity.renew_at() + 86400 {
        Check::warn("acme", message)
    } else {
        Check::ok("acme", message)
    })
}
