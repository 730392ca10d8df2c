//! The frame every page shares: language, viewport for phones, inline CSS, the operator's
//! branding (title, accent colour, logo, support line).
//!
//! Accessibility is built in here rather than hoped for: every colour pair below is checked for
//! WCAG AA contrast by a unit test, text wraps instead of scrolling sideways at 320 px and 200 %
//! zoom, and focus is always visible.

use super::i18n::Text;
use crate::base::lang::Lang;
use crate::config::Ui;
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// What a page needs to know about its surroundings.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    pub ui: &'a Ui,
    pub lang: Lang,
}

impl Frame<'_> {
    pub fn text(&self) -> &'static Text {
        self.lang.text()
    }
}

/// The buttons' colour unless `ui.accent_color` sets another.
pub const DEFAULT_ACCENT: &str = "#1a5fb4";

// Every colour pair that meets here is checked by `tests::every_colour_pair_is_readable`.
const CSS: &str = r#"
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans JP","Noto Sans Devanagari",sans-serif;background:#f4f5f7;color:#1c1e21;line-height:1.5;overflow-wrap:break-word;overflow-wrap:anywhere}
main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem}
.card{background:#ffffff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.logo svg{display:block;height:3rem;width:auto;max-width:100%;margin-bottom:.75rem}
h1{font-size:1.4rem;line-height:1.3;margin:0 0 .25rem}
p{margin:.5rem 0 1rem}
.muted{color:#4b4f56;font-size:.95rem}
.brand{margin:0 0 .25rem}
.support{margin:1.25rem 0 0;padding-top:1rem;border-top:1px solid #d8dadf}
label{display:block;font-weight:600;margin:1rem 0 .35rem}
input[type=text],input[type=password]{display:block;width:100%;max-width:100%;font:inherit;font-size:1.05rem;padding:.75rem;border:1px solid #767676;border-radius:8px;background:#ffffff;color:#1c1e21}
input[aria-invalid=true]{border:2px solid #8a1c10}
input:focus,button:focus{outline:3px solid var(--accent);outline-offset:2px}
button{display:block;width:100%;font:inherit;font-size:1.05rem;padding:.8rem;margin-top:1.25rem;border-radius:8px;border:2px solid var(--accent);background:var(--accent);color:#ffffff;font-weight:600;cursor:pointer;white-space:normal}
button.secondary{background:#ffffff;color:var(--accent);margin-top:.75rem}
.error{background:#fdecea;color:#8a1c10;border:1px solid #8a1c10;border-radius:8px;padding:.75rem;margin:1rem 0}
.scope{font-family:ui-monospace,monospace;font-size:.9rem}
h2{font-size:1.15rem;margin:1.5rem 0 .25rem}
.apps{list-style:none;padding:0;margin:0}
.apps li{border-top:1px solid #d8dadf;padding:.75rem 0}
.apps dl{display:grid;grid-template-columns:auto 1fr;gap:0 .75rem;margin:.25rem 0;font-size:.95rem}
.apps dd{margin:0}
.check{display:flex;gap:.5rem;align-items:flex-start;margin-top:1rem}
.check input{width:1.25rem;height:1.25rem;margin:.2rem 0 0;flex:none}
.check label{font-weight:400;margin:0}
.notice{background:#e6f4ea;color:#1c1e21;border:1px solid #1e6b34;border-radius:8px;padding:.75rem}
@media (max-width:20rem){main{padding:.5rem}.card{padding:1rem;border-radius:8px}}
"#;

pub fn page(frame: Frame<'_>, heading: &str, body: Markup) -> Markup {
    let ui = frame.ui;
    let accent = ui.accent_color.as_deref().unwrap_or(DEFAULT_ACCENT);
    html! {
        (DOCTYPE)
        html lang=(frame.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (heading) " · " (ui.title) }
                style { (PreEscaped(CSS)) ":root{--accent:" (accent) "}" }
            }
            body {
                main {
                    div class="card" {
                        @if let Some(logo) = &ui.logo {
                            // Decorative: the title next to it says the same for screen readers.
                            div class="logo" aria-hidden="true" { (PreEscaped(logo)) }
                        }
                        p class="muted brand" { (ui.title) }
                        h1 { (heading) }
                        (body)
                        @if let Some(support) = &ui.support {
                            p class="muted support" { (support) }
                        }
                    }
                }
            }
        }
    }
}

/// Renders `template` (escaped), putting `slots` where `{name}` marks them. Lets a translation
/// move a value (a client name in bold, a number) to wherever its grammar wants it.
pub fn fill(template: &str, slots: &[(&str, Markup)]) -> Markup {
    let mut out = String::with_capacity(template.len());
    let escaped = |s: &str| html! { (s) }.into_string();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(len) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + len];
        match slots.iter().find(|(slot, _)| *slot == name) {
            Some((_, markup)) => {
                out.push_str(&escaped(&rest[..open]));
                out.push_str(&markup.0);
            }
            None => out.push_str(&escaped(&rest[..open + len + 1])),
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(&escaped(rest));
    PreEscaped(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::contrast::{ratio, Rgb, MIN_TEXT_CONTRAST};

    // The palette of `CSS`.
    const TEXT: &str = "#1c1e21";
    const MUTED: &str = "#4b4f56";
    const PAGE_BG: &str = "#f4f5f7";
    const CARD_BG: &str = "#ffffff";
    const BORDER: &str = "#767676";
    const ERROR_TEXT: &str = "#8a1c10";
    const ERROR_BG: &str = "#fdecea";

    fn rgb(s: &str) -> Rgb {
        Rgb::parse(s).unwrap()
    }

    #[test]
    fn every_colour_pair_is_readable() {
        for colour in [TEXT, MUTED, PAGE_BG, CARD_BG, BORDER, ERROR_TEXT, ERROR_BG] {
            assert!(CSS.contains(colour), "{colour} is not in the CSS");
        }
        // Text on its backgrounds (WCAG 1.4.3, 4.5:1).
        for (fg, bg) in [
            (TEXT, CARD_BG),
            (TEXT, PAGE_BG),
            (MUTED, CARD_BG),
            (MUTED, PAGE_BG),
            (ERROR_TEXT, ERROR_BG),
            (CARD_BG, DEFAULT_ACCENT), // button text
            (DEFAULT_ACCENT, CARD_BG), // secondary button text
        ] {
            let r = ratio(rgb(fg), rgb(bg));
            assert!(r >= MIN_TEXT_CONTRAST, "{fg} on {bg}: {r:.2}:1");
        }
        // Borders and focus rings (WCAG 1.4.11, 3:1).
        for (fg, bg) in [
            (BORDER, CARD_BG),
            (DEFAULT_ACCENT, CARD_BG),
            (DEFAULT_ACCENT, PAGE_BG),
            (ERROR_TEXT, CARD_BG),
        ] {
            let r = ratio(rgb(fg), rgb(bg));
            assert!(r >= 3.0, "{fg} against {bg}: {r:.2}:1");
        }
    }

    #[test]
    fn fill_escapes_the_template_and_places_the_slots() {
        let bold = html! { strong { "<Taxi>" } };
        let out = fill("{client} & {user}: {other}", &[("client", bold)]).into_string();
        assert_eq!(out, "<strong>&lt;Taxi&gt;</strong> &amp; {user}: {other}");
        assert_eq!(fill("no slots", &[]).into_string(), "no slots");
        assert_eq!(fill("open { only", &[]).into_string(), "open { only");
        assert_eq!(
            fill("{n}分後", &[("n", html! { (3) })]).into_string(),
            "3分後"
        );
    }
}
