//! The admin side of one-time password links: `--invite NAME` and `--reset-password NAME` make
//! the token, send only its SHA-256 to the store (directly or over the admin socket) and print
//! the link. The browser side, the form at the link, is `accounts::links`.

use super::{AdminError, Request};
use crate::accounts::events;
use crate::accounts::links::{PATH, TOKEN_PREFIX};
use crate::base::secret::{self, Secret};
use crate::config::Config;
use crate::store::{now, AddUserError, EventKind, LinkKind, Store, Username};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// `--invite NAME` / `--reset-password NAME`: a new link's token and the request that stores it
/// (replacing the user's previous one); the admin side runs it (`admin::issue_link`).
pub fn new_link(
    config: &Config,
    kind: LinkKind,
    name: &str,
) -> Result<(Secret, Request), AdminError> {
    let name =
        Username::parse(name).map_err(|e| AdminError(format!("invalid username `{name}`: {e}")))?;
    let token = secret::new_token(TOKEN_PREFIX);
    let request = Request::PasswordLink {
        name: name.to_string(),
        kind,
        key: URL_SAFE_NO_PAD.encode(token.key()),
        ttl_secs: config.accounts.invite_ttl_secs,
    };
    Ok((token, request))
}

/// What to print for a stored link: who, until when (`message`), and the link.
pub fn printed(config: &Config, message: &str, token: &Secret) -> String {
    format!(
        "{message}\n{}{PATH}?token={}",
        config.public_url,
        token.expose()
    )
}

/// Carries out a `PasswordLink` request on the store (the CLI's or the running server's).
pub fn execute(
    store: &Store,
    name: &str,
    kind: LinkKind,
    key: &str,
    ttl_secs: u64,
) -> Result<String, AdminError> {
    let name =
        Username::parse(name).map_err(|e| AdminError(format!("invalid username `{name}`: {e}")))?;
    let key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| AdminError("the link key is not a SHA-256".into()))?;
    let user = match kind {
        // Until the link is used the account has a random password nobody knows: it exists
        // (the name is taken, `--list-users` shows it) but no one can sign in as it.
        LinkKind::Invite => {
            let unusable = secret::hash_password(&Secret::new(secret::new_id()));
            store.add_user(&name, unusable).map_err(|e| match e {
                AddUserError::Exists(_) => AdminError(format!(
                    "user `{name}` already exists: use --reset-password {name}"
                )),
                AddUserError::Store(e) => e.into(),
            })?
        }
        LinkKind::Reset => store
            .user(&name)?
            .ok_or_else(|| AdminError(format!("no user `{name}`")))?,
    };
    let link = store.put_password_link(&key, &user, kind, now(), ttl_secs)?;
    store.flush_blocking()?;
    let detail = match kind {
        LinkKind::Invite => "--invite",
        LinkKind::Reset => "--reset-password",
    };
    events::record(
        store,
        &user.sub,
        name.as_str(),
        EventKind::Admin,
        None,
        detail,
    );
    let what = match kind {
        LinkKind::Invite => "invited",
        LinkKind::Reset => "password reset for",
    };
    Ok(format!(
        "{what} {name}: send them this link (single use, valid until {}; a newer link replaces it):",
        crate::base::civil::format_time(link.expires_at)
    ))
}
