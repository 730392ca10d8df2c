//! The `state` that carries an Alexa app-to-app link through Amazon (`/app/alexa/start` to
//! `/app/alexa/finish`): sealed like the browser's forms (base64url JSON and an HMAC-SHA256
//! under a key derived from the store's form key, the same on every node), so nothing is kept
//! per start and a flood of starts stores nothing. It names the client, a hash of the customer
//! (another customer's finish is refused), a nonce (spent in the store on use, so it is single
//! use across nodes) and its expiry (10 minutes).

use crate::base::secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How long a customer has to come back from Amazon.
pub const MAX_AGE_SECS: u64 = 10 * 60;
const CONTEXT: &[u8] = b"linkgate alexa app-to-app state v1\0";

#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The client.
    c: String,
    /// The customer: base64url of the first 16 bytes of HMAC(key, sub).
    s: String,
    /// Nonce.
    n: String,
    /// Expiry, Unix seconds.
    e: u64,
}

/// A state that opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub client_id: String,
    /// Spent in the store to make the state single use.
    pub nonce: String,
    pub expires_at: u64,
}

/// Why a state is refused; `Display` is the app's message.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Forged,
    Expired,
    OtherCustomer,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Forged => "is not one linkgate issued",
            Refused::Expired => "has expired",
            Refused::OtherCustomer => "was issued to another customer",
        }
    }
}

fn key(form_key: &[u8; 32]) -> [u8; 32] {
    secret::hmac_sha256(form_key, &[CONTEXT])
}

fn customer(key: &[u8; 32], sub: &str) -> String {
    let mac = secret::hmac_sha256(key, &[b"customer\0", sub.as_bytes()]);
    URL_SAFE_NO_PAD.encode(&mac[..16])
}

pub fn seal(form_key: &[u8; 32], client_id: &str, sub: &str, now: u64) -> String {
    let key = key(form_key);
    let sealed = Sealed {
        c: client_id.to_string(),
        s: customer(&key, sub),
        n: secret::new_id(),
        e: now + MAX_AGE_SECS,
    };
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).unwrap_or_default());
    let mac = secret::hmac_sha256(&key, &[body.as_bytes()]);
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac))
}

pub fn open(form_key: &[u8; 32], state: &str, sub: &str, now: u64) -> Result<Opened, Refused> {
    let key = key(form_key);
    let (body, mac) = state.rsplit_once('.').ok_or(Refused::Forged)?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| Refused::Forged)?;
    let expected = secret::hmac_sha256(&key, &[body.as_bytes()]);
    if !secret::ct_eq(&mac, &expected) {
        return Err(Refused::Forged);
    }
    let sealed: Sealed = URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(Refused::Forged)?;
    if sealed.e <= now {
        return Err(Refused::Expired);
    }
    if !secret::ct_eq(sealed.s.as_bytes(), customer(&key, sub).as_bytes()) {
        return Err(Refused::OtherCustomer);
    }
    Ok(Opened {
        client_id: sealed.c,
        nonce: format!("alexa-state:{}", sealed.n),
        expires_at: sealed.e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_for_its_customer_until_it_expires() {
        let key = [7u8; 32];
        let state = seal(&key, "alexa", "c-1", 1000);
        let opened = open(&key, &state, "c-1", 1001).unwrap();
        assert_eq!(opened.client_id, "alexa");
        assert_eq!(opened.expires_at, 1000 + MAX_AGE_SECS);
        assert_eq!(open(&key, &state, "c-2", 1001), Err(Refused::OtherCustomer));
        assert_eq!(
            open(&key, &state, "c-1", 1000 + MAX_AGE_SECS),
            Err(Refused::Expired)
        );
        assert_eq!(open(&[8u8; 32], &state, "c-1", 1001), Err(Refused::Forged));
        let mut tampered = state.clone();
        tampered.replace_range(0..1, if state.starts_with('e') { "f" } else { "e" });
        assert_eq!(open(&key, &tampered, "c-1", 1001), Err(Refused::Forged));
        assert_eq!(open(&key, "nonsense", "c-1", 1001), Err(Refused::Forged));
        assert_ne!(
            seal(&key, "alexa", "c-1", 1000),
            state,
            "each start has its own nonce"
        );
    }
}
