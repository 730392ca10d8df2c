//! Authorizations in progress: what `/authorize` was asked, between the login page, the consent
//! page and the redirect. Kept in memory (a restart only means the customer starts again) and
//! bounded in number and age, so unauthenticated requests cannot grow the database or the heap.

use crate::secret::{self, Secret};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a customer has to sign in and decide.
pub const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// How many authorizations may be in progress at once; the oldest is dropped beyond that.
pub const MAX_PENDING: usize = 4096;

#[derive(Debug, Clone)]
pub struct Pending {
    pub client_id: String,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub scope: String,
    pub code_challenge: Option<String>,
    /// Google's `user_locale` hint (at most 35 characters), so later pages keep the language.
    pub locale: Option<String>,
    /// The name the login API gave the customer (`[login.api] display_name`), for the consent page.
    pub display_name: Option<String>,
    pub stage: Stage,
    /// SHA-256 of the CSRF token the current form carries.
    csrf_key: [u8; 32],
    created: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for username and password.
    Login,
    /// Signed in; waiting for Accept or Reject.
    Consent { sub: String, username: String },
}

pub struct PendingAuthorizations(Mutex<HashMap<String, Pending>>);

impl Pending {
    pub fn new(
        client_id: String,
        redirect_uri: String,
        redirect_uri_given: bool,
        state: Option<String>,
        scope: String,
        code_challenge: Option<String>,
    ) -> Pending {
        Pending {
            client_id,
            redirect_uri,
            redirect_uri_given,
            state,
            scope,
            code_challenge,
            locale: None,
            display_name: None,
            stage: Stage::Login,
            csrf_key: [0; 32],
            created: Instant::now(),
        }
    }
}

impl PendingAuthorizations {
    pub fn new() -> Self {
        PendingAuthorizations(Mutex::new(HashMap::new()))
    }

    /// Stores `pending` under a new random id (or `id`, when it goes back after a failed login)
    /// with a fresh CSRF token, which is returned for the next form.
    pub fn put(&self, id: Option<String>, mut pending: Pending) -> (String, Secret) {
        let id = id.unwrap_or_else(|| secret::new_token("").expose().to_string());
        let csrf = secret::new_token("");
        pending.csrf_key = csrf.key();
        let mut map = self.lock();
        map.retain(|_, p| p.created.elapsed() < MAX_AGE);
        if map.len() >= MAX_PENDING {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), pending);
        (id, csrf)
    }

    /// Takes the authorization out if the form's CSRF token and the cookie's both match it.
    /// Taking it makes every form single-use: a replayed form finds nothing.
    pub fn take(&self, id: &str, form_csrf: &str, cookie_csrf: Option<&str>) -> Option<Pending> {
        let mut map = self.lock();
        let pending = map.get(id)?;
        let form_key = Secret::new(form_csrf).key();
        let cookie_ok =
            cookie_csrf.is_some_and(|c| secret::ct_eq(&Secret::new(c).key(), &pending.csrf_key));
        if !cookie_ok
            || !secret::ct_eq(&form_key, &pending.csrf_key)
            || pending.created.elapsed() >= MAX_AGE
        {
            return None;
        }
        map.remove(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for PendingAuthorizations {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        Pending::new(
            "c".into(),
            "https://x/cb".into(),
            true,
            None,
            String::new(),
            None,
        )
    }

    #[test]
    fn a_form_is_single_use_and_needs_both_tokens() {
        let store = PendingAuthorizations::new();
        let (id, csrf) = store.put(None, pending());
        assert!(store.take(&id, "wrong", Some(csrf.expose())).is_none());
        assert!(store.take(&id, csrf.expose(), None).is_none());
        assert!(store.take(&id, csrf.expose(), Some("other")).is_none());
        assert!(store
            .take(&id, csrf.expose(), Some(csrf.expose()))
            .is_some());
        assert!(store
            .take(&id, csrf.expose(), Some(csrf.expose()))
            .is_none());
    }
}
