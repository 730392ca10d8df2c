//! The languages linkgate speaks, and how one is picked for a request: `[ui] language` in the
//! config wins, then Google's `user_locale` hint from `/authorize`, then the browser's
//! `Accept-Language`, then English. A leaf module (it imports nothing from the crate) so that
//! `config` can name a language without depending on the pages; the translations themselves
//! live in `pages::i18n`.

/// A language the pages are translated into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
    Fr,
    Es,
    It,
    Ja,
    PtBr,
    Hi,
}

impl Lang {
    /// Every language, in the order `*` in `Accept-Language` falls back through.
    pub const ALL: [Lang; 8] = [
        Lang::En,
        Lang::De,
        Lang::Fr,
        Lang::Es,
        Lang::It,
        Lang::Ja,
        Lang::PtBr,
        Lang::Hi,
    ];

    /// The BCP 47 tag, as used in `<html lang>` and `Content-Language`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
            Lang::Es => "es",
            Lang::It => "it",
            Lang::Ja => "ja",
            Lang::PtBr => "pt-BR",
            Lang::Hi => "hi",
        }
    }

    /// The language a BCP 47 tag (or a POSIX-style locale such as Google's `de_DE`) falls back
    /// to: the primary subtag decides (de-AT → de, fr-CA → fr, pt-PT → pt-BR, en-IN → en).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim();
        if tag.is_empty() || tag.len() > 35 {
            return None;
        }
        let mut subtags = tag.split(['-', '_']);
        let primary = subtags.next()?;
        if subtags
            .any(|s| s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return None;
        }
        Some(match primary.to_ascii_lowercase().as_str() {
            "en" => Lang::En,
            "de" => Lang::De,
            "fr" => Lang::Fr,
            "es" => Lang::Es,
            "it" => Lang::It,
            "ja" => Lang::Ja,
            "pt" => Lang::PtBr,
            "hi" => Lang::Hi,
            _ => return None,
        })
    }
}

/// The language for one page: the operator's fixed choice, else Google's `user_locale` hint,
/// else the browser's `Accept-Language`, else English.
pub fn choose(configured: Option<Lang>, hint: Option<&str>, accept_language: Option<&str>) -> Lang {
    configured
        .or_else(|| hint.and_then(Lang::from_tag))
        .or_else(|| accept_language.and_then(from_accept_language))
        .unwrap_or(Lang::En)
}

/// At most this many entries of an `Accept-Language` header are looked at; browsers send a
/// handful, and a hostile header must not cost more than a glance.
const MAX_RANGES: usize = 32;

/// The best supported language of an `Accept-Language` header (RFC 9110 §12.5.4), or `None` when
/// it names none of them. Ranges are tried by descending q-value, ties in the order written;
/// `q=0` means "not this one"; `*` means any language not refused. Malformed entries are skipped.
pub fn from_accept_language(header: &str) -> Option<Lang> {
    // (q in thousandths, language or None for `*`), in the order written.
    let mut ranges: Vec<(u16, Option<Lang>)> = Vec::new();
    let mut refused: Vec<Lang> = Vec::new();
    for entry in header.split(',').take(MAX_RANGES) {
        let mut parts = entry.split(';');
        let range = parts.next().unwrap_or("").trim();
        let mut q = Some(1000);
        for param in parts {
            let param = param.trim();
            match param.split_once('=') {
                Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => {
                    q = parse_qvalue(value.trim())
                }
                _ => {}
            }
        }
        let Some(q) = q else { continue };
        let lang = if range == "*" {
            None
        } else {
            match Lang::from_tag(range) {
                Some(lang)
                    if range
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                {
                    Some(lang)
                }
                _ => continue,
            }
        };
        match (q, lang) {
            (0, Some(lang)) => refused.push(lang),
            (0, None) => {}
            (q, lang) => ranges.push((q, lang)),
        }
    }
    // Stable: equal q-values keep the order the browser wrote them in.
    ranges.sort_by_key(|&(q, _)| std::cmp::Reverse(q));
    ranges.into_iter().find_map(|(_, lang)| match lang {
        Some(lang) => Some(lang),
        None => Lang::ALL.into_iter().find(|l| !refused.contains(l)),
    })
}

