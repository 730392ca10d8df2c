//! The ground floor: small pieces every layer uses and that use nothing else of linkgate —
//! secrets and MACs, random bytes, the caches' size rule (`bounded`), time as calendar dates, the throttles' arithmetic (`backoff`), URLs, form
//! bodies, OAuth scope strings, languages, colour contrast, a certificate's validity (over
//! x509-cert), the password-hashing threads, the TLS client set-up.

pub mod backoff;
pub mod bounded;
pub mod civil;
pub mod contrast;
/// Public for the fuzz target (`fuzz/fuzz_targets/der.rs`).
pub mod der;
pub mod lang;
pub mod password_workers;
pub mod random;
pub mod scope;
pub mod secret;
pub mod tls_client;
pub mod url;
pub mod urlencoded;
