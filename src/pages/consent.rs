//! The Accept / Reject page, shown after a successful sign-in.

use super::layout::page;
use crate::oauth::authorize::Form;
use maud::{html, Markup};

pub fn consent(title: &str, action: &str, form: &Form, username: &str) -> Markup {
    page(
        title,
        "Link your account?",
        html! {
            p { strong { (form.client_name) } " wants to access your account " strong { (username) } "." }
            @if !form.scope.is_empty() {
                p class="muted" { "Requested access: " span class="scope" { (form.scope) } }
            }
            p class="muted" { "You can unlink at any time from the app." }
            form method="post" action=(action) {
                input type="hidden" name="request" value=(form.request);
                input type="hidden" name="csrf" value=(form.csrf.expose());
                button type="submit" name="decision" value="allow" { "Allow" }
                button type="submit" name="decision" value="deny" class="secondary" { "Deny" }
            }
        },
    )
}
