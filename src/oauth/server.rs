//! The authorization server's state, what the HTTP layer holds behind an `Arc` and hands to every
//! handler: the shared core (`app::Core`: config, store, password checks, metrics, login API)
//! and what OAuth keeps in memory — the pending authorizations' sealing key, the client-secret
//! cache and throttle, the linking log. Built once at start-up.
//!
//! It dereferences to its core, so `server.store` reads as before and a `&Server` is accepted
//! wherever a rule asks only for `&Core` (the sign-in and account rules in `accounts/`).

use super::client_throttle::ClientThrottle;
use super::linking_log::LinkingLog;
use super::pending::PendingAuthorizations;
use super::secret_cache::SecretCache;
use crate::app::Core;
use crate::config::Config;
use crate::store::{Store, StoreError};
use std::ops::Deref;
use std::sync::Arc;

pub struct Server {
    pub core: Core,
    pub pending: PendingAuthorizations,
    pub client_secret_cache: SecretCache,
    /// Failed client authentications at `/token`, `/introspect`, `/revoke`.
    pub client_throttle: ClientThrottle,
    /// Why links failed: reasons logged and kept for `--linking-log`.
    pub linking: LinkingLog,
}

impl Server {
    /// Fails only if the store cannot give the key authorization forms are sealed with.
    pub fn new(config: Config, store: Store) -> Result<Arc<Server>, StoreError> {
        Ok(Arc::new(Server {
            pending: PendingAuthorizations::new(store.clone())?,
            core: Core::new(config, store),
            client_secret_cache: Default::default(),
            client_throttle: Default::default(),
            linking: Default::default(),
        }))
    }
}

impl Deref for Server {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}
