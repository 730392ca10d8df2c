//! What a running server serves, against what its config file says now (issue 23): a SIGHUP
//! reloads only the TLS certificate files, so any other edit needs a restart, and the log and
//! `--doctor` say which edits those are instead of letting the operator believe they took.

use super::{ClientSecret, Config};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The parts of a config an operator edits, comparable between the running server and the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    /// SHA-256 (hex) of the file's text as the server read it.
    pub file_sha256: String,
    /// Per client id: its redirect URIs, and a fingerprint of the rest of its settings.
    pub clients: BTreeMap<String, (Vec<String>, String)>,
    pub tls_files: Option<(String, String)>,
    pub public_url: String,
    pub listen: String,
    /// A fingerprint of `[ui]`, `[login]`, `[tokens]` and the other sections.
    pub rest: String,
}

impl Served {
    pub fn of(config: &Config) -> Served {
        let clients = config
            .clients
            .iter()
            .map(|c| {
                let secret = match &c.secret {
                    ClientSecret::Plain(s) => crate::base::secret::to_hex(&s.key()),
                    ClientSecret::Hash(h) => h.clone(),
                };
                let settings = format!(
                    "{}|{secret}|{}|{}|{:?}|{:?}|{:?}|{}",
                    c.name,
                    c.require_pkce,
                    c.rotate_refresh_tokens,
                    c.grant_types,
                    c.resources,
                    c.service_scopes,
                    c.alexa_app.is_some()
                );
                (c.id.clone(), (c.redirect_uris.clone(), digest(&settings)))
            })
            .collect();
        Served {
            file_sha256: config.file_sha256.clone(),
            clients,
            tls_files: config
                .tls
                .as_ref()
                .map(|t| (t.cert.display().to_string(), t.key.display().to_string())),
            public_url: config.public_url.clone(),
            listen: config.listen.to_string(),
            rest: digest(&format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}",
                config.ui, config.login, config.tokens, config.accounts, config.limits
            )),
        }
    }

    /// What differs in `file` from what is served, in words; empty when nothing an operator
    /// edits does.
    pub fn differences(&self, file: &Served) -> Vec<String> {
        let mut out = Vec::new();
        for (id, (uris, settings)) in &file.clients {
            match self.clients.get(id) {
                None => out.push(format!("client {id} is new")),
                Some((served_uris, served_settings)) => {
                    for uri in uris.iter().filter(|u| !served_uris.contains(u)) {
                        out.push(format!("client {id}: redirect_uri {uri} is not served yet"));
                    }
                    for uri in served_uris.iter().filter(|u| !uris.contains(u)) {
                        out.push(format!("client {id}: redirect_uri {uri} is still served"));
                    }
                    if settings != served_settings {
                        out.push(format!("client {id}: its secret or settings changed"));
                    }
                }
            }
        }
        for id in self
            .clients
            .keys()
            .filter(|id| !file.clients.contains_key(*id))
        {
            out.push(format!(
                "client {id} was removed from the file but is still served"
            ));
        }
        if self.tls_files != file.tls_files {
            out.push("server.tls: the certificate or key path changed".into());
        }
        if self.public_url != file.public_url {
            out.push(format!("server.public_url is now {}", file.public_url));
        }
        if self.listen != file.listen {
            out.push(format!("server.listen is now {}", file.listen));
        }
        if self.rest != file.rest {
            out.push("[ui], [login], [tokens], [accounts] or limits changed".into());
        }
        if out.is_empty() && self.file_sha256 != file.file_sha256 {
            out.push("the file changed (comments or settings not listed here)".into());
        }
        out
    }
}

fn digest(text: &str) -> String {
    crate::base::secret::to_hex(&crate::base::secret::sha256(text.as_bytes()))[..16].to_string()
}
