//! `[server.acme]`: linkgate obtains and renews its own certificate for `public_url`'s host
//! (RFC 8555), so HTTPS needs no certbot, proxy, timer or reload hook.
//!
//! At start-up the cached certificate (data directory, `acme/`) is served at once, with no ACME
//! call. A background task orders a certificate when there is none and when a third of its
//! lifetime remains, proving control of the name with TLS-ALPN-01 on the TLS listener itself
//! (RFC 8737) or, with `server.http_listen`, HTTP-01 on the plain-HTTP port. A failure is logged
//! with the ACME server's problem, counted in `/metrics`, kept in `acme/state.json` for
//! `--doctor`, and retried with back-off; the old certificate stays in service meanwhile. A new
//! certificate is swapped into the resolver the TLS listener asks on every handshake.
//!
//! The ACME protocol itself is instant-acme's (rustls and ring, no OpenSSL); see docs/https.md for
//! why that crate.

mod client;
pub mod files;
pub mod http01;
pub mod resolver;
pub mod schedule;

use crate::config::{AcmeConfig, Config};
use crate::metrics;
use crate::oauth::server::Server;
use files::{Files, RenewalState, StoredCertificate};
use http01::Http01Tokens;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use resolver::CertResolver;
use schedule::Validity;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The renewal task re-reads the clock at least this often (a suspended machine, a clock step).
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// How long one order may wait for the CA to validate, and then to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The certificate manager: built before the listeners (it loads the cached certificate), then
/// run as a background task.
pub struct Acme {
    config: AcmeConfig,
    files: Files,
    resolver: Arc<CertResolver>,
    /// Some when `server.http_listen` is set: HTTP-01 is used instead of TLS-ALPN-01.
    http01: Option<Arc<Http01Tokens>>,
    /// What is served now.
    validity: Option<Validity>,
    state: RenewalState,
    account: Option<Account>,
}

impl Acme {
    /// Loads the account state and the cached certificate, if it is for this domain and this
    /// ACME directory. Fails only on an unusable `directory_ca`.
    pub fn prepare(config: &Config) -> Result<Acme, String> {
        let acme = config.acme.clone().ok_or("no [server.acme]")?;
        let files = Files::new(&config.storage_path);
        client::AcmeHttp::new(acme.directory_ca.as_deref())?;
        // Damaged files cost a new order, never the start: HTTPS must come up.
        let state = files.read_state().unwrap_or_else(|e| {
            tracing::warn!("ACME: ignoring the renewal state: {e}");
            None
        });
        let state = state.unwrap_or_default();
        let cached = files.read_certificate().unwrap_or_else(|e| {
            tracing::warn!("ACME: ignoring the cached certificate: {e}");
            None
        });
        let resolver = Arc::new(CertResolver::default());
        let mut validity = None;
        match cached {
            Some(cert) if cert.domain == acme.domain && cert.directory == acme.directory => {
                match load(&resolver, &cert) {
                    Ok(v) => {
                        tracing::info!(
                            "ACME: serving the cached certificate for {}, valid until {}",
                            acme.domain,
                            crate::base::civil::format_time(v.not_after)
                        );
                        validity = Some(v);
                    }
                    Err(e) => tracing::warn!(
                        "ACME: the cached certificate in {} is unusable ({e}); ordering a new one",
                        files.dir().display()
                    ),
                }
            }
            Some(cert) => tracing::info!(
                "ACME: the cached certificate is for {} from {}; ordering one for {} from {}",
                cert.domain,
                cert.directory,
                acme.domain,
                acme.directory
            ),
            None => {}
        }
        Ok(Acme {
            http01: config.http_listen.map(|_| Arc::default()),
            config: acme,
            files,
            resolver,
            validity,
            state,
            account: None,
        })
    }

    /// What the TLS listener asks for its certificate.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Orders and renews until the task is aborted.
    pub async fn run(mut self, app: Arc<Server>) {
        if let Some(validity) = self.validity {
            app.metrics
                .acme_certificate_not_after
                .store(validity.not_after, Ordering::Relaxed);
        }
        // Back-off counts failures of this run: a restart tries at once when a renewal is due.
        let mut failures = 0;
        let mut last_failure = None;
        loop {
            let now = crate::store::now();
            let at = schedule::next_attempt(self.validity, failures, last_failure);
            if at > now {
                let wait = Duration::from_secs(at - now).min(MAX_SLEEP);
                tokio::time::sleep(wait).await;
                continue;
            }
            self.state.last_attempt = Some(now);
            match self.renew().await {
                Ok(validity) => {
                    failures = 0;
                    last_failure = None;
                    self.validity = Some(validity);
                    self.state.last_success = Some(crate::store::now());
                    self.state.last_error = None;
                    self.state.last_error_at = None;
                    self.state.consecutive_failures = 0;
                    metrics::count(&app.metrics.acme_orders_ok);
                    app.metrics
                        .acme_certificate_not_after
                        .store(validity.not_after, Ordering::Relaxed);
                    tracing::info!(
                        "ACME: new certificate for {} in service, valid until {}; renewal from {}",
                        self.config.domain,
                        crate::base::civil::format_time(validity.not_after),
                        crate::base::civil::format_time(validity.renew_at())
                    );
                }
                Err(e) => {
                    failures += 1;
                    let now = crate::store::now();
                    last_failure = Some(now);
                    self.state.last_error = Some(e.clone());
                    self.state.last_error_at = Some(now);
                    self.state.consecutive_failures =
                        self.state.consecutive_failures.saturating_add(1);
                    metrics::count(&app.metrics.acme_orders_failed);
                    let retry = schedule::next_attempt(self.validity, failures, last_failure);
                    tracing::error!(
                        "ACME: no certificate for {} from {}: {e}; {}; next try in {} s",
                        self.config.domain,
                        self.config.directory,
                        if self.resolver.has_certificate() {
                            "the current certificate stays in service"
                        } else {
                            "HTTPS handshakes fail until one is issued"
                        },
                        retry.saturating_sub(now)
                    );
                }
            }
            if let Err(e) = self.files.write_state(&self.state) {
                tracing::warn!("ACME: cannot record the renewal state: {e}");
            }
        }
    }

