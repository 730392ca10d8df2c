//! Access and refresh tokens: their format, how one is checked, issued and refreshed, and why a
//! refused one is dead. The rules live here; the store only keeps grants, keys and deny entries.
//!
//! - `sealed.rs`: the self-verifying format (what travels inside a token, under a MAC).
//! - `check.rs`: is a presented token alive, and whose is it (`/userinfo`, `/introspect`).
//! - `issue.rs`: new access and refresh tokens.
//! - `rotation.rs`: refresh-token rotation and reuse detection, as pure rules.
//! - `refresh.rs`: a refresh against the store (reads, and the one write a rotation needs).
//! - `why_dead.rs`: the reason a refused token is dead, for the operator's log.

pub mod check;
pub mod issue;
pub mod refresh;
pub mod rotation;
pub mod sealed;
pub mod why_dead;

pub use check::{prefetch, revoke_access, token};
pub use refresh::{refresh, Issue, Refreshed};
pub use sealed::{ACCESS_PREFIX, REFRESH_PREFIX};
pub use why_dead::why_dead;
