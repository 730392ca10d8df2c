//! The OAuth 2.0 rules (RFC 6749 authorization code grant, RFC 7636 PKCE, RFC 7662, RFC 7009),
//! free of HTTP: handlers pass in parsed parameters and get back decisions to render.

pub mod authorize;
pub mod client;
pub mod client_throttle;
pub mod customer_check;
pub mod error;
pub mod linking_log;
pub mod metadata;
pub mod pending;
pub mod refusal;
pub mod resource;
pub mod secret_cache;
pub mod server;
pub mod service;
pub mod target;
pub mod token;
pub mod tokens;

pub use crate::base::scope::{normalize_scope, scope_within};
pub use error::OAuthError;

/// A successful token response (RFC 6749 §5.1), of every grant `/token` issues.
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: crate::base::secret::Secret,
    pub expires_in: u64,
    /// `None` for `client_credentials` (RFC 6749 §4.4.3: no refresh token).
    pub refresh_token: Option<crate::base::secret::Secret>,
    pub scope: String,
}

/// Tokens are at most this long (the contract promises clients ≤ 2048 characters); longer input
/// cannot be one of ours and is refused before any hashing or lookup.
pub const MAX_TOKEN_LEN: usize = 2048;