    /// One order, from account to certificate in service.
    async fn renew(&mut self) -> Result<Validity, String> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(self.config.domain.clone())];
        let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
            Ok(order) => order,
            Err(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                // The CA forgot the account (a reset private CA): make a new one next time.
                self.account = None;
                self.files.remove_account()?;
                return Err(format!(
                    "new order: {problem}; a new account is made on the next try"
                ));
            }
            Err(e) => return Err(format!("new order: {e}")),
        };
        let _cleanup = Cleanup {
            resolver: self.resolver.clone(),
            http01: self.http01.clone(),
        };
        self.answer_challenges(&mut order).await?;
        let retries = RetryPolicy::new().timeout(ORDER_TIMEOUT);
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| format!("validation failed: {e}"))?;
        if status != OrderStatus::Ready {
            return Err(failed_validation(&mut order, status).await);
        }
        let key = order
            .finalize()
            .await
            .map_err(|e| format!("finalizing the order: {e}"))?;
        let chain = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| format!("fetching the certificate: {e}"))?;
        let cert = StoredCertificate {
            domain: self.config.domain.clone(),
            directory: self.config.directory.clone(),
            chain,
            key,
        };
        // Kept before served: a certificate in service is always one a restart finds again.
        self.files.write_certificate(&cert)?;
        load(&self.resolver, &cert)
    }

    /// Publishes the response to each pending authorization's challenge and tells the CA.
    async fn answer_challenges(&self, order: &mut Order) -> Result<(), String> {
        let kind = match self.http01 {
            Some(_) => ChallengeType::Http01,
            None => ChallengeType::TlsAlpn01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| format!("authorization: {e}"))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => return Err(format!("the authorization is {status:?}")),
            }
            let mut challenge = authorization.challenge(kind.clone()).ok_or_else(|| {
                format!("the ACME server offers no {kind:?} challenge for this name")
            })?;
            let key_authorization = challenge.key_authorization();
            match &self.http01 {
                Some(tokens) => tokens.insert(&challenge.token, key_authorization.as_str()),
                None => self
                    .resolver
                    .add_challenge(&self.config.domain, key_authorization.digest().as_ref())?,
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("starting validation: {e}"))?;
        }
        Ok(())
    }

    /// The account: from the data directory when it was made at this directory, else a new one
    /// (its key saved before use, so it is never lost).
    async fn account(&mut self) -> Result<Account, String> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let http = || client::AcmeHttp::new(self.config.directory_ca.as_deref()).map(Box::new);
        let saved = self.files.read_account()?.and_then(|json| {
            let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
            (value.get("directory")?.as_str()? == self.config.directory).then_some(json)
        });
        let account = match saved {
            Some(json) => {
                let credentials: AccountCredentials = serde_json::from_slice(&json)
                    .map_err(|e| format!("the saved ACME account cannot be read: {e}"))?;
                Account::builder_with_http(http()?)
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| format!("ACME directory {}: {e}", self.config.directory))?
            }
            None => {
                let contact = format!("mailto:{}", self.config.email);
                let (account, credentials) = Account::builder_with_http(http()?)
                    .create(
                        &NewAccount {
                            contact: &[&contact],
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.config.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| format!("creating the ACME account: {e}"))?;
                let json = serde_json::to_vec_pretty(&credentials).map_err(|e| e.to_string())?;
                self.files.write_account(&json)?;
                tracing::info!("ACME: account {} created", account.id());
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }
}

/// Stops answering challenges when an order ends, however it ends.
struct Cleanup {
    resolver: Arc<CertResolver>,
    http01: Option<Arc<Http01Tokens>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.resolver.clear_challenges();
        if let Some(tokens) = &self.http01 {
            tokens.clear();
        }
    }
}

/// Why the CA refused: the first challenge error it reports, or the order status.
async fn failed_validation(order: &mut Order, status: OrderStatus) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let _ = authorization.refresh().await;
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                return format!("validation failed: {problem}");
            }
        }
    }
    format!("the order is {status:?}")
}

fn load(resolver: &CertResolver, cert: &StoredCertificate) -> Result<Validity, String> {
    let validity = cert.validity()?;
    resolver.set(cert.chain_der()?, cert.key_der()?)?;
    Ok(validity)
}

/// Starts the renewal task and, with `server.http_listen`, the plain-HTTP listener (bound here,
/// before the server says it is listening). Abort the handles to stop.
pub async fn start(app: &Arc<Server>, acme: Option<Acme>) -> Result<Vec<JoinHandle<()>>, String> {
    let mut tasks = Vec::new();
    let tokens = acme
        .as_ref()
        .and_then(|acme| acme.http01.clone())
        .unwrap_or_default();
    if let Some(addr) = app.config.http_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| crate::http::bind_error(addr, " (server.http_listen)", &e))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!("plain HTTP on {local}: ACME HTTP-01 and a redirect to https");
        tasks.push(tokio::spawn(http01::serve(
            listener,
            origin(&app.config.public_url),
            tokens,
        )));
    }
    if let Some(acme) = acme {
        tasks.push(tokio::spawn(acme.run(app.clone())));
    }
    Ok(tasks)
}

/// `https://host[:port]` of a public URL.
fn origin(public_url: &str) -> String {
    let rest = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("https://{authority}")
}
