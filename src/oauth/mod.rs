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
pub mod service;
pub mod target;
pub mod token;
pub mod tokens;

pub use error::OAuthError;

/// A successful token response (RFC 6749 §5.1), of every grant `/token` issues.
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: crate::secret::Secret,
    pub expires_in: u64,
    /// `None` for `client_credentials` (RFC 6749 §4.4.3: no refresh token).
    pub refresh_token: Option<crate::secret::Secret>,
    pub scope: String,
}

/// Tokens are at most this long (the contract promises clients ≤ 2048 characters); longer input
/// cannot be one of ours and is refused before any hashing or lookup.
pub const MAX_TOKEN_LEN: usize = 2048;

/// RFC 6749 §3.3: `scope = scope-token *( SP scope-token )`, scope-token = 1*( %x21 / %x23-5B /
/// %x5D-7E ). Returns the scopes normalised to single spaces, or `None` if a character is not
/// allowed.
pub fn normalize_scope(scope: &str) -> Option<String> {
    let tokens: Vec<&str> = scope.split(' ').filter(|t| !t.is_empty()).collect();
    let valid =
        |c: char| c == '\x21' || ('\x23'..='\x5b').contains(&c) || ('\x5d'..='\x7e').contains(&c);
    if tokens.iter().all(|t| t.chars().all(valid)) {
        Some(tokens.join(" "))
    } else {
        None
    }
}

/// Whether every scope in `requested` is in `granted`.
pub fn scope_within(requested: &str, granted: &str) -> bool {
    requested
        .split(' ')
        .filter(|t| !t.is_empty())
        .all(|r| granted.split(' ').any(|g| g == r))
}
