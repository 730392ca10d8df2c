//! Just enough DER (X.690) to read a certificate's end of validity and whether it signed itself;
//! rustls checks the chain but does not show these.

pub struct Certificate<'a> {
    /// The encoded names, compared byte for byte.
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// Unix seconds.
    pub not_after: u64,
    /// Unix seconds (for the ACME renewal schedule: a third of the lifetime).
    pub not_before: u64,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

impl<'a> Certificate<'a> {
    /// RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version,
    /// serialNumber, signature, issuer, validity, subject, … }, … }
    pub fn parse(der: &'a [u8]) -> Option<Certificate<'a>> {
        let (_, certificate, _, _) = expect(der, SEQUENCE)?;
        let (_, tbs, _, _) = expect(certificate, SEQUENCE)?;
        let mut rest = tbs;
        if rest.first() == Some(&VERSION) {
            rest = next(rest)?.3;
        }
        let rest = expect(rest, INTEGER)?.3;
        let rest = expect(rest, SEQUENCE)?.3;
        let (_, _, issuer, rest) = expect(rest, SEQUENCE)?;
        let (_, validity, _, rest) = expect(rest, SEQUENCE)?;
        let (_, _, subject, _) = expect(rest, SEQUENCE)?;
        let (before_tag, not_before, _, after_not_before) = next(validity)?;
        let (tag, not_after, _, _) = next(after_not_before)?;
        Some(Certificate {
            issuer,
            subject,
            not_after: time(tag, not_after)?,
            not_before: time(before_tag, not_before)?,
        })
    }
}

/// (tag, content, the whole element, what follows).
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn next(input: &[u8]) -> Option<Element<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        let length = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    let content = input.get(header..end)?;
    Some((tag, content, &input[..end], &input[end..]))
}

fn expect(input: &[u8], tag: u8) -> Option<Element<'_>> {
    next(input).filter(|element| element.0 == tag)
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5).
fn time(tag: u8, bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        UTC_TIME => {
            let yy = number(text.get(0..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, text.get(2..)?)
        }
        GENERALIZED_TIME => (number(text.get(0..4)?)?, text.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 {
        return None;
    }
    // `.get()`: the text is UTF-8 but not necessarily ASCII, so a byte index may fall inside a
    // character (a certificate is whatever a server sends).
    let field = |at: usize| number(rest.get(at..at + 2)?);
    let (month, day) = (field(0)?, field(2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let seconds = crate::base::civil::days_from_date(year, month, day) * 86400
        + field(4)? * 3600
        + field(6)? * 60
        + field(8)?;
    u64::try_from(seconds).ok()
}

fn number(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_both_time_forms() {
        assert_eq!(super::time(super::UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(
            super::time(super::GENERALIZED_TIME, b"20261118110640Z"),
            Some(1_795_000_000)
        );
        assert_eq!(super::time(super::UTC_TIME, b"7001010000Z"), None);
        assert_eq!(super::time(super::UTC_TIME, b"70130100000+Z"), None);
    }

    #[test]
    fn non_ascii_validity_bytes_are_refused_without_a_panic() {
        // "é" is two bytes: every two-byte field boundary of the rest falls inside it.
        // Each is 10 bytes after the year, so only the field slicing sees the split character.
        assert_eq!(
            super::time(super::UTC_TIME, "261é1231235Z".as_bytes()),
            None
        );
        assert_eq!(
            super::time(super::UTC_TIME, "26011é31235Z".as_bytes()),
            None
        );
        assert_eq!(
            super::time(super::GENERALIZED_TIME, "20261é1231235Z".as_bytes()),
            None
        );
        assert_eq!(super::time(super::UTC_TIME, "€€€€Z".as_bytes()), None);
    }

    #[test]
    fn truncated_input_is_refused() {
        assert!(super::Certificate::parse(&[]).is_none());
        assert!(super::Certificate::parse(&[0x30, 0x82, 0xff]).is_none());
        assert!(super::Certificate::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
