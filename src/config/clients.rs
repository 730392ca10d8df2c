//! The `[[clients]]`: who may link (an Alexa skill, a Google action, an MCP add-on), with its
//! secret, redirect URIs and grant types (`grant_types.rs`), and the redirect URI rules.

use super::schema::RawClient;
use super::values::check_redirect_uri;
use super::{apps, grant_types, AlexaApp, GrantType};
use crate::base::secret::{self, KnownSecret, Secret};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: ClientSecret,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub require_pkce: bool,
    pub rotate_refresh_tokens: bool,
    /// `[clients.alexa_app]`: Alexa app-to-app linking from the operator's app.
    pub alexa_app: Option<AlexaApp>,
    /// The grant types it may use at `/token` (sorted; default: the code flow and refreshes).
    pub grant_types: Vec<GrantType>,
    /// RFC 8707 resource indicators it may name: each becomes a token's audience.
    pub resources: Vec<String>,
    /// The scopes a `client_credentials` token may carry.
    pub service_scopes: Vec<String>,
}

impl Client {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// A client `id` with the defaults (secret `0123456789abcdef`, no redirect URI), for unit
    /// tests to adjust.
    #[cfg(test)]
    pub fn for_tests(id: &str) -> Client {
        Client {
            id: id.into(),
            secret: ClientSecret::Plain(KnownSecret::new(Secret::new("0123456789abcdef"))),
            name: id.into(),
            redirect_uris: Vec::new(),
            require_pkce: false,
            rotate_refresh_tokens: false,
            alexa_app: None,
            grant_types: grant_types::DEFAULT_GRANT_TYPES.to_vec(),
            resources: Vec::new(),
            service_scopes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum ClientSecret {
    Plain(KnownSecret),
    /// An argon2 PHC string.
    Hash(String),
}

/// The `[[clients]]`: at least one, unique ids, a usable secret and registered redirect URIs each.
pub(super) fn check_clients(
    raw: Vec<RawClient>,
    dir: &Path,
    problem: &mut impl FnMut(&str, String),
) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    if raw.is_empty() {
        problem(
            "clients",
            "no [[clients]] configured: add one for your Alexa skill (see config.example.toml)"
                .into(),
        );
    }
    for (i, c) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("clients[{i}].{k}");
        if c.id.is_empty() || c.id.len() > 256 || c.id.chars().any(|ch| ch.is_control()) {
            problem(&key("id"), "must be 1 to 256 printable characters".into());
        }
        if clients.iter().any(|other| other.id == c.id) {
            problem(&key("id"), format!("duplicate client id `{}`", c.id));
        }
        let secret = check_secret(c.secret, c.secret_hash, &key, problem);
        let grants =
            grant_types::check(c.grant_types, c.resources, c.service_scopes, &key, problem);
        // A client that only gets service tokens never redirects a browser.
        if c.redirect_uris.is_empty() && grants.grant_types.contains(&GrantType::AuthorizationCode)
        {
            problem(
                &key("redirect_uris"),
                "at least one redirect URI is required".into(),
            );
        }
        for (j, uri) in c.redirect_uris.iter().enumerate() {
            if let Err(why) = check_redirect_uri(uri) {
                problem(
                    &format!("clients[{i}].redirect_uris[{j}]"),
                    format!("`{uri}` {why}"),
                );
            }
        }
        let alexa_app = c
            .alexa_app
            .and_then(|raw| apps::check_alexa_app(raw, &c.redirect_uris, dir, &key, problem));
        if let Some(secret) = secret {
            clients.push(Client {
                name: c.name.unwrap_or_else(|| c.id.clone()),
                id: c.id,
                secret,
                redirect_uris: c.redirect_uris,
                require_pkce: c.require_pkce,
                rotate_refresh_tokens: c.rotate_refresh_tokens,
                alexa_app,
                grant_types: grants.grant_types,
                resources: grants.resources,
                service_scopes: grants.service_scopes,
            });
        }
    }
    clients
}

/// A client's `secret` or `secret_hash`: exactly one, a long enough secret or an argon2 hash.
fn check_secret(
    secret: Option<String>,
    secret_hash: Option<String>,
    key: &dyn Fn(&str) -> String,
    problem: &mut impl FnMut(&str, String),
) -> Option<ClientSecret> {
    match (secret, secret_hash) {
        (Some(_), Some(_)) => {
            problem(
                &key("secret"),
                "set either `secret` or `secret_hash`, not both".into(),
            );
            None
        }
        (None, None) => {
            problem(
                &key("secret"),
                "missing: every client needs a `secret` (or `secret_hash`)".into(),
            );
            None
        }
        (Some(s), None) if s.chars().count() < 16 => {
            problem(
                &key("secret"),
                "too short: use at least 16 random characters".into(),
            );
            None
        }
        (Some(s), None) => Some(ClientSecret::Plain(KnownSecret::new(Secret::new(s)))),
        (None, Some(h)) if !secret::is_phc_hash(&h) => {
            problem(
                &key("secret_hash"),
                "is not an argon2 PHC string (\"$argon2id$v=19$...\")".into(),
            );
            None
        }
        (None, Some(h)) => Some(ClientSecret::Hash(h)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{check, GOOD};
    use crate::config::DEFAULT_GRANT_TYPES;

    #[test]
    fn redirect_uri_rules() {
        assert!(check_redirect_uri("https://layla.amazon.com/api/skill/link/M2X").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:9000/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://example.com/cb").is_err());
        assert!(check_redirect_uri("https://example.com/cb#frag").is_err());
        assert!(check_redirect_uri("https://user@example.com/cb").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("https://").is_err());
    }

    /// The commented-out Alexa+ client of config.example.toml works once uncommented.
    #[test]
    fn the_example_alexa_plus_client_is_valid() {
        let example = include_str!("../../config.example.toml");
        let start = example
            .find("# [[clients]]                             # an Alexa+")
            .expect("the Alexa+ client");
        let section: String = example[start..]
            .lines()
            .take_while(|line| line.starts_with('#'))
            .filter(|line| !line.starts_with("# Linking"))
            .map(|line| format!("{}\n", line.trim_start_matches("# ")))
            .collect();
        let config = check(&format!("{GOOD}{section}")).unwrap();
        let plus = config.client("alexa-plus").expect("the client");
        assert!(plus.require_pkce && plus.allows(GrantType::ClientCredentials));
        assert_eq!(plus.resources, ["https://mcp.example-taxi.com/mcp"]);
        assert_eq!(plus.service_scopes, ["catalog"]);
        // The skill's client keeps the defaults.
        let skill = config.client("alexa-skill").expect("the skill");
        assert_eq!(skill.grant_types, DEFAULT_GRANT_TYPES);
    }
}
