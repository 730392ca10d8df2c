//! People managing their own accounts (issue 15): one-time links where a person sets their own
//! password (`--invite`, `--reset-password`), so the admin never chooses or sees it. The rules
//! live here, free of hyper; `http::account_routes` parses requests and `pages` renders.

pub mod events;
pub mod links;
pub mod password_rules;
pub mod second_factor;
pub mod session;
pub mod sign_in;
pub mod throttle;
pub mod totp;
pub mod two_factor;
