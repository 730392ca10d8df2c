//! The `[ui]` table: how the customer-facing pages look and speak (title, language, accent
//! colour, logo, support line), checked so that a typo, an unreadable colour or a logo that
//! could run scripts is caught at start-up rather than seen by customers.

use super::schema::{default_title, RawUi};
use super::values::relative;
use crate::base::contrast::{self, Rgb};
use crate::base::lang::Lang;
use std::path::Path;

/// How the customer-facing pages look and speak.
#[derive(Debug, Clone)]
pub struct Ui {
    pub title: String,
    /// Always this language, whatever the browser asks for.
    pub language: Option<Lang>,
    /// `#rrggbb`, lower case; readable under white text.
    pub accent_color: Option<String>,
    /// The SVG markup to inline, from `<svg` on; checked for scripts at start-up.
    pub logo: Option<String>,
    /// A contact line under the forms ("Help: help@example.com").
    pub support: Option<String>,
    /// The sign-in field asks for an email address, not a username: the login API's
    /// `username_field` is an email field (e.g. `email`), so the label says so.
    pub username_is_email: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            title: default_title(),
            language: None,
            accent_color: None,
            logo: None,
            support: None,
            username_is_email: false,
        }
    }
}

/// The largest logo accepted: it is inlined into every page.
pub const MAX_LOGO_BYTES: u64 = 64 * 1024;
/// The longest support line accepted.
pub const MAX_SUPPORT_CHARS: usize = 300;

/// The `[ui]` table: branding the operator chose, checked so that a typo or an unreadable colour
/// is caught at start-up rather than seen by customers.
pub(super) fn check_ui(raw: RawUi, dir: &Path, problem: &mut impl FnMut(&str, String)) -> Ui {
    let language = raw.language.and_then(|name| {
        let lang = Lang::from_tag(&name);
        if lang.is_none() {
            let known: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
            problem(
                "ui.language",
                format!(
                    "`{name}` is not a supported language; use one of {}",
                    known.join(", ")
                ),
            );
        }
        lang
    });
    let accent_color = raw
        .accent_color
        .and_then(|colour| match check_accent(&colour) {
            Ok(rgb) => Some(rgb.hex()),
            Err(why) => {
                problem("ui.accent_color", why);
                None
            }
        });
    let logo = raw.logo.and_then(|path| {
        let path = relative(dir, &path);
        match read_logo(&path) {
            Ok(svg) => Some(svg),
            Err(why) => {
                problem("ui.logo", format!("{}: {why}", path.display()));
                None
            }
        }
    });
    let support = raw.support.map(|s| s.trim().to_string());
    if let Some(line) = &support {
        if line.chars().count() > MAX_SUPPORT_CHARS {
            problem(
                "ui.support",
                format!("is longer than {MAX_SUPPORT_CHARS} characters; keep it to one line"),
            );
        } else if line.chars().any(char::is_control) {
            problem(
                "ui.support",
                "must be one line without control characters".into(),
            );
        }
    }
    Ui {
        title: raw.title,
        language,
        accent_color,
        logo,
        support: support.filter(|s| !s.is_empty()),
        username_is_email: false,
    }
}

/// `#rrggbb`, dark enough that the white button text on it keeps WCAG AA contrast (4.5:1).
fn check_accent(colour: &str) -> Result<Rgb, String> {
    let rgb = Rgb::parse(colour).ok_or_else(|| {
        format!("`{colour}` is not a colour written as \"#rrggbb\" (e.g. \"#1a5fb4\")")
    })?;
    let ratio = contrast::ratio(rgb, contrast::WHITE);
    if ratio < contrast::MIN_TEXT_CONTRAST {
        // Rounded down, so a colour just short of the limit never reads as "4.50:1".
        let shown = (ratio * 100.0).floor() / 100.0;
        return Err(format!(
            "`{colour}` is too light: white button text on it has a contrast of {shown:.2}:1, \
             and WCAG AA needs at least 4.5:1; pick a darker colour"
        ));
    }
    Ok(rgb)
}

