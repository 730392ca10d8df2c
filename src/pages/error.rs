//! The page for a request we cannot send back to the client (unknown client, unregistered
//! redirect URI, an expired form): the customer reads what happened instead of being redirected.

use super::i18n::Text;
use super::layout::{fill, page, Frame};
use crate::oauth::authorize::ErrorPage;
use maud::{html, Markup};

/// The page for `error`; a refused request's shows its `reference`, which the operator finds
/// in the log and in `--linking-log`.
pub fn error(frame: Frame<'_>, error: ErrorPage, reference: Option<&str>) -> Markup {
    let t = frame.text();
    page(
        frame,
        t.error_heading,
        html! {
            div class="error" role="alert" { (message(t, error)) }
            p class="muted" { (t.error_advice) }
            @if let Some(reference) = reference {
                p class="muted reference" {
                    (fill(t.error_reference, &[("reference", html! { code { (reference) } })]))
                }
            }
        },
    )
}

/// What went wrong, in the page's language.
pub fn message(t: &Text, error: ErrorPage) -> Markup {
    let plain = |s: &str| html! { (s) };
    let param =
        |template: &str, name: &str| fill(template, &[("param", html! { code { (name) } })]);
    match error {
        ErrorPage::LinkNotUtf8 => plain(t.link_not_utf8),
        ErrorPage::LinkRepeated(name) => param(t.link_repeated, name),
        ErrorPage::LinkMissing(name) => param(t.link_missing, name),
        ErrorPage::UnknownClient => plain(t.unknown_client),
        ErrorPage::UnregisteredRedirectUri => plain(t.unregistered_redirect_uri),
        ErrorPage::FormNotUtf8 => plain(t.form_not_utf8),
        ErrorPage::FormIncomplete => plain(t.form_incomplete),
        ErrorPage::FormExpired => plain(t.form_expired),
        ErrorPage::ClientGone => plain(t.client_gone),
        ErrorPage::SignInUnavailable => plain(t.sign_in_unavailable),
        ErrorPage::LinkingUnavailable => plain(t.linking_unavailable),
        ErrorPage::SignInAgain => plain(t.sign_in_again),
    }
}
