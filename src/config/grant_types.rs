//! A client's `grant_types`, `resources` (RFC 8707 resource indicators) and `service_scopes`:
//! what an Alexa+ MCP add-on client needs (issue 33) besides the authorization code flow every
//! client has by default.

use super::values::check_redirect_uri;

/// A grant type a client may use at `/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    /// The name RFC 6749 and RFC 8414 use.
    pub fn name(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    fn parse(name: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// Without `grant_types`: the authorization code flow and its refreshes.
pub const DEFAULT_GRANT_TYPES: [GrantType; 2] =
    [GrantType::AuthorizationCode, GrantType::RefreshToken];

/// The checked `grant_types`, `resources` and `service_scopes` of one client.
pub(super) struct Checked {
    pub grant_types: Vec<GrantType>,
    pub resources: Vec<String>,
    pub service_scopes: Vec<String>,
}

/// Checks the three keys of client `key("")`; problems go to `problem(key, what)`.
pub(super) fn check(
    grant_types: Option<Vec<String>>,
    resources: Vec<String>,
    service_scopes: Vec<String>,
    key: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) -> Checked {
    let mut types = Vec::new();
    match grant_types {
        None => types.extend(DEFAULT_GRANT_TYPES),
        Some(names) => {
            for (j, name) in names.iter().enumerate() {
                match GrantType::parse(name) {
                    Some(grant) if !types.contains(&grant) => types.push(grant),
                    Some(_) => {}
                    None => problem(
                        &format!("{}[{j}]", key("grant_types")),
                        format!(
                            "`{name}` is not a grant type; use authorization_code, refresh_token or client_credentials"
                        ),
                    ),
                }
            }
            if names.is_empty() {
                problem(
                    &key("grant_types"),
                    "must name at least one grant type".into(),
                );
            }
        }
    }
    types.sort();
    if types.contains(&GrantType::RefreshToken) && !types.contains(&GrantType::AuthorizationCode) {
        problem(
            &key("grant_types"),
            "refresh_token needs authorization_code (refresh tokens come from code exchanges)"
                .into(),
        );
    }
    for (j, resource) in resources.iter().enumerate() {
        // RFC 8707 §2: an absolute URI without a fragment; the same transport rule as a
        // redirect URI (https, or http to this machine).
        if let Err(why) = check_redirect_uri(resource) {
            problem(
                &format!("{}[{j}]", key("resources")),
                format!("`{resource}` {why}"),
            );
        }
    }
    for (j, scope) in service_scopes.iter().enumerate() {
        let valid = !scope.contains(' ')
            && crate::base::scope::normalize_scope(scope).is_some_and(|s| s == *scope);
        if !valid || scope.is_empty() {
            problem(
                &format!("{}[{j}]", key("service_scopes")),
                format!("`{scope}` is not one scope token (no spaces, quotes or backslashes)"),
            );
        }
    }
    if !service_scopes.is_empty() && !types.contains(&GrantType::ClientCredentials) {
        problem(
            &key("service_scopes"),
            "is only used by client_credentials, which grant_types does not enable".into(),
        );
    }
    Checked {
        grant_types: types,
        resources,
        service_scopes,
    }
}