/// Reads the logo and returns the markup to inline. The file is the operator's, but it goes into
/// every page, so anything that could run (scripts, event handlers, `javascript:` links) is
/// refused rather than trusted to the CSP alone.
fn read_logo(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_LOGO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_LOGO_BYTES {
        return Err(format!(
            "is larger than 64 KiB ({MAX_LOGO_BYTES} bytes); it is inlined into every page, so use a smaller (or optimised) SVG"
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| "is not an SVG file (it is not UTF-8 text)".to_string())?;
    inline_svg(&text)
}

/// The `<svg>…</svg>` element of an SVG file, without the XML prolog, comments or doctype before
/// it (they mean nothing inside HTML), or why it cannot be inlined.
fn inline_svg(text: &str) -> Result<String, String> {
    let not_svg = "is not an SVG file (it must start with an <svg> element)";
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` are valid in `text`.
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<svg").ok_or(not_svg)?;
    let after = lower.as_bytes().get(start + 4).copied().unwrap_or(b' ');
    if !(after.is_ascii_whitespace() || after == b'>' || after == b'/') {
        return Err(not_svg.into());
    }
    // Before the root element only a prolog, comments, a doctype and whitespace may come.
    let mut before = lower[..start].trim_start_matches('\u{feff}').trim();
    while !before.is_empty() {
        let end = if before.starts_with("<!--") {
            before.find("-->").map(|i| i + 3)
        } else if before.starts_with("<?") || before.starts_with("<!doctype") {
            before.find('>').map(|i| i + 1)
        } else {
            None
        };
        before = before[end.ok_or(not_svg)?..].trim_start();
    }
    let svg = text[start..].trim_end();
    let rest = lower[start..].trim_end();
    let self_closing = rest.ends_with("/>") && !rest[1..].contains('<');
    if !(rest.ends_with("</svg>") || self_closing) {
        return Err(format!("{not_svg}; it does not end with </svg>"));
    }
    if lower.contains("<script") {
        return Err("contains a <script> element; a logo must not carry scripts".into());
    }
    if let Some(handler) = event_handler(&lower) {
        return Err(format!(
            "has an event-handler attribute (`{handler}=`); a logo must not carry scripts"
        ));
    }
    if lower.contains("javascript:") {
        return Err("contains a `javascript:` link; a logo must not carry scripts".into());
    }
    Ok(svg.to_string())
}

/// The first `on…=` attribute (`onload=`, `onclick =`) in lower-cased markup.
fn event_handler(lower: &str) -> Option<&str> {
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(found) = lower[from..].find("on") {
        let at = from + found;
        from = at + 2;
        let boundary = at == 0
            || matches!(
                bytes[at - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'/'
            );
        let letters = bytes[at + 2..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let name_end = at + 2 + letters;
        let equals = bytes[name_end..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'=');
        if boundary && letters > 0 && equals {
            return Some(&lower[at..name_end]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{check, check_in, GOOD};

    const LOGO: &str = r#"<?xml version="1.0"?>
<!-- made by hand -->
<!DOCTYPE svg>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/></svg>
"#;

    #[test]
    fn ui_branding_is_read_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("logo.svg"), LOGO).unwrap();
        let text = format!(
            "{GOOD}[ui]\ntitle = \"Taxi\"\nlanguage = \"pt-BR\"\naccent_color = \"#0B6E4F\"\nlogo = \"logo.svg\"\nsupport = \"  Help: help@example.com \"\n"
        );
        let ui = check_in(&text, dir.path()).unwrap().ui;
        assert_eq!(ui.title, "Taxi");
        assert_eq!(ui.language, Some(Lang::PtBr));
        assert_eq!(ui.accent_color.as_deref(), Some("#0b6e4f"));
        let logo = ui.logo.unwrap();
        assert!(
            logo.starts_with("<svg xmlns") && logo.ends_with("</svg>"),
            "{logo}"
        );
        assert_eq!(ui.support.as_deref(), Some("Help: help@example.com"));
        let defaults = check(GOOD).unwrap().ui;
        assert!(defaults.language.is_none() && defaults.logo.is_none());
    }

    #[test]
    fn ui_problems_name_the_key() {
        let ui = |line: &str| check(&format!("{GOOD}[ui]\n{line}\n")).unwrap_err();
        let err = ui("language = \"klingon\"");
        assert!(
            err.contains("key `ui.language`") && err.contains("pt-BR"),
            "{err}"
        );
        let err = ui("accent_color = \"#ffcc00\"");
        assert!(err.contains("key `ui.accent_color`"), "{err}");
        assert!(err.contains("4.5:1") && err.contains("1.5"), "{err}");
        let err = ui("accent_color = \"blue\"");
        assert!(
            err.contains("key `ui.accent_color`") && err.contains("#rrggbb"),
            "{err}"
        );
        // #777777 is 4.48:1 against white: just short, and must not read as "4.50".
        let err = ui("accent_color = \"#777777\"");
        assert!(err.contains("4.47:1") || err.contains("4.48:1"), "{err}");
        assert!(check(&format!("{GOOD}[ui]\naccent_color = \"#767676\"\n")).is_ok());
        let err = ui("support = \"line one\\nline two\"");
        assert!(err.contains("key `ui.support`"), "{err}");
        let err = ui("colour = \"#000000\"");
        assert!(err.contains("colour"), "{err}");
        let err = ui("logo = \"missing.svg\"");
        assert!(
            err.contains("key `ui.logo`") && err.contains("/etc/linkgate/missing.svg"),
            "{err}"
        );
    }

    #[test]
    fn logo_rules() {
        let dir = tempfile::tempdir().unwrap();
        let try_logo = |content: &[u8]| {
            std::fs::write(dir.path().join("logo.svg"), content).unwrap();
            check_in(&format!("{GOOD}[ui]\nlogo = \"logo.svg\"\n"), dir.path())
                .map(|c| c.ui.logo.unwrap())
        };
        assert!(try_logo(LOGO.as_bytes()).is_ok());
        assert!(try_logo(b"<svg/>").is_ok());
        let big = format!("<svg>{}</svg>", " ".repeat(64 * 1024));
        let err = try_logo(big.as_bytes()).unwrap_err();
        assert!(
            err.contains("key `ui.logo`") && err.contains("64 KiB"),
            "{err}"
        );
        for (content, expect) in [
            (&b"\x89PNG\r\n\x1a\n\0\0"[..], "not UTF-8"),
            (b"<html><svg></svg></html>", "not an SVG"),
            (b"hello", "not an SVG"),
            (b"<svgx></svgx>", "not an SVG"),
            (b"<svg><circle/>", "</svg>"),
            (b"<svg><SCRIPT>alert(1)</SCRIPT></svg>", "<script>"),
            (b"<svg onload=\"alert(1)\"></svg>", "onload="),
            (
                b"<svg><a xlink:href=\"#\" onClick = \"x()\">a</a></svg>",
                "onclick=",
            ),
            (
                b"<svg><a href=\"JavaScript:alert(1)\">a</a></svg>",
                "javascript:",
            ),
        ] {
            let err = try_logo(content).unwrap_err();
            assert!(
                err.contains("key `ui.logo`") && err.contains(expect),
                "{expect}: {err}"
            );
        }
        // Words that merely contain "on" are fine.
        assert!(try_logo(b"<svg><text font=\"x\">one done on time</text></svg>").is_ok());
    }
}
