//! `linkgate --new-client NAME [--preset alexa|google|alexa-plus]`: a fresh client secret, shown
//! once, its `secret_hash`, the `[[clients]]` block to paste into the config, and the values to
//! paste into the Alexa, Google or Alexa+ console. It writes nothing: the operator pastes the
//! block (the config stays the operator's file, comments and all).

use crate::base::secret::{self, Secret};
use crate::config::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Which console the client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Alexa,
    Google,
    AlexaPlus,
}

impl Preset {
    pub fn parse(name: &str) -> Result<Preset, String> {
        match name {
            "alexa" => Ok(Preset::Alexa),
            "google" => Ok(Preset::Google),
            "alexa-plus" => Ok(Preset::AlexaPlus),
            other => Err(format!(
                "--preset `{other}` is not a preset; use alexa, google or alexa-plus"
            )),
        }
    }
}

/// What to print for a new client `id`. `config` gives the public URL for the console values
/// (`None`: a placeholder, with a note).
pub fn new_client(config: Option<&Config>, id: &str, preset: Preset) -> Result<String, String> {
    if id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_control() || c == '"') {
        return Err("--new-client NAME: 1 to 256 printable characters, no quotes".into());
    }
    if config.is_some_and(|c| c.client(id).is_some()) {
        return Err(format!(
            "the config already has a client `{id}`: choose another name, or remove that one"
        ));
    }
    let secret = Secret::new(URL_SAFE_NO_PAD.encode(secret::random_bytes::<32>()));
    let hash = secret::hash_password(&secret);
    let base = config.map_or("https://auth.example.com".to_string(), |c| {
        c.public_url.trim_end_matches('/').to_string()
    });
    let mut out = format!(
        "A new client `{id}`. Its secret is shown this once; the config keeps only its hash.\n\n\
         Paste into the config, under the other [[clients]]:\n\n"
    );
    out.push_str(&block(id, &hash, preset));
    out.push_str(&console(&base, id, secret.expose(), preset));
    if config.is_none() {
        out.push_str(
            "\n(No config was readable, so the URLs above use https://auth.example.com: use your \
             server.public_url.)\n",
        );
    }
    out.push_str("\nThen check it: linkgate --check-config, and restart linkgate.\n");
    Ok(out)
}

