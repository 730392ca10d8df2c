//! What every request handler needs: the config, the store, the pending authorizations and the
//! limit on concurrent password checks. Built once at start-up and shared behind an `Arc`.
//!
//! The one import here that runs back up (farm-studio): `App` holds state whose types live in
//! `oauth/` (the pending authorizations, the client-secret cache and throttle, the linking log)
//! while the rules in `oauth/` and `accounts/` still take `&App`. It goes when the rules take
//! only what they use (`(&Store, &Config, now)`) and `App` moves into `http/` as that layer's
//! state — the next step of issue 25 (the token rules already work that way: `oauth/tokens/`).

use crate::base::password_workers::PasswordWorkers;
use crate::config::Config;
use crate::oauth::pending::PendingAuthorizations;
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub pending: PendingAuthorizations,
    /// argon2 is deliberately expensive (19 MiB, tens of ms). It runs on a fixed pool that leaves
    /// one core free for `/token` and `/userinfo`, so a login flood cannot exhaust memory or
    /// starve the endpoints Alexa and skill backends call.
    pub password_workers: PasswordWorkers,
    /// Logins allowed to wait for a password check; beyond that they are refused at once.
    pub login_queue: Semaphore,
    pub client_secret_cache: crate::oauth::secret_cache::SecretCache,
    /// Failed client authentications at `/token`, `/introspect`, `/revoke`.
    pub client_throttle: crate::oauth::client_throttle::ClientThrottle,
    pub metrics: crate::metrics::Metrics,
    /// The operator's login API (`[login.api]`), when `[login] source` uses it.
    pub login_api: Option<crate::login_api::LoginApiClient>,
    /// Why links failed: reasons logged and kept for `--linking-log`.
    pub linking: crate::oauth::linking_log::LinkingLog,
}

impl App {
    /// Fails only if the store cannot give the key authorization forms are sealed with.
    pub fn new(config: Config, store: Store) -> Result<Arc<App>, crate::store::StoreError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Arc::new(App {
            pending: PendingAuthorizations::new(store.clone())?,
            store,
            password_workers: PasswordWorkers::new(cores.saturating_sub(1).max(1)),
            login_queue: Semaphore::new(cores * 16),
            client_secret_cache: Default::default(),
            client_throttle: Default::default(),
            metrics: Default::default(),
            login_api: login_api_client(&config),
            linking: Default::default(),
            config,
        }))
    }
}

/// The login API client, when the config's login source uses it. `main` builds one first and
/// refuses to start if that fails, so the error branch here is only a safety net.
fn login_api_client(config: &Config) -> Option<crate::login_api::LoginApiClient> {
    let api = config
        .login
        .api
        .clone()
        .filter(|_| config.login.source.uses_api())?;
    match crate::login_api::LoginApiClient::new(api) {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::error!("the login API client cannot be built: {e}");
            None
        }
    }
}
