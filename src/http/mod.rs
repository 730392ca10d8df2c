//! The HTTP layer on plain hyper 1.x: accept loop (`server`), which connections get in
//! (`admission`; token clients beyond an address's share: `vetting`), path to handler
//! (`routes`), header parsing (`request`) and response building (`response`). It parses, calls
//! `oauth`, and renders; it decides nothing about OAuth itself.

mod account_routes;
pub(crate) mod admission;
mod app_routes;
mod refusal;
pub mod request;
mod response;
mod routes;
pub mod server;
pub mod tls;
mod vetting;
