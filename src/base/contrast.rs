//! Colour contrast as WCAG 2 defines it, so that every colour on the pages — ours and the
//! operator's `ui.accent_color` — is checked to be readable (AA: 4.5:1 for text), by a unit test
//! for ours and at start-up for the operator's.

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// WCAG 2 AA minimum contrast for normal-size text.
pub const MIN_TEXT_CONTRAST: f64 = 4.5;

pub const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);

impl Rgb {
    /// Parses `#rrggbb` (either case).
    pub fn parse(s: &str) -> Option<Rgb> {
        let hex = s.strip_prefix('#')?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some(Rgb(byte(0)?, byte(2)?, byte(4)?))
    }

    /// `#rrggbb`, lower case.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// WCAG 2 relative luminance, 0 (black) to 1 (white).
    pub fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.0) + 0.7152 * channel(self.1) + 0.0722 * channel(self.2)
    }
}

/// The WCAG 2 contrast ratio of two colours, 1 to 21.
pub fn ratio(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (light, dark) = if la > lb { (la, lb) } else { (lb, la) };
    (light + 0.05) / (dark + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ratios() {
        assert!((ratio(WHITE, Rgb(0, 0, 0)) - 21.0).abs() < 1e-9);
        assert!((ratio(WHITE, WHITE) - 1.0).abs() < 1e-9);
        // #767676 on white is the classic just-passing grey (4.54:1).
        let grey = ratio(WHITE, Rgb::parse("#767676").unwrap());
        assert!(grey > 4.5 && grey < 4.6, "{grey}");
    }

    #[test]
    fn parses_only_hex_triplets() {
        assert_eq!(Rgb::parse("#1A5fb4"), Some(Rgb(0x1a, 0x5f, 0xb4)));
        assert_eq!(Rgb(0x1a, 0x5f, 0xb4).hex(), "#1a5fb4");
        for bad in [
            "1a5fb4", "#1a5fb", "#1a5fb44", "#1a5fbg", "#fff", "", "#", "#ééé",
        ] {
            assert_eq!(Rgb::parse(bad), None, "{bad}");
        }
    }
}
