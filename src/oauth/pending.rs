//! Authorizations in progress: what `/authorize` was asked, between the login page, the consent
//! page and the redirect. Nothing is held on the server for them: the request is *sealed* into
//! the form itself (JSON, base64url, with an HMAC-SHA256 under a key made at start-up), bound to
//! the CSRF token the form and its cookie carry, and given an expiry. A flood of anonymous
//! `/authorize` requests therefore costs no memory and cannot evict anyone's sign-in; a restart
//! only means the customer starts again.
//!
//! Forms are single use where it matters: a login form that signed someone in and every consent
//! form are recorded as spent (until they expire). Only a correct password adds to that record,
//! so strangers cannot grow it.

use crate::secret::{self, Secret};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a customer has to sign in and decide, in seconds.
pub const MAX_AGE_SECS: u64 = 15 * 60;
/// Spent forms remembered at most; beyond that (tens of sign-ins a second for 15 minutes, far
/// above what the password workers can check) new sign-ins wait for old records to expire.
pub const MAX_SPENT: usize = 100_000;
/// What the MAC covers besides the payload, so a seal made for another purpose never fits.
const CONTEXT: &[u8] = b"linkgate authorization form v1\0";

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Unix seconds after which the form is refused.
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Waiting for username and password.
    Login,
    /// Signed in; waiting for Accept or Reject. `credentials` is a short hash of the user's
    /// password hash at sign-in: if the user is removed or the password changes before the
    /// decision, the decision is refused.
    Consent {
        sub: String,
        username: String,
        credentials: String,
    },
    /// The password was right and the user has two-factor sign-in: waiting for a code. Bound
    /// like `Consent`; only a right code moves the form on to `Consent`.
    SecondFactor {
        sub: String,
        username: String,
        credentials: String,
    },
    /// The password was right, `[accounts] require_totp` is on and the user has no two-factor
    /// sign-in yet: waiting for a code for `key` (base32, shown on the page) to turn it on.
    Enrol {
        sub: String,
        username: String,
        credentials: String,
        key: String,
    },
}

/// The sealed payload: the request, a nonce naming this form, and the CSRF token's hash.
#[derive(Serialize, Deserialize)]
struct Envelope {
    pending: Pending,
    nonce: String,
    csrf: String,
}

/// A form that opened: its request and the nonce that spends it.
#[derive(Debug)]
pub struct Opened {
    pub pending: Pending,
    pub nonce: String,
}

pub struct PendingAuthorizations {
    key: [u8; 32],
    /// Nonces of spent forms, with their expiry.
    spent: Mutex<HashMap<String, u64>>,
}

impl Pending {
    pub fn new(
        client_id: String,
        redirect_uri: String,
        redirect_uri_given: bool,
        state: Option<String>,
        scope: String,
        code_challenge: Option<String>,
        now: u64,
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
            expires_at: now + MAX_AGE_SECS,
        }
    }
}

impl PendingAuthorizations {
    pub fn new() -> Self {
        Self::with_key(secret::random_bytes::<32>())
    }

    pub fn with_key(key: [u8; 32]) -> Self {
        PendingAuthorizations {
            key,
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// The short fingerprint of a password hash a consent form is bound to: keyed, so the page
    /// reveals nothing about the hash.
    pub fn credentials_fingerprint(&self, password_hash: &str) -> String {
        let mac = secret::hmac_sha256(
            &self.key,
            &[b"linkgate credentials\0", password_hash.as_bytes()],
        );
        URL_SAFE_NO_PAD.encode(&mac[..12])
    }

    /// Seals `pending` into a form value with a fresh CSRF token, which is returned for the
    /// form's hidden field and the cookie.
    pub fn seal(&self, pending: Pending) -> (String, Secret) {
        let csrf = secret::new_token("");
        let envelope = Envelope {
            pending,
            nonce: secret::new_id(),
            csrf: URL_SAFE_NO_PAD.encode(csrf.key()),
        };
        let json = serde_json::to_vec(&envelope).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let mac = secret::hmac_sha256(&self.key, &[CONTEXT, body.as_bytes()]);
        (format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac)), csrf)
    }

