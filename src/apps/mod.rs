//! Linking from the operator's own iOS and Android apps: the app (or the operator's backend)
//! says who its customer is, and linkgate issues the authorization code Alexa or Google redeems
//! at `/token` as usual — Alexa app-to-app account linking in both directions and Google's
//! OAuth-based App Flip, without the customer typing a password into a web view.
//!
//! - `customer`: who the app's customer is (the operator's session API, or the backend's secret);
//! - `authorize`: a code for the OAuth parameters the Alexa or Google app handed the app;
//! - `alexa`: the link that starts in the operator's app (Amazon's consent, then the skill
//!   enablement API), its status and its end; `amazon` speaks to Login with Amazon and the Alexa
//!   API, `state` seals the round trip through Amazon;
//! - `files`: the universal-link association files, so the app's link may live on linkgate.

pub mod alexa;
mod amazon;
pub mod authorize;
pub mod customer;
pub mod files;
mod state;

use crate::oauth::OAuthError;

/// Why an `/app/*` request is refused; `status` and `code` are what the app gets as JSON.
#[derive(Debug)]
pub enum AppError {
    /// The request's parameters (an OAuth error: unknown client, unregistered redirect URI, …).
    BadRequest(OAuthError),
    /// The app's session or the backend's secret is not accepted.
    Unauthorized(String),
    /// Too many wrong backend secrets from this address: seconds to wait.
    Throttled(u64),
    /// What the request needs is not configured (`[apps]`, `[clients.alexa_app]`).
    NotConfigured(String),
    /// The operator's session API or the store cannot answer now; try again later.
    Unavailable(String),
    /// The `state` from `/app/alexa/start` is unknown, expired, used or another customer's.
    BadState(&'static str),
    /// Amazon refused or failed. `status` is Amazon's (0: no answer), `message` Amazon's words.
    Amazon {
        step: &'static str,
        status: u16,
        message: String,
    },
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            AppError::BadRequest(_) | AppError::BadState(_) => 400,
            AppError::Unauthorized(_) => 401,
            AppError::Throttled(_) => 429,
            AppError::NotConfigured(_) => 404,
            AppError::Unavailable(_) => 503,
            // Amazon refused what it was given (a code used twice or expired): the customer
            // starts again. Amazon refused linkgate or the customer (credentials, a development
            // skill and a customer who is not a tester): 403. Amazon busy: 503, try later.
            // Amazon down or answering nonsense: a gateway error.
            AppError::Amazon {
                status: 401 | 403, ..
            } => 403,
            AppError::Amazon { status: 429, .. } => 503,
            AppError::Amazon { status, .. } if (400..500).contains(status) => 400,
            AppError::Amazon { status: 0, .. } => 504,
            AppError::Amazon { .. } => 502,
        }
    }

    /// The `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(e) => e.code(),
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Throttled(_) => "slow_down",
            AppError::NotConfigured(_) => "not_configured",
            AppError::Unavailable(_) => "temporarily_unavailable",
            AppError::BadState(_) => "invalid_state",
            AppError::Amazon { status: 0, .. } => "amazon_unavailable",
            AppError::Amazon { .. } => "amazon_error",
        }
    }

    /// The `message` field: for the app's developer, never a secret.
    pub fn message(&self) -> String {
        match self {
            AppError::BadRequest(e) => e.description(),
            AppError::Unauthorized(m) | AppError::NotConfigured(m) | AppError::Unavailable(m) => {
                m.clone()
            }
            AppError::Throttled(wait) => format!("too many failed attempts; wait {wait} s"),
            AppError::BadState(why) => format!("the state {why}; start the link again"),
            AppError::Amazon {
                step,
                status: 0,
                message,
            } => format!("Amazon did not answer ({step}): {message}"),
            AppError::Amazon {
                step,
                status,
                message,
            } => format!("Amazon answered {status} ({step}): {message}"),
        }
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!("app linking: the store failed: {e}");
        AppError::Unavailable("the store cannot answer right now".into())
    }
}
