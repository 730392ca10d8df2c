//! `/account`: the sign-in form, then the person's own page: their linked apps (unlink one),
//! a password change, sign out. Plain forms, no JavaScript.

use super::account_text::{account_text, AccountText};
use super::layout::{fill, page, Frame};
use crate::accounts::password_rules::{PasswordProblem, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::accounts::session::{Activity, LinkedApp, Notice, PasswordFormProblem, SignInFailure};
use crate::base::civil::format_time;
use crate::store::EventKind;
use maud::{html, Markup};

/// The sign-in form of `/account`.
pub fn account_sign_in(
    frame: Frame<'_>,
    action: &str,
    csrf: &str,
    username: &str,
    failure: Option<SignInFailure>,
) -> Markup {
    let t = account_text(frame.lang);
    let invalid = (failure == Some(SignInFailure::WrongCredentials)).then_some("true");
    let described_by = failure.map(|_| "sign-in-error");
    page(
        frame,
        t.account_heading,
        html! {
            p { (t.account_intro) }
            @if let Some(failure) = failure {
                div class="error" role="alert" id="sign-in-error" { (sign_in_failure(t, failure)) }
            }
            form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                label for="username" { (if frame.ui.username_is_email { frame.text().email } else { t.username }) }
                input type="text" id="username" name="username" autocomplete="username"
                    autocapitalize="none" autocorrect="off" spellcheck="false" required
                    value=(username) aria-invalid=[invalid] aria-describedby=[described_by];
                label for="password" { (frame.text().password) }
                input type="password" id="password" name="password" autocomplete="current-password"
                    required aria-invalid=[invalid] aria-describedby=[described_by];
                label for="code" { (super::totp_text::totp_text(frame.lang).sign_in_code_label) }
                input type="text" id="code" name="code" autocomplete="one-time-code"
                    inputmode="numeric" autocapitalize="none" autocorrect="off" spellcheck="false"
                    maxlength="24" aria-invalid=[invalid] aria-describedby=[described_by];
                button type="submit" { (t.sign_in_button) }
            }
        },
    )
}

fn sign_in_failure(t: &AccountText, failure: SignInFailure) -> Markup {
    match failure {
        SignInFailure::WrongCredentials => html! { (t.wrong_credentials) },
        SignInFailure::Locked(secs) => {
            fill(t.locked, &[("n", html! { (secs.div_ceil(60).max(1)) })])
        }
        SignInFailure::Busy => html! { (t.busy) },
        SignInFailure::Unavailable => html! { (t.unavailable) },
    }
}

/// What the signed-in page shows.
pub struct AccountView<'a> {
    /// `public_path` + `/account`: forms post to `{base}/unlink` and so on.
    pub base: &'a str,
    pub username: &'a str,
    pub csrf: &'a str,
    pub apps: &'a [LinkedApp],
    pub notice: Option<Notice>,
    pub password_problem: Option<PasswordFormProblem>,
    /// Newest first.
    pub activity: &'a [Activity],
    /// Whether two-factor sign-in is on.
    pub totp_on: bool,
    /// Why the code to turn it off was refused.
    pub totp_problem: Option<SignInFailure>,
    /// A customer of the login API: their password and two-factor sign-in live in the
    /// operator's system (and linkgate keeps no activity for them).
    pub managed_elsewhere: bool,
}

pub fn account(frame: Frame<'_>, view: &AccountView<'_>) -> Markup {
    let t = account_text(frame.lang);
    let base = view.base;
    page(
        frame,
        t.account_heading,
        html! {
            p { (fill(t.signed_in_as, &[("user", html! { strong { (view.username) } })])) }
            @if let Some(notice) = view.notice {
                p role="status" class="notice" {
                    @match notice {
                        Notice::Unlinked => (t.unlinked_notice),
                        Notice::AlreadyUnlinked => (t.already_unlinked_notice),
                        Notice::PasswordChanged => (t.password_changed_notice),
                        Notice::TotpOff => (super::totp_text::totp_text(frame.lang).turned_off_notice),
                    }
                }
            }
            h2 { (t.linked_apps_heading) }
            @if view.apps.is_empty() {
                p class="muted" { (t.no_linked_apps) }
            }
            ul class="apps" {
                @for (i, app) in view.apps.iter().enumerate() {
                    li {
                        strong id=(format!("app-{i}")) { (app.client_name) }
                        dl {
                            dt { (t.linked_since) } dd { (format_time(app.linked_since)) }
                            dt { (t.last_refresh) }
                            dd { (app.last_refresh.map_or(t.not_yet.to_string(), format_time)) }
                        }
                        form method="post" action=(format!("{base}/unlink")) {
                            input type="hidden" name="csrf" value=(view.csrf);
                            input type="hidden" name="grant" value=(app.grant_id);
                            button type="submit" class="secondary" aria-describedby=(format!("app-{i}")) { (t.unlink) }
                        }
                    }
                }
            }
            @if view.managed_elsewhere {
                p class="muted" { (t.managed_elsewhere) }
            } @else {
                (local_sections(frame, view))
            }
            form method="post" action=(format!("{base}/sign-out")) {
                input type="hidden" name="csrf" value=(view.csrf);
                button type="submit" class="secondary" { (t.sign_out) }
            }
        },
    )
}