/// RFC 9110 §12.4.2: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in
/// thousandths.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(header: &str) -> Option<Lang> {
        from_accept_language(header)
    }

    #[test]
    fn the_first_supported_language_wins() {
        assert_eq!(pick("de"), Some(Lang::De));
        assert_eq!(pick("zh-CN, ja;q=0.9, en;q=0.8"), Some(Lang::Ja));
        assert_eq!(pick("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7"), Some(Lang::Fr));
        assert_eq!(pick("hi-IN, en-IN;q=0.5"), Some(Lang::Hi));
    }

    #[test]
    fn q_values_order_the_choice_not_the_position() {
        assert_eq!(pick("en;q=0.3, it;q=0.9, de;q=0.5"), Some(Lang::It));
        assert_eq!(pick("es;q=0.8, fr"), Some(Lang::Fr));
        // Equal q-values: the order written.
        assert_eq!(pick("de;q=0.5, fr;q=0.5"), Some(Lang::De));
        assert_eq!(pick("de;q=0.500, fr;q=0.501"), Some(Lang::Fr));
        assert_eq!(pick("de;Q=1.0, fr"), Some(Lang::De));
    }

    #[test]
    fn regions_fall_back_to_the_language() {
        assert_eq!(pick("de-AT"), Some(Lang::De));
        assert_eq!(pick("de-CH"), Some(Lang::De));
        assert_eq!(pick("pt"), Some(Lang::PtBr));
        assert_eq!(pick("pt-PT"), Some(Lang::PtBr));
        assert_eq!(pick("pt-BR"), Some(Lang::PtBr));
        assert_eq!(pick("es-MX"), Some(Lang::Es));
        assert_eq!(pick("es-419"), Some(Lang::Es));
        assert_eq!(pick("fr-CA"), Some(Lang::Fr));
        assert_eq!(pick("en-IN"), Some(Lang::En));
        assert_eq!(pick("ja-JP"), Some(Lang::Ja));
        assert_eq!(pick("hi-IN"), Some(Lang::Hi));
        assert_eq!(pick("zh-Hant-TW, DE-de"), Some(Lang::De));
    }

    #[test]
    fn unknown_and_refused_languages() {
        assert_eq!(pick("zh-CN, ko"), None);
        assert_eq!(choose(None, None, Some("zh-CN, ko")), Lang::En);
        assert_eq!(pick("de;q=0, fr;q=0.1"), Some(Lang::Fr));
        assert_eq!(pick("de;q=0"), None);
        assert_eq!(pick("*"), Some(Lang::En));
        assert_eq!(pick("zh, *;q=0.5"), Some(Lang::En));
        assert_eq!(pick("en;q=0, *"), Some(Lang::De));
        assert_eq!(pick("ko, *;q=0.1, it;q=0.2"), Some(Lang::It));
    }

    #[test]
    fn the_hint_and_the_config_come_first() {
        assert_eq!(choose(None, Some("de_DE"), Some("fr")), Lang::De);
        assert_eq!(choose(None, Some("pt_BR"), None), Lang::PtBr);
        assert_eq!(choose(None, Some("xx_YY"), Some("fr")), Lang::Fr);
        assert_eq!(choose(None, Some(""), Some("ja")), Lang::Ja);
        assert_eq!(choose(Some(Lang::It), Some("de_DE"), Some("fr")), Lang::It);
        assert_eq!(choose(None, None, None), Lang::En);
    }

    #[test]
    fn hostile_headers_are_survived() {
        for header in [
            "",
            ",,,,",
            ";;;q=",
            "de;q=",
            "de;q=1.5",
            "de;q=-1",
            "de;q=0.0001",
            "de;q=abc",
            "de;q=1.001",
            "q=1",
            "*;q=0",
            "de-",
            "-de",
            "de--AT",
            "de-ÄT",
            "dé",
            "ja\u{0}",
            "en;q=0.5;q=0.9",
            "\u{feff}de",
            "de-toolongsubtag",
        ] {
            let _ = pick(header);
        }
        assert_eq!(pick("de;q=1.5, fr;q=0.1"), Some(Lang::Fr));
        assert_eq!(pick("de-, fr"), Some(Lang::Fr));
        assert_eq!(pick("de-toolongsubtag, it"), Some(Lang::It));
        let huge = "x-klingon;q=0.9, ".repeat(10_000) + "de";
        assert_eq!(pick(&huge), None, "only the first entries are read");
        let long_entry = "a".repeat(100_000);
        assert_eq!(pick(&format!("{long_entry}, es")), Some(Lang::Es));
        let garbage: String = (0..5000u32)
            .filter_map(|i| char::from_u32(i * 37 % 0x3000))
            .collect();
        let _ = pick(&garbage);
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("0."), Some(0));
        assert_eq!(parse_qvalue("1.1"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(parse_qvalue(""), None);
        assert_eq!(parse_qvalue(".5"), None);
        assert_eq!(parse_qvalue("0.+5"), None);
    }
}
