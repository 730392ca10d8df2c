//! linkgate as a library: the binary in `main.rs` is a thin shell over these modules, and the
//! fuzz targets and benchmarks reach the parsers and the store through here.

pub mod accounts;
pub mod acme;
pub mod admin;
pub mod admin_protocol;
pub mod admin_socket;
pub mod app;
pub mod apps;
pub mod base;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod http;
pub mod logging;
pub mod login_api;
pub mod metrics;
pub mod migrate;
pub mod oauth;
pub mod outbound;
pub mod pages;
pub mod presets;
pub mod store;
