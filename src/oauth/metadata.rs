//! RFC 8414 authorization server metadata: what this server actually supports, so that client
//! libraries can configure themselves.

use crate::config::{Config, GrantType};
use serde::Serialize;

#[derive(Serialize)]
pub struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    token_endpoint_auth_methods_supported: [&'static str; 2],
    userinfo_endpoint: String,
    introspection_endpoint: String,
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint: String,
    revocation_endpoint_auth_methods_supported: [&'static str; 2],
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    /// Exactly the grant types some configured client enables.
    grant_types_supported: Vec<&'static str>,
    code_challenge_methods_supported: [&'static str; 1],
}

const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

pub fn metadata(config: &Config) -> Metadata {
    let url = |path: &str| format!("{}{path}", config.public_url);
    Metadata {
        issuer: config.public_url.clone(),
        authorization_endpoint: url("/authorize"),
        token_endpoint: url("/token"),
        token_endpoint_auth_methods_supported: AUTH_METHODS,
        userinfo_endpoint: url("/userinfo"),
        introspection_endpoint: url("/introspect"),
        introspection_endpoint_auth_methods_supported: AUTH_METHODS,
        revocation_endpoint: url("/revoke"),
        revocation_endpoint_auth_methods_supported: AUTH_METHODS,
        response_types_supported: ["code"],
        response_modes_supported: ["query"],
        grant_types_supported: GrantType::ALL
            .into_iter()
            .filter(|g| config.clients.iter().any(|c| c.allows(*g)))
            .map(GrantType::name)
            .collect(),
        code_challenge_methods_supported: ["S256"],
    }
}
