//! linkgate as a library: the binary in `main.rs` is a thin shell over these modules, and the
//! fuzz targets and benchmarks reach the parsers and the store through here.
//!
//! # Layout, from the top floor down
//! Each layer uses only the ones below it (`farm-studio look`: no circles, no arrow back up).
//! - `admin` — what the operator runs from a shell: the command line, the admin commands and
//!   socket, `--doctor`, `--migrate-store`. `acme` — automatic HTTPS.
//! - `http` — hyper: accepting, admission, routes; parses, calls, renders, decides nothing.
//! - `apps` — app-to-app linking (Alexa app-to-app, Google App Flip). `pages` — the HTML.
//! - `oauth` — the OAuth rules and the server's state (`oauth::Server`); `oauth::tokens` — the
//!   token rules, apart from HTTP and from how they are stored.
//! - `accounts` — sign-in (one throttled `Attempt` for every check of a secret), two-factor,
//!   `/account`, invitation links, security events.
//! - `app` — `Core`: config, store, password checks, metrics, the login API client.
//! - `metrics`, `login_api`, `outbound`, `presets` — counters, the operator's login API client,
//!   calls to Amazon and Google, client presets.
//! - `config` — the TOML file and its checks. `store` — sled or PostgreSQL: records only, no
//!   rules. `logging`.
//! - `base` — the ground floor: secrets, time, URLs, forms, the throttles' arithmetic, TLS client.

pub mod accounts;
pub mod acme;
pub mod admin;
pub mod app;
pub mod apps;
pub mod base;
pub mod config;
pub mod http;
pub mod logging;
pub mod login_api;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod pages;
pub mod presets;
pub mod store;