/// The `[[clients]]` block.
fn block(id: &str, hash: &str, preset: Preset) -> String {
    let head = format!("[[clients]]\nid = \"{id}\"\nsecret_hash = \"{hash}\"\n");
    let rest = match preset {
        Preset::Alexa => {
            "\
name = \"Example Taxi for Alexa\"       # shown on the consent page
redirect_uris = [
  # the three \"Alexa Redirect URLs\" from the skill's Account Linking page:
  \"https://pitangui.amazon.com/api/skill/link/VENDOR_ID\",
  \"https://layla.amazon.com/api/skill/link/VENDOR_ID\",
  \"https://alexa.amazon.co.jp/api/skill/link/VENDOR_ID\",
]
"
        }
        Preset::Google => {
            "\
name = \"Example Taxi for Google\"      # shown on the consent page
redirect_uris = [
  \"https://oauth-redirect.googleusercontent.com/r/PROJECT_ID\",
  \"https://oauth-redirect-sandbox.googleusercontent.com/r/PROJECT_ID\",
]
"
        }
        Preset::AlexaPlus => {
            "\
name = \"Example Taxi for Alexa+\"      # shown on the consent page
redirect_uris = [\"https://REDIRECT-URL-FROM-THE-ALEXA-PLUS-CONSOLE\"]
require_pkce = true                    # OAuth 2.1: S256 on every authorization request
grant_types = [\"authorization_code\", \"refresh_token\", \"client_credentials\"]
resources = [\"https://mcp.example-taxi.com/mcp\"]   # your MCP server, the tokens' audience
# service_scopes = [\"catalog\"]        # scopes a client_credentials token may carry
"
        }
    };
    format!("{head}{rest}")
}

/// The values for the console the preset is for.
fn console(base: &str, id: &str, secret: &str, preset: Preset) -> String {
    let rows: Vec<(&str, String)> = match preset {
        Preset::Alexa => vec![
            ("Authorization Grant Type", "Auth Code Grant".into()),
            ("Your Web Authorization URI", format!("{base}/authorize")),
            ("Access Token URI", format!("{base}/token")),
            ("Your Client ID", id.into()),
            ("Your Secret", secret.into()),
            (
                "Your Authentication Scheme",
                "HTTP Basic (Recommended)".into(),
            ),
            ("Scope", "profile".into()),
            (
                "Alexa Redirect URLs",
                "copy all three into redirect_uris above".into(),
            ),
        ],
        Preset::Google => vec![
            ("Client ID issued by your Actions to Google", id.into()),
            ("Client secret", secret.into()),
            ("Authorization URL", format!("{base}/authorize")),
            ("Token URL", format!("{base}/token")),
            ("Scopes", "profile".into()),
            (
                "Google to transmit clientID and secret via HTTP basic auth header",
                "either works".into(),
            ),
            (
                "PROJECT_ID",
                "your Google Cloud project id, in redirect_uris above".into(),
            ),
        ],
        Preset::AlexaPlus => vec![
            ("Authorization server (issuer)", base.into()),
            ("Authorization URI", format!("{base}/authorize")),
            ("Access token URI", format!("{base}/token")),
            ("Client ID", id.into()),
            ("Client secret", secret.into()),
            (
                "Redirect URL(s)",
                "copy the console's into redirect_uris above".into(),
            ),
            (
                "Your MCP server",
                "put its URL into resources above; see docs/alexa-plus.md".into(),
            ),
        ],
    };
    let console = match preset {
        Preset::Alexa => "the Alexa developer console (Build → Account Linking)",
        Preset::Google => {
            "the Actions console (Develop → Account linking, OAuth, Authorization code)"
        }
        Preset::AlexaPlus => "the Alexa+ add-on console (account linking)",
    };
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!("\nIn {console}:\n\n");
    for (key, value) in rows {
        out.push_str(&format!("  {key:<width$}  {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_prints_a_block_the_config_accepts_and_a_secret_that_matches_its_hash() {
        for preset in [Preset::Alexa, Preset::Google, Preset::AlexaPlus] {
            let out = new_client(None, "new-client", preset).unwrap();
            let start = out.find("\n[[clients]]\n").unwrap() + 1;
            let block: String = out[start..]
                .lines()
                .take_while(|l| !l.is_empty())
                .map(|l| format!("{l}\n"))
                .collect();
            let text = format!(
                "[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"https://auth.example.com\"\n\
                 [storage]\npath = \"data\"\n{}",
                block
                    .replace("VENDOR_ID", "M2ABC")
                    .replace("PROJECT_ID", "p")
                    .replace("REDIRECT-URL-FROM-THE-ALEXA-PLUS-CONSOLE", "alexa.example/cb")
            );
            let config = crate::config::parse_for_tests(&text)
                .unwrap_or_else(|e| panic!("{preset:?}: {e}\n{text}"));
            let client = config.client("new-client").unwrap();
            let crate::config::ClientSecret::Hash(hash) = &client.secret else {
                panic!("{preset:?}: a plain secret in the block");
            };
            let secret_line = out
                .lines()
                .find(|l| l.starts_with("  ") && l.to_lowercase().contains("secret"))
                .unwrap();
            let secret = secret_line.split_whitespace().last().unwrap();
            assert_eq!(secret.len(), 43, "{secret_line}");
            assert!(secret::verify_password(&Secret::new(secret), hash));
            assert!(out.contains("https://auth.example.com/token"));
        }
        assert!(Preset::parse("siri").is_err());
    }
}