    /// Opens a sealed form if its MAC holds, it has not expired or been spent, and the form's
    /// CSRF token and the cookie's both match the one it was sealed with.
    pub fn open(
        &self,
        sealed: &str,
        form_csrf: &str,
        cookie_csrf: Option<&str>,
        now: u64,
    ) -> Option<Opened> {
        let (body, mac) = sealed.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = secret::hmac_sha256(&self.key, &[CONTEXT, body.as_bytes()]);
        if !secret::ct_eq(&mac, &expected) {
            return None;
        }
        let envelope: Envelope =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let sealed_csrf = URL_SAFE_NO_PAD.decode(&envelope.csrf).ok()?;
        let form_ok = secret::ct_eq(&Secret::new(form_csrf).key(), &sealed_csrf);
        let cookie_ok =
            cookie_csrf.is_some_and(|c| secret::ct_eq(&Secret::new(c).key(), &sealed_csrf));
        if !form_ok || !cookie_ok || envelope.pending.expires_at <= now {
            return None;
        }
        if self.lock().contains_key(&envelope.nonce) {
            return None;
        }
        Some(Opened {
            pending: envelope.pending,
            nonce: envelope.nonce,
        })
    }

    /// Records a form as spent. `false` if it already was (a racing submission got there first)
    /// or if the record is full.
    pub fn spend(&self, nonce: &str, expires_at: u64, now: u64) -> bool {
        let mut spent = self.lock();
        if spent.contains_key(nonce) {
            return false;
        }
        if spent.len() >= MAX_SPENT {
            spent.retain(|_, expiry| *expiry > now);
            if spent.len() >= MAX_SPENT {
                tracing::warn!("too many sign-ins in progress; refusing one");
                return false;
            }
        }
        spent.insert(nonce.to_string(), expires_at);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.spent
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

    fn pending(now: u64) -> Pending {
        Pending::new(
            "c".into(),
            "https://x/cb".into(),
            true,
            Some("state".into()),
            String::new(),
            None,
            now,
        )
    }

    #[test]
    fn a_sealed_form_opens_only_with_both_tokens_and_until_it_expires() {
        let forms = PendingAuthorizations::new();
        let (sealed, csrf) = forms.seal(pending(1000));
        let c = csrf.expose();
        assert!(forms.open(&sealed, "wrong", Some(c), 1001).is_none());
        assert!(forms.open(&sealed, c, None, 1001).is_none());
        assert!(forms.open(&sealed, c, Some("other"), 1001).is_none());
        let opened = forms.open(&sealed, c, Some(c), 1001).unwrap();
        assert_eq!(opened.pending.state.as_deref(), Some("state"));
        assert!(forms
            .open(&sealed, c, Some(c), 1000 + MAX_AGE_SECS)
            .is_none());
    }

    #[test]
    fn a_spent_form_does_not_open_again_and_is_spent_once() {
        let forms = PendingAuthorizations::new();
        let (sealed, csrf) = forms.seal(pending(0));
        let c = csrf.expose();
        let opened = forms.open(&sealed, c, Some(c), 1).unwrap();
        assert!(forms.spend(&opened.nonce, opened.pending.expires_at, 1));
        assert!(!forms.spend(&opened.nonce, opened.pending.expires_at, 1));
        assert!(forms.open(&sealed, c, Some(c), 1).is_none());
    }

    #[test]
    fn an_edited_or_foreign_seal_is_refused() {
        let forms = PendingAuthorizations::new();
        let (sealed, csrf) = forms.seal(pending(0));
        let c = csrf.expose();
        // Another server's key (or a restart) does not open it.
        assert!(PendingAuthorizations::new()
            .open(&sealed, c, Some(c), 1)
            .is_none());
        // A payload changed by one character does not open it.
        let (body, mac) = sealed.rsplit_once('.').unwrap();
        let mut body = body.to_string();
        let last = body.pop().unwrap();
        body.push(if last == 'A' { 'B' } else { 'A' });
        assert!(forms
            .open(&format!("{body}.{mac}"), c, Some(c), 1)
            .is_none());
        assert!(forms.open("garbage", c, Some(c), 1).is_none());
    }
}
