//! The HTML the customer sees in the Alexa or Google app's web view: small, mobile-first, no
//! JavaScript and no external assets, so it works in any web view and under a strict CSP. Every
//! page speaks the customer's language (`i18n`) and carries the operator's branding (`layout`).

mod account;
pub mod account_text;
mod consent;
mod error;
pub mod i18n;
mod layout;
mod login;
mod set_password;
mod totp;
pub mod totp_text;

pub use crate::base::contrast;
pub use crate::base::lang::Lang;
pub use account::{account, account_sign_in, AccountView};
pub use consent::consent;
pub use error::error;
pub use layout::{Frame, DEFAULT_ACCENT};
pub use login::login;
pub use set_password::set_password;
pub use totp::{
    account_section as totp_account_section, totp_code, totp_enrol, totp_flow_enrol,
    totp_flow_recovery, totp_recovery, Enrolment,
};
