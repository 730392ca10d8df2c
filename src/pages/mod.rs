//! The HTML the customer sees in the Alexa or Google app's web view: small, mobile-first, no
//! JavaScript and no external assets, so it works in any web view and under a strict CSP.

mod consent;
mod error;
mod layout;
mod login;

pub use consent::consent;
pub use error::error;
pub use login::login;
