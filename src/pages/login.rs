//! The sign-in page. The error says only "wrong username or password", never which one.

use super::layout::page;
use crate::oauth::authorize::{Form, LoginFailure};
use maud::{html, Markup};

pub fn login(title: &str, action: &str, form: &Form, failure: Option<LoginFailure>) -> Markup {
    page(
        title,
        "Sign in",
        html! {
            p { "to link your account with " strong { (form.client_name) } "." }
            @match failure {
                Some(LoginFailure::WrongCredentials) => {
                    div class="error" role="alert" id="login-error" { "Wrong username or password. Please try again." }
                }
                Some(LoginFailure::Locked(wait)) => {
                    div class="error" role="alert" id="login-error" {
                        "Too many failed sign-ins. Please try again in " (minutes(wait)) "."
                    }
                }
                Some(LoginFailure::Busy) => {
                    div class="error" role="alert" id="login-error" { "Too many sign-ins right now. Please wait a moment and try again." }
                }
                None => {}
            }
            form method="post" action=(action) {
                input type="hidden" name="request" value=(form.request);
                input type="hidden" name="csrf" value=(form.csrf.expose());
                label for="username" { "Username" }
                input type="text" id="username" name="username" autocomplete="username"
                    autocapitalize="none" autocorrect="off" spellcheck="false" required
                    value=(form.username.as_deref().unwrap_or(""))
                    aria-describedby=[failure.map(|_| "login-error")];
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn minutes(secs: u64) -> String {
    match secs.div_ceil(60) {
        1 => "a minute".to_string(),
        n => format!("{n} minutes"),
    }
}
