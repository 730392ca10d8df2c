//! Re-checking a login API customer on refresh (`[login.api] check_url`). A customer deleted in
//! the operator's system would otherwise keep their links until unlinked; with `check_url`, a
//! refresh of a login API customer's link asks the API, at most every `check_every_hours` per
//! link (counted from the link's creation, when their password was just checked), whether the
//! subject still exists. A 404 or 410 ends the link: the refresh gets `invalid_grant` and every
//! token of the link dies. An API that cannot answer keeps the link (Alexa unlinks on
//! `invalid_grant`, so an outage must not read as "gone") and is asked again after
//! `RETRY_SECS`. The notes live beside the link's "last refresh" note, shared by every node.

use super::OAuthError;
use crate::login_api::Lookup;
use crate::metrics::count;
use crate::oauth::server::Server;
use crate::store::{Grant, LOGIN_API_GENERATION};

/// After an API that could not answer, the next refresh of the link asks again after this long
/// (or `check_every_hours`, if shorter).
const RETRY_SECS: u64 = 15 * 60;

/// What a refresh needs of its grant to decide.
pub struct Link {
    pub grant_id: String,
    pub sub: String,
    pub created_at: u64,
    pub generation: u64,
}

impl Link {
    pub fn of(grant: &Grant) -> Link {
        Link {
            grant_id: grant.id.clone(),
            sub: grant.sub.clone(),
            created_at: grant.created_at,
            generation: grant.generation,
        }
    }
}

/// Whether the link is due for a check at `now`: its next check as noted, or, never noted, its
/// creation plus `every_secs`. Pure.
pub fn due(noted_next: Option<u64>, created_at: u64, every_secs: u64, now: u64) -> bool {
    now >= noted_next.unwrap_or(created_at.saturating_add(every_secs))
}

/// Runs the check for a refreshed `link`, if one is configured and due: `Err(invalid_grant)`
/// once the link was ended because the customer is gone.
pub async fn after_refresh(
    app: &Server,
    client_id: &str,
    link: &Link,
    now: u64,
) -> Result<(), OAuthError> {
    let Some(api) = &app.login_api else {
        return Ok(());
    };
    let Some(check) = app.config.login.api.as_ref().and_then(|a| a.check.as_ref()) else {
        return Ok(());
    };
    if link.generation != LOGIN_API_GENERATION {
        return Ok(());
    }
    let noted = app.store.customer_check_due(&link.grant_id)?;
    if !due(noted, link.created_at, check.every_secs, now) {
        return Ok(());
    }
    // Boxed: the login API's call is a large future, and this function sits on every refresh.
    let next = match Box::pin(api.lookup(&link.sub)).await {
        Lookup::Exists => {
            count(&app.metrics.customer_checks_exists);
            now.saturating_add(check.every_secs)
        }
        Lookup::Gone(status) => {
            count(&app.metrics.customer_checks_gone);
            app.store.revoke_grant(
                &link.grant_id,
                &format!("the login API answered {status} for the customer: gone"),
            )?;
            app.store.flush().await?;
            tracing::info!(
                client = %client_id,
                subject = %link.sub,
                status,
                "the login API no longer knows this customer: the link is ended"
            );
            return Err(OAuthError::InvalidGrant(
                "the account no longer exists; the link is ended".into(),
            ));
        }
        Lookup::Unavailable(failure) => {
            count(&app.metrics.customer_checks_unavailable);
            tracing::warn!(
                client = %client_id,
                reason = %failure,
                "the login API could not check a customer; the link is kept"
            );
            now.saturating_add(RETRY_SECS.min(check.every_secs))
        }
    };
    // A failure to note it costs one more check, not the refresh.
    if let Err(e) = app.store.note_customer_check(&link.grant_id, next) {
        tracing::warn!("noting a customer check failed: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_due_every_period_from_its_creation_or_its_noted_next_check() {
        let hour = 3600;
        // Never noted: due once a period has passed since the link was made.
        assert!(!due(None, 1_000, 24 * hour, 1_000 + 24 * hour - 1));
        assert!(due(None, 1_000, 24 * hour, 1_000 + 24 * hour));
        // Noted: due from the noted time on, whatever the creation.
        assert!(!due(Some(5_000), 0, hour, 4_999));
        assert!(due(Some(5_000), 0, hour, 5_000));
        // 0: every refresh.
        assert!(due(None, 1_000, 0, 1_000));
        assert!(due(Some(1_000), 0, 0, 1_000));
    }
}
