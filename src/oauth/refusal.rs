//! A refusal of an OAuth endpoint, logged with its reason and reference (`linking_log`) before
//! it is answered: the one step between the rules and the error response.

use super::linking_log::Step;
use super::OAuthError;
use crate::oauth::server::Server;

/// Logs `error` as a refusal at `step` of the client `claimed` (as the request named it), and
/// returns it with its reference. Faults on our side (5xx) are not refusals: they are logged as
/// errors where they happen and returned as they are.
pub fn refusal(app: &Server, step: Step, claimed: Option<&str>, error: OAuthError) -> OAuthError {
    if error.status() >= 500 || error.reference().is_some() {
        return error;
    }
    let known = claimed.is_some_and(|id| app.config.client(id).is_some());
    let reference = app
        .linking
        .refused(step, claimed, known, error.code(), &error.reason());
    error.referenced(reference.as_str())
}
