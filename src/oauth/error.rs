//! The one error type of the OAuth endpoints, and the one place that maps it to an RFC 6749
//! error code (§4.1.2.1, §5.2), RFC 6750 / 7662 / 7009 codes, and an HTTP status.

use crate::store::StoreError;
use std::fmt;

#[derive(Debug)]
pub enum OAuthError {
    /// Malformed or missing parameters.
    InvalidRequest(String),
    /// Client authentication failed (401 with `WWW-Authenticate`).
    InvalidClient(String),
    /// The code or refresh token is dead: unknown, expired, used, revoked, or for another
    /// client. Alexa and Google unlink the customer on this, so only for real.
    InvalidGrant(String),
    UnsupportedGrantType(String),
    UnsupportedResponseType(String),
    InvalidScope(String),
    /// The client may not use this grant type (its `grant_types`).
    UnauthorizedClient(String),
    /// RFC 8707 §2: the `resource` is not one the client may name.
    InvalidTarget(String),
    AccessDenied,
    /// A bearer token that is missing (`None`) or not valid (RFC 6750 §3.1).
    InvalidToken(Option<String>),
    /// A fault on our side (storage: sled's I/O, or PostgreSQL down or failing over). The detail
    /// is logged, not shown. 503 with `Retry-After`: clients retry, and never unlink (which
    /// `invalid_grant` would make Alexa do).
    ServerError(String),
    /// Too many failed client authentications from this address or for this client: seconds
    /// to wait (429 with `Retry-After`; the secret was not checked).
    ClientThrottled(u64),
    /// The error with what the operator is told about it (`linking_log`): more exact than the
    /// description the client gets (which client, which URI, which check failed), never a secret.
    Explained(Box<OAuthError>, String),
    /// The error after it was logged, with the reference sent as `X-Linkgate-Reference`.
    Referenced(Box<OAuthError>, String),
}

/// How long a client is asked to wait after a fault on our side (a database failover takes
/// seconds).
const SERVER_ERROR_RETRY_SECS: u64 = 5;

impl OAuthError {
    /// The same error, with the operator's reason for it.
    pub fn because(self, reason: impl Into<String>) -> OAuthError {
        match self {
            OAuthError::Referenced(..) => self,
            other => OAuthError::Explained(Box::new(other.plain()), reason.into()),
        }
    }

    /// The same error, logged under `reference`.
    pub fn referenced(self, reference: &str) -> OAuthError {
        OAuthError::Referenced(Box::new(self), reference.to_string())
    }

    /// What the operator is told: the reason given with `because`, else the description.
    pub fn reason(&self) -> String {
        match self {
            OAuthError::Explained(_, reason) => reason.clone(),
            OAuthError::Referenced(inner, _) => inner.reason(),
            // The detail is logged, never shown.
            OAuthError::ServerError(detail) => detail.clone(),
            other => other.description(),
        }
    }

    /// The reference it was logged under, if it was.
    pub fn reference(&self) -> Option<&str> {
        match self {
            OAuthError::Referenced(_, reference) => Some(reference),
            _ => None,
        }
    }

    /// The error itself, without reason or reference.
    pub fn plain(self) -> OAuthError {
        match self {
            OAuthError::Explained(inner, _) | OAuthError::Referenced(inner, _) => inner.plain(),
            other => other,
        }
    }

    fn inner(&self) -> &OAuthError {
        match self {
            OAuthError::Explained(inner, _) | OAuthError::Referenced(inner, _) => inner.inner(),
            other => other,
        }
    }

    /// The `error` code on the wire.
    pub fn code(&self) -> &'static str {
        match self.inner() {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) | OAuthError::ClientThrottled(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::AccessDenied => "access_denied",
            OAuthError::InvalidToken(_) => "invalid_token",
            OAuthError::ServerError(_) => "server_error",
            // `inner` never is a wrapper.
            OAuthError::Explained(..) | OAuthError::Referenced(..) => "server_error",
        }
    }

    /// The HTTP status of a direct (non-redirect) error response.
    pub fn status(&self) -> u16 {
        match self.inner() {
            OAuthError::InvalidClient(_) | OAuthError::InvalidToken(_) => 401,
            OAuthError::AccessDenied => 403,
            OAuthError::ServerError(_) => 503,
            OAuthError::ClientThrottled(_) => 429,
            _ => 400,
        }
    }

    /// The `error_description`: safe to show to the client.
    pub fn description(&self) -> String {
        match self.inner() {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::UnsupportedResponseType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::InvalidTarget(d) => d.clone(),
            OAuthError::AccessDenied => "the user denied the request".into(),
            OAuthError::InvalidToken(Some(d)) => d.clone(),
            OAuthError::InvalidToken(None) => "a bearer token is required".into(),
            OAuthError::ServerError(_) => "temporary server error; retry later".into(),
            OAuthError::ClientThrottled(wait) => {
                format!("too many failed client authentications; retry in {wait} s")
            }
            // `inner` never is a wrapper.
            OAuthError::Explained(..) | OAuthError::Referenced(..) => String::new(),
        }
    }

    /// Seconds for a `Retry-After` header, if the client should wait.
    pub fn retry_after(&self) -> Option<u64> {
        match self.inner() {
            OAuthError::ClientThrottled(wait) => Some(*wait),
            OAuthError::ServerError(_) => Some(SERVER_ERROR_RETRY_SECS),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` challenge that must go with the response, if any.
    pub fn www_authenticate(&self) -> Option<String> {
        match self.inner() {
            OAuthError::InvalidClient(_) => Some("Basic realm=\"linkgate\"".into()),
            // RFC 6750 §3.1: no error code when the request carried no token at all.
            OAuthError::InvalidToken(None) => Some("Bearer realm=\"linkgate\"".into()),
            OAuthError::InvalidToken(Some(_)) => {
                Some("Bearer realm=\"linkgate\", error=\"invalid_token\"".into())
            }
            _ => None,
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.description())
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::ServerError(e.to_string())
    }
}

impl From<crate::base::urlencoded::ParamError> for OAuthError {
    fn from(e: crate::base::urlencoded::ParamError) -> Self {
        use crate::base::urlencoded::ParamError;
        OAuthError::InvalidRequest(match e {
            ParamError::NotUtf8 => "parameters must be UTF-8".into(),
            ParamError::Repeated(name) => format!("parameter `{name}` must not be repeated"),
        })
    }
}
