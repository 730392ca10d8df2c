//! linkgate as a library: the binary in `main.rs` is a thin shell over these modules, and the
//! fuzz targets and benchmarks reach the parsers and the store through here.

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
