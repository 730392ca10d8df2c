//! What every part of the server shares that is not OAuth's own: the config, the store, the
//! bounded password checks, the metrics and the login API client. Built once at start-up; the
//! authorization server's state (`oauth::Server`) holds it, and the sign-in and account rules
//! (`accounts/`) take it alone.

use crate::base::password_workers::PasswordWorkers;
use crate::config::Config;
use crate::store::Store;
use tokio::sync::Semaphore;

pub struct Core {
    pub config: Config,
    pub store: Store,
    /// argon2 is deliberately expensive (19 MiB, tens of ms). It runs on a fixed pool that leaves
    /// one core free for `/token` and `/userinfo`, so a login flood cannot exhaust memory or
    /// starve the endpoints Alexa and skill backends call.
    pub password_workers: PasswordWorkers,
    /// Logins allowed to wait for a password check; beyond that they are refused at once.
    pub login_queue: Semaphore,
    pub metrics: crate::metrics::Metrics,
    /// The operator's login API (`[login.api]`), when `[login] source` uses it.
    pub login_api: Option<crate::login_api::LoginApiClient>,
}

impl Core {
    pub fn new(config: Config, store: Store) -> Core {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Core {
            store,
            password_workers: PasswordWorkers::new(cores.saturating_sub(1).max(1)),
            login_queue: Semaphore::new(cores * 16),
            metrics: Default::default(),
            login_api: login_api_client(&config),
            config,
        }
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
