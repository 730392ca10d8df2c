//! The page behind a one-time password link: choose a password (twice), then a confirmation;
//! or why the link cannot be used. No JavaScript; the rules are shown before they are enforced.

use super::account_text::{account_text, AccountText};
use super::layout::{fill, page, Frame};
use crate::accounts::links::{FormProblem, Step};
use crate::accounts::password_rules::{PasswordProblem, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use maud::{html, Markup};

pub fn set_password(frame: Frame<'_>, action: &str, step: &Step) -> Markup {
    let t = account_text(frame.lang);
    match step {
        Step::Form {
            token,
            csrf,
            username,
            problem,
        } => form(
            frame,
            t,
            action,
            token.expose(),
            csrf.expose(),
            username,
            *problem,
        ),
        Step::Done { username } => page(
            frame,
            t.password_set_heading,
            html! { p role="status" { (fill(t.password_set, &[("user", html! { strong { (username) } })])) } },
        ),
        Step::Dead => page(frame, t.link_dead_heading, html! { p { (t.link_dead) } }),
        Step::Stale => problem_page(frame, t, t.form_stale),
        Step::Busy => problem_page(frame, t, t.busy),
        Step::Unavailable => problem_page(frame, t, t.unavailable),
    }
}

fn problem_page(frame: Frame<'_>, t: &AccountText, message: &str) -> Markup {
    page(
        frame,
        t.problem_heading,
        html! { div class="error" role="alert" { (message) } },
    )
}

fn form(
    frame: Frame<'_>,
    t: &AccountText,
    action: &str,
    token: &str,
    csrf: &str,
    username: &str,
    problem: Option<FormProblem>,
) -> Markup {
    let invalid = problem.map(|_| "true");
    let described_by = match problem {
        Some(_) => "password-error password-rule",
        None => "password-rule",
    };
    let n = |n: usize| html! { (n) };
    page(
        frame,
        t.set_password_heading,
        html! {
            p { (fill(t.set_password_intro, &[("user", html! { strong { (username) } })])) }
            @if let Some(problem) = problem {
                div class="error" role="alert" id="password-error" {
                    @match problem {
                        FormProblem::Rule(PasswordProblem::Empty) => (t.password_empty),
                        FormProblem::Rule(PasswordProblem::TooShort) =>
                            (fill(t.password_too_short, &[("n", n(MIN_PASSWORD_LEN))])),
                        FormProblem::Rule(PasswordProblem::TooLong) =>
                            (fill(t.password_too_long, &[("n", n(MAX_PASSWORD_LEN))])),
                        FormProblem::Mismatch => (t.passwords_differ),
                    }
                }
            }
            form method="post" action=(action) {
                input type="hidden" name="token" value=(token);
                input type="hidden" name="csrf" value=(csrf);
                // For password managers: which account the new password belongs to.
                label for="username" { (t.username) }
                input type="text" id="username" name="username" autocomplete="username"
                    value=(username) readonly;
                label for="password" { (t.new_password) }
                input type="password" id="password" name="password" autocomplete="new-password"
                    minlength=(MIN_PASSWORD_LEN) maxlength=(MAX_PASSWORD_LEN) required
                    aria-invalid=[invalid] aria-describedby=(described_by);
                p class="muted" id="password-rule" { (fill(t.password_rule, &[("n", n(MIN_PASSWORD_LEN))])) }
                label for="repeat" { (t.repeat_password) }
                input type="password" id="repeat" name="repeat" autocomplete="new-password"
                    minlength=(MIN_PASSWORD_LEN) maxlength=(MAX_PASSWORD_LEN) required
                    aria-invalid=[invalid];
                button type="submit" { (t.save_password) }
            }
        },
    )
}
