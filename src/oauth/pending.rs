//! Authorizations in progress: what `/authorize` was asked, between the login page, the consent
//! page and the redirect. Nothing is held on the server for them: the request is *sealed* into
//! the form itself (JSON, base64url, with an HMAC-SHA256 under a key kept in the store, the same
//! for every node), bound to the CSRF token the form and its cookie carry, and given an expiry.
//! A flood of anonymous `/authorize` requests therefore costs nothing stored and cannot evict
//! anyone's sign-in; behind a load balancer each step may land on another node.
//!
//! Forms are single use where it matters: a login form that signed someone in and every consent
//! form are recorded as spent in the store (until they expire; `store/forms.rs`), so on every
//! node. Only a correct password adds to that record, so strangers cannot grow it.

use crate::base::secret::{self, Secret};
use crate::store::{Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a customer has to sign in and decide, in seconds.
pub const MAX_AGE_SECS: u64 = 15 * 60;
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
    /// The RFC 8707 resource the tokens will be for (forms sealed before it existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
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
    /// Where spent forms are recorded.
    store: Store,
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
            resource: None,
        }
    }
}

impl PendingAuthorizations {
    /// Reads (or, the first time, makes) the form key in `store`.
    pub fn new(store: Store) -> Result<Self, StoreError> {
        Ok(PendingAuthorizations {
            key: store.form_key()?,
            store,
        })
    }

    /// The short fingerprint of what a form after the password is bound to: the password hash
    /// and, once it is on, the two-factor sign-in (so turning it on ends the consent pages
    /// opened with the password only, as a password change does). Keyed, so the page reveals
    /// nothing about the hash. Without two-factor sign-in it is what earlier releases computed.
    pub fn credentials_fingerprint(&self, user: &crate::store::User) -> String {
        let enabled_at = user.totp.as_ref().map(|t| t.enabled_at.to_string());
        let mut parts: Vec<&[u8]> = vec![b"linkgate credentials\0", user.password_hash.as_bytes()];
        if let Some(at) = &enabled_at {
            parts.extend_from_slice(&[b"\0totp\0", at.as_bytes()]);
        }
        let mac = secret::hmac_sha256(&self.key, &parts);
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
    ) -> Result<Option<Opened>, StoreError> {
        let Some(opened) = self.verify(sealed, form_csrf, cookie_csrf, now) else {
            return Ok(None);
        };
        if self.store.form_spent(&opened.nonce)? {
            return Ok(None);
        }
        Ok(Some(opened))
    }

    /// The form's content if its MAC, CSRF tokens and expiry hold (spent or not).
    fn verify(
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
        Some(Opened {
            pending: envelope.pending,
            nonce: envelope.nonce,
        })
    }

    /// Records a form as spent, on every node. `false` if it already was (a racing submission
    /// got there first).
    pub fn spend(&self, nonce: &str, expires_at: u64) -> Result<bool, StoreError> {
        self.store.spend_form(nonce, expires_at)
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

    fn forms() -> (tempfile::TempDir, PendingAuthorizations) {
        let (dir, store) = crate::store::fixtures::temp_store();
        (dir, PendingAuthorizations::new(store).unwrap())
    }

    fn open(
        forms: &PendingAuthorizations,
        sealed: &str,
        c: &str,
        cookie: Option<&str>,
        now: u64,
    ) -> Option<Opened> {
        forms.open(sealed, c, cookie, now).unwrap()
    }

    #[test]
    fn a_sealed_form_opens_only_with_both_tokens_and_until_it_expires() {
        let (_dir, forms) = forms();
        let (sealed, csrf) = forms.seal(pending(1000));
        let c = csrf.expose();
        assert!(open(&forms, &sealed, "wrong", Some(c), 1001).is_none());
        assert!(open(&forms, &sealed, c, None, 1001).is_none());
        assert!(open(&forms, &sealed, c, Some("other"), 1001).is_none());
        let opened = open(&forms, &sealed, c, Some(c), 1001).unwrap();
        assert_eq!(opened.pending.state.as_deref(), Some("state"));
        assert!(open(&forms, &sealed, c, Some(c), 1000 + MAX_AGE_SECS).is_none());
    }

    #[test]
    fn a_spent_form_does_not_open_again_and_is_spent_once() {
        let (_dir, forms) = forms();
        let (sealed, csrf) = forms.seal(pending(0));
        let c = csrf.expose();
        let opened = open(&forms, &sealed, c, Some(c), 1).unwrap();
        assert!(forms
            .spend(&opened.nonce, opened.pending.expires_at)
            .unwrap());
        assert!(!forms
            .spend(&opened.nonce, opened.pending.expires_at)
            .unwrap());
        assert!(open(&forms, &sealed, c, Some(c), 1).is_none());
    }

    #[test]
    fn a_form_opens_with_the_same_store_and_not_with_another() {
        let (_dir, forms) = forms();
        let (sealed, csrf) = forms.seal(pending(0));
        let c = csrf.expose();
        // Another process on the same store (a node beside this one, or this one restarted)
        // opens it; another store's key does not.
        let (_other_dir, other) = super::tests::forms();
        assert!(open(&other, &sealed, c, Some(c), 1).is_none());
        let same = PendingAuthorizations::new(forms.store.clone()).unwrap();
        assert!(open(&same, &sealed, c, Some(c), 1).is_some());
        // A payload changed by one character does not open it.
        let (body, mac) = sealed.rsplit_once('.').unwrap();
        let mut body = body.to_string();
        let last = body.pop().unwrap();
        body.push(if last == 'A' { 'B' } else { 'A' });
        assert!(open(&forms, &format!("{body}.{mac}"), c, Some(c), 1).is_none());
        assert!(open(&forms, "garbage", c, Some(c), 1).is_none());
    }
}
