//! The sign-in page. The error says only "wrong username or password", never which one.

use super::layout::{fill, page, Frame};
use crate::oauth::authorize::{Form, LoginFailure};
use maud::{html, Markup};

pub fn login(frame: Frame<'_>, action: &str, form: &Form, failure: Option<LoginFailure>) -> Markup {
    let t = frame.text();
    // Only wrong credentials make the fields themselves invalid; a lock or a busy server does not.
    let invalid = (failure == Some(LoginFailure::WrongCredentials)).then_some("true");
    let described_by = failure.map(|_| "login-error");
    page(
        frame,
        t.sign_in_heading,
        html! {
            p { (fill(t.sign_in_intro, &[("client", html! { strong { (form.client_name) } })])) }
            @if let Some(failure) = failure {
                div class="error" role="alert" id="login-error" {
                    @match failure {
                        LoginFailure::WrongCredentials => (t.wrong_credentials),
                        LoginFailure::Locked(wait) => (locked(t, wait)),
                        LoginFailure::Busy => (t.busy),
                        LoginFailure::Unavailable => (t.login_unavailable),
                    }
                }
            }
            form method="post" action=(action) {
                input type="hidden" name="request" value=(form.request);
                input type="hidden" name="csrf" value=(form.csrf.expose());
                label for="username" { (if frame.ui.username_is_email { t.email } else { t.username }) }
                input type="text" id="username" name="username" autocomplete="username"
                    autocapitalize="none" autocorrect="off" spellcheck="false" required
                    value=(form.username.as_deref().unwrap_or(""))
                    aria-invalid=[invalid] aria-describedby=[described_by];
                label for="password" { (t.password) }
                input type="password" id="password" name="password" autocomplete="current-password" required
                    aria-invalid=[invalid] aria-describedby=[described_by];
                button type="submit" { (t.sign_in_button) }
            }
        },
    )
}

fn locked(t: &super::i18n::Text, secs: u64) -> Markup {
    match secs.div_ceil(60) {
        0 | 1 => html! { (t.locked_one_minute) },
        n => fill(t.locked_minutes, &[("n", html! { (n) })]),
    }
}
