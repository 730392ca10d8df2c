//! RFC 8707 resource indicators: which resource (an Alexa+ add-on's MCP server) a token is for.
//! A client names one of its configured `resources`; a client with exactly one may leave it out;
//! a client with several must name one. The resource becomes the grant's, so the access tokens of
//! every refresh carry it as their audience (`aud` at `/introspect`).

use super::OAuthError;
use crate::base::urlencoded::{ParamError, Params};
use crate::config::Client;

/// The resource of a new authorization (`/authorize`, or `client_credentials` at `/token`).
pub fn requested(client: &Client, params: &Params) -> Result<Option<String>, OAuthError> {
    match named(params)? {
        Some(resource) if client.resources.iter().any(|r| r == resource) => {
            Ok(Some(resource.to_string()))
        }
        Some(resource) => Err(not_registered(resource)),
        None => match client.resources.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some(only.clone())),
            _ => Err(OAuthError::InvalidTarget(
                "this client has several resources: name one with `resource`".into(),
            )),
        },
    }
}

/// The resource at a code exchange or a refresh: the one already granted, which `resource`
/// may repeat but not change.
pub fn granted(granted: Option<&str>, params: &Params) -> Result<Option<String>, OAuthError> {
    match named(params)? {
        None => Ok(granted.map(str::to_string)),
        Some(resource) if Some(resource) == granted => Ok(Some(resource.to_string())),
        Some(resource) => Err(OAuthError::InvalidTarget(format!(
            "resource `{}` is not the one this authorization was granted for",
            shown(resource)
        ))),
    }
}

/// The `resource` parameter: at most one (RFC 8707 allows several; one token here is for one).
fn named(params: &Params) -> Result<Option<&str>, OAuthError> {
    match params.single("resource") {
        Ok(resource) => Ok(resource),
        Err(ParamError::Repeated(_)) => Err(OAuthError::InvalidTarget(
            "name one resource per request".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

fn not_registered(resource: &str) -> OAuthError {
    OAuthError::InvalidTarget(format!(
        "resource `{}` is not registered for this client",
        shown(resource)
    ))
}

/// At most 200 characters of what the client sent, for the error description.
fn shown(resource: &str) -> String {
    resource.chars().take(200).collect()
}
