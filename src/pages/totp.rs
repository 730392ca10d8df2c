//! Two-factor sign-in pages: the code page of the authorization flow (after a correct password),
//! and on `/account` the section that turns it on or off, the enrolment page (QR code, key, a
//! code to confirm) and the recovery codes shown once.

use super::layout::{page, Frame};
use super::totp_text::totp_text;
use crate::oauth::authorize::{Form, LoginFailure};
use maud::{html, Markup, PreEscaped};

/// The code page of the authorization flow.
pub fn totp_code(
    frame: Frame<'_>,
    action: &str,
    form: &Form,
    failure: Option<LoginFailure>,
) -> Markup {
    let t = totp_text(frame.lang);
    let text = frame.text();
    let invalid = (failure == Some(LoginFailure::WrongCredentials)).then_some("true");
    let described_by = failure.map(|_| "code-error");
    page(
        frame,
        t.heading,
        html! {
            p { (t.code_intro) }
            @if let Some(failure) = failure {
                div class="error" role="alert" id="code-error" {
                    @match failure {
                        LoginFailure::WrongCredentials => (t.wrong_code),
                        LoginFailure::Locked(wait) if wait <= 60 => (text.locked_one_minute),
                        LoginFailure::Locked(wait) => (super::layout::fill(text.locked_minutes, &[("n", html! { (wait.div_ceil(60)) })])),
                        LoginFailure::Busy => (text.busy),
                        LoginFailure::Unavailable => (text.login_unavailable),
                    }
                }
            }
            form method="post" action=(action) {
                input type="hidden" name="request" value=(form.request);
                input type="hidden" name="csrf" value=(form.csrf.expose());
                label for="code" { (t.code_label) }
                input type="text" id="code" name="code" autocomplete="one-time-code"
                    inputmode="numeric" autocapitalize="none" autocorrect="off" spellcheck="false"
                    maxlength="24" required aria-invalid=[invalid] aria-describedby=[described_by];
                button type="submit" { (t.continue_button) }
            }
        },
    )
}

/// The `/account` section: on (a form to turn it off with a code) or off (a button to start).
pub fn account_section(
    frame: Frame<'_>,
    base: &str,
    csrf: &str,
    on: bool,
    problem: Option<Markup>,
) -> Markup {
    let t = totp_text(frame.lang);
    let invalid = problem.is_some().then_some("true");
    html! {
        h2 { (t.heading) }
        @if on {
            p { (t.is_on) }
            @if let Some(problem) = problem {
                div class="error" role="alert" id="totp-error" { (problem) }
            }
            form method="post" action=(format!("{base}/totp-off")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="totp-off-code" { (t.turn_off_label) }
                input type="text" id="totp-off-code" name="code" autocomplete="one-time-code"
                    autocapitalize="none" autocorrect="off" spellcheck="false" maxlength="24" required
                    aria-invalid=[invalid] aria-describedby=[invalid.map(|_| "totp-error")];
                button type="submit" class="secondary" { (t.turn_off) }
            }
        } @else {
            p class="muted" { (t.is_off) }
            form method="post" action=(format!("{base}/totp-start")) {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { (t.turn_on) }
            }
        }
    }
}

/// What the enrolment page shows.
pub struct Enrolment<'a> {
    pub base: &'a str,
    pub csrf: &'a str,
    /// The secret, base32.
    pub key: &'a str,
    /// The `otpauth://` URI's QR code, SVG (made by `accounts::totp::qr_svg`, no user input).
    pub qr_svg: &'a str,
    pub wrong_code: bool,
}

pub fn totp_enrol(frame: Frame<'_>, view: &Enrolment<'_>) -> Markup {
    let t = totp_text(frame.lang);
    let invalid = view.wrong_code.then_some("true");
    page(
        frame,
        t.heading,
        html! {
            p { (t.enrol_intro) }
            div class="qr" role="img" aria-label=(t.heading) { (PreEscaped(view.qr_svg)) }
            p { (t.key_label) ": " code id="totp-key" { (grouped(view.key)) } }
            @if view.wrong_code {
                div class="error" role="alert" id="enrol-error" { (t.wrong_code) }
            }
            form method="post" action=(format!("{}/totp-on", view.base)) {
                input type="hidden" name="csrf" value=(view.csrf);
                input type="hidden" name="key" value=(view.key);
                label for="code" { (t.confirm_label) }
                input type="text" id="code" name="code" autocomplete="one-time-code"
                    inputmode="numeric" autocapitalize="none" autocorrect="off" spellcheck="false"
                    maxlength="12" required aria-invalid=[invalid]
                    aria-describedby=[invalid.map(|_| "enrol-error")];
                button type="submit" { (t.turn_on) }
            }
            p { a href=(view.base) { (t.back) } }
        },
    )
}

/// The recovery codes, shown once after two-factor sign-in was turned on.
pub fn totp_recovery(frame: Frame<'_>, base: &str, codes: &[String]) -> Markup {
    let t = totp_text(frame.lang);
    page(
        frame,
        t.recovery_heading,
        html! {
            p role="status" { (t.recovery_intro) }
            ul class="recovery" {
                @for code in codes { li { code { (code) } } }
            }
            p { a href=(base) { (t.back) } }
        },
    )
}

/// The key in groups of four, as authenticator apps show keys.
fn grouped(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Enrolment in the authorization flow (`[accounts] require_totp`).
pub fn totp_flow_enrol(
    frame: Frame<'_>,
    action: &str,
    form: &Form,
    key: &str,
    qr_svg: &str,
    wrong_code: bool,
) -> Markup {
    let t = totp_text(frame.lang);
    let invalid = wrong_code.then_some("true");
    page(
        frame,
        t.heading,
        html! {
            p { (t.required_intro) }
            p { (t.enrol_intro) }
            div class="qr" role="img" aria-label=(t.heading) { (PreEscaped(qr_svg)) }
            p { (t.key_label) ": " code id="totp-key" { (grouped(key)) } }
            @if wrong_code {
                div class="error" role="alert" id="enrol-error" { (t.wrong_code) }
            }
            form method="post" action=(action) {
                input type="hidden" name="request" value=(form.request);
                input type="hidden" name="csrf" value=(form.csrf.expose());
                label for="code" { (t.confirm_label) }
                input type="text" id="code" name="code" autocomplete="one-time-code"
                    inputmode="numeric" autocapitalize="none" autocorrect="off" spellcheck="false"
                    maxlength="12" required aria-invalid=[invalid]
                    aria-describedby=[invalid.map(|_| "enrol-error")];
                button type="submit" { (t.turn_on) }
            }
        },
    )
}

/// The recovery codes after enrolment in the authorization flow, then on to consent.
pub fn totp_flow_recovery(frame: Frame<'_>, action: &str, form: &Form, codes: &[String]) -> Markup {
    let t = totp_text(frame.lang);
    page(
        frame,
        t.recovery_heading,
        html! {
            p role="status" { (t.recovery_intro) }
            ul class="recovery" {
                @for code in codes { li { code { (code) } } }
            }
            form method="post" action=(action) {
                input type="hidden" name="request" value=(form.request);
                input type="hidden" name="csrf" value=(form.csrf.expose());
                button type="submit" { (t.continue_button) }
            }
        },
    )
}