/// Two-factor sign-in, the password form and recent activity: a local user's.
fn local_sections(frame: Frame<'_>, view: &AccountView<'_>) -> Markup {
    let t = account_text(frame.lang);
    let base = view.base;
    html! {
        (super::totp::account_section(frame, base, view.csrf, view.totp_on, view.totp_problem.map(|p| match p {
            SignInFailure::WrongCredentials => html! { (super::totp_text::totp_text(frame.lang).wrong_code) },
            other => sign_in_failure(t, other),
        })))
        h2 { (t.change_password_heading) }
        (password_form(t, base, view.csrf, view.password_problem))
        h2 { (t.recent_activity) }
        @if view.activity.is_empty() {
            p class="muted" { (t.no_activity) }
        }
        ul class="apps activity" {
            @for event in view.activity {
                li {
                    strong { (event_name(t, event.kind, frame.lang)) }
                    @if !event.detail.is_empty() { " · " (detail(t, &event.detail)) }
                    br;
                    span class="muted" {
                        (format_time(event.at))
                        @if let Some(ip) = &event.ip { " · " (ip) }
                    }
                }
            }
        }
    }
}

fn password_form(
    t: &AccountText,
    base: &str,
    csrf: &str,
    problem: Option<PasswordFormProblem>,
) -> Markup {
    let current_invalid =
        matches!(problem, Some(PasswordFormProblem::Current(_))).then_some("true");
    let new_invalid = matches!(
        problem,
        Some(PasswordFormProblem::Rule(_) | PasswordFormProblem::Mismatch)
    )
    .then_some("true");
    let n = |n: usize| html! { (n) };
    html! {
        @if let Some(problem) = problem {
            div class="error" role="alert" id="password-error" {
                @match problem {
                    PasswordFormProblem::Current(SignInFailure::WrongCredentials) => (t.wrong_current_password),
                    PasswordFormProblem::Current(failure) => (sign_in_failure(t, failure)),
                    PasswordFormProblem::Rule(PasswordProblem::Empty) => (t.password_empty),
                    PasswordFormProblem::Rule(PasswordProblem::TooShort) =>
                        (fill(t.password_too_short, &[("n", n(MIN_PASSWORD_LEN))])),
                    PasswordFormProblem::Rule(PasswordProblem::TooLong) =>
                        (fill(t.password_too_long, &[("n", n(MAX_PASSWORD_LEN))])),
                    PasswordFormProblem::Mismatch => (t.passwords_differ),
                }
            }
        }
        form method="post" action=(format!("{base}/password")) {
            input type="hidden" name="csrf" value=(csrf);
            label for="current" { (t.current_password) }
            input type="password" id="current" name="current" autocomplete="current-password"
                required aria-invalid=[current_invalid]
                aria-describedby=[current_invalid.map(|_| "password-error")];
            label for="password" { (t.new_password) }
            input type="password" id="password" name="password" autocomplete="new-password"
                minlength=(MIN_PASSWORD_LEN) maxlength=(MAX_PASSWORD_LEN) required
                aria-invalid=[new_invalid]
                aria-describedby=(if new_invalid.is_some() { "password-error password-rule" } else { "password-rule" });
            p class="muted" id="password-rule" { (fill(t.password_rule, &[("n", n(MIN_PASSWORD_LEN))])) }
            label for="repeat" { (t.repeat_password) }
            input type="password" id="repeat" name="repeat" autocomplete="new-password"
                minlength=(MIN_PASSWORD_LEN) maxlength=(MAX_PASSWORD_LEN) required
                aria-invalid=[new_invalid];
            div class="check" {
                input type="checkbox" id="end_links" name="end_links" value="yes";
                label for="end_links" { (t.end_links) }
            }
            button type="submit" { (t.change_password_heading) }
        }
    }
}

fn event_name(t: &AccountText, kind: EventKind, lang: crate::base::lang::Lang) -> &'static str {
    let two = super::totp_text::totp_text(lang);
    match kind {
        EventKind::TotpOn => two.ev_on,
        EventKind::TotpOff => two.ev_off,
        EventKind::SignIn => t.ev_sign_in,
        EventKind::SignInFailed => t.ev_sign_in_failed,
        EventKind::Link => t.ev_link,
        EventKind::Unlink => t.ev_unlink,
        EventKind::PasswordChanged => t.ev_password_changed,
        EventKind::Admin => t.ev_admin,
    }
}

/// A recorded detail in the page's language where it is ours; client names and admin commands
/// as they are.
fn detail<'a>(t: &'a AccountText, detail: &'a str) -> &'a str {
    use crate::accounts::events::*;
    match detail {
        DETAIL_ACCOUNT => t.detail_account,
        DETAIL_ACCOUNT_APPS_OUT => t.detail_account_apps_out,
        DETAIL_INVITATION => t.detail_invitation,
        DETAIL_RESET => t.detail_reset,
        other => other,
    }
}
