//! The Allow / Deny page, shown after a successful sign-in. Allow comes first: it is the
//! expected answer, and keyboard and screen-reader users meet it first.

use super::layout::{fill, page, Frame};
use crate::oauth::authorize::Form;
use maud::{html, Markup};

pub fn consent(frame: Frame<'_>, action: &str, form: &Form, username: &str) -> Markup {
    let t = frame.text();
    page(
        frame,
        t.consent_heading,
        html! {
            p {
                (fill(t.consent_intro, &[
                    ("client", html! { strong { (form.client_name) } }),
                    ("user", html! { strong { (username) } }),
                ]))
            }
            @if !form.scope.is_empty() {
                p class="muted" { (t.requested_access) " " span class="scope" { (form.scope) } }
            }
            p class="muted" { (t.unlink_anytime) }
            form method="post" action=(action) {
                input type="hidden" name="request" value=(form.request);
                input type="hidden" name="csrf" value=(form.csrf.expose());
                button type="submit" name="decision" value="allow" { (t.allow) }
                button type="submit" name="decision" value="deny" class="secondary" { (t.deny) }
            }
        },
    )
}
