//! `application/x-www-form-urlencoded` (WHATWG URL §5), used for query strings, form bodies,
//! client credentials inside HTTP Basic (RFC 6749 §2.3.1) and the redirects back to clients.
//! Written here rather than pulled in so that its failure modes are ours: repeated parameters and
//! bytes that are not UTF-8 are errors the caller can turn into `invalid_request`.

use std::fmt::Write;
use std::ops::Range;

/// Decoded parameters in their original order. Names may repeat; `single` refuses that.
/// Every decoded name and value is kept in one string, so a parse costs two allocations however
/// many parameters there are (and a moment's one for each that has escapes).
#[derive(Debug, Default, Clone)]
pub struct Params {
    text: String,
    pairs: Vec<Pair>,
}

/// Where one parameter's name and value are in `Params::text`.
#[derive(Debug, Clone)]
struct Pair {
    name: Range<usize>,
    value: Range<usize>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParamError {
    /// The input (after percent-decoding) is not UTF-8.
    NotUtf8,
    /// A parameter that may appear once appeared more often (RFC 6749 §3.1, §3.2).
    Repeated(String),
}

impl Params {
    /// Parses `a=1&b=2`. Empty pairs (`a=1&&b=2`) are skipped; a name without `=` has value "".
    pub fn parse(input: &[u8]) -> Result<Params, ParamError> {
        let mut text = String::with_capacity(input.len());
        let mut pairs = Vec::with_capacity(4);
        for part in input.split(|&b| b == b'&') {
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            let name = decode_into(&mut text, name)?;
            let value = decode_into(&mut text, value)?;
            pairs.push(Pair { name, value });
        }
        Ok(Params { text, pairs })
    }

    /// The value of a parameter that must not repeat. A parameter sent with an empty value is
    /// treated as absent (RFC 6749 §3.1).
    pub fn single(&self, name: &str) -> Result<Option<&str>, ParamError> {
        let mut found = None;
        for pair in &self.pairs {
            if &self.text[pair.name.clone()] == name {
                if found.is_some() {
                    return Err(ParamError::Repeated(name.to_string()));
                }
                found = Some(&self.text[pair.value.clone()]);
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }
}

/// Appends one decoded name or value to `out` and says where it is; it must be UTF-8 by itself
/// (so every range falls on character boundaries).
fn decode_into(out: &mut String, input: &[u8]) -> Result<Range<usize>, ParamError> {
    let start = out.len();
    let unescaped;
    let decoded = match needs_decoding(input) {
        true => {
            let mut bytes = Vec::with_capacity(input.len());
            unescape(&mut bytes, input);
            unescaped = bytes;
            &unescaped[..]
        }
        false => input,
    };
    out.push_str(std::str::from_utf8(decoded).map_err(|_| ParamError::NotUtf8)?);
    Ok(start..out.len())
}

/// Percent-decodes one name or value; `+` is a space. A `%` not followed by two hex digits is kept
/// as it is, as browsers do.
pub fn decode(input: &[u8]) -> Result<String, ParamError> {
    let mut out = String::with_capacity(input.len());
    decode_into(&mut out, input)?;
    Ok(out)
}

/// `decode` of a value already owned: returned as it is (not copied) when there is nothing to
/// decode, as client ids and secrets seldom have.
pub fn decode_owned(value: String) -> Result<String, ParamError> {
    match needs_decoding(value.as_bytes()) {
        true => decode(value.as_bytes()),
        false => Ok(value),
    }
}

/// Whether `input` has a `+` or a `%`: most names and values (tokens, ids, grant types) have not.
fn needs_decoding(input: &[u8]) -> bool {
    input.iter().any(|&b| b == b'+' || b == b'%')
}

/// Appends `input` percent-decoded, byte by byte.
fn unescape(out: &mut Vec<u8>, input: &[u8]) {
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).and_then(|&h| hex(h)),
                input.get(i + 2).and_then(|&l| hex(l)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encodes a value for a query string or form body. Only unreserved characters
/// (RFC 3986 §2.3) stay as they are, so the client decodes exactly the bytes we encoded.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Appends parameters to a URI that may already carry a query (RFC 6749 §3.1.2: the registered
/// query component must be kept).
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::from(uri);
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        out.push(sep);
        out.push_str(name);
        out.push('=');
        out.push_str(&encode(value));
        sep = '&';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        let p = Params::parse(b"a=x+y%2Bz&b=%E2%9C%93&c").unwrap();
        assert_eq!(p.single("a").unwrap(), Some("x y+z"));
        assert_eq!(p.single("b").unwrap(), Some("\u{2713}"));
        assert_eq!(p.single("c").unwrap(), None);
    }

    #[test]
    fn refuses_repeats_and_non_utf8() {
        let p = Params::parse(b"a=1&a=2").unwrap();
        assert_eq!(p.single("a"), Err(ParamError::Repeated("a".into())));
        assert!(Params::parse(b"a=%FF").is_err());
        assert!(Params::parse(b"a=\xff").is_err());
    }

    #[test]
    fn the_shortcut_decodes_as_the_byte_by_byte_way() {
        let alphabet = b"ab+%2F0-_.~\xff\xc3\xa9 =&";
        let mut state = 0x2545_f491_u32;
        for len in 0..40 {
            for _ in 0..200 {
                let input: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        alphabet[state as usize % alphabet.len()]
                    })
                    .collect();
                let mut escaped = Vec::new();
                unescape(&mut escaped, &input);
                let byte_by_byte = String::from_utf8(escaped).map_err(|_| ParamError::NotUtf8);
                assert_eq!(decode(&input), byte_by_byte, "{input:?}");
                // The parse is each piece decoded on its own.
                let pieces: Result<Vec<(String, String)>, ParamError> = input
                    .split(|&b| b == b'&')
                    .filter(|part| !part.is_empty())
                    .map(|part| match part.iter().position(|&b| b == b'=') {
                        Some(i) => Ok((decode(&part[..i])?, decode(&part[i + 1..])?)),
                        None => Ok((decode(part)?, String::new())),
                    })
                    .collect();
                match (Params::parse(&input), pieces) {
                    (Ok(params), Ok(pieces)) => {
                        let parsed: Vec<(&str, &str)> = params
                            .pairs
                            .iter()
                            .map(|p| (&params.text[p.name.clone()], &params.text[p.value.clone()]))
                            .collect();
                        let expected: Vec<(&str, &str)> = pieces
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str()))
                            .collect();
                        assert_eq!(parsed, expected, "{input:?}");
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "{input:?}"),
                    (a, b) => panic!("{input:?}: {a:?} vs {b:?}"),
                }
            }
        }
        assert_eq!(decode(b"caf\xc3\xa9"), Ok("café".to_string()));
        assert_eq!(decode(b"\xff"), Err(ParamError::NotUtf8));
    }

    #[test]
    fn a_character_split_between_name_and_value_is_refused() {
        // Together the two halves are "é"; each alone is not UTF-8.
        assert_eq!(Params::parse(b"%C3=%A9").unwrap_err(), ParamError::NotUtf8);
        assert_eq!(
            Params::parse(b"a=%C3&%A9").unwrap_err(),
            ParamError::NotUtf8
        );
    }

    #[test]
    fn keeps_malformed_percent() {
        assert_eq!(decode(b"100%").unwrap(), "100%");
        assert_eq!(decode(b"%zz%4").unwrap(), "%zz%4");
    }

    #[test]
    fn encode_round_trips() {
        let s = "a b+c/d=e&f\u{e9}~";
        assert_eq!(decode(encode(s).as_bytes()).unwrap(), s);
        assert_eq!(
            append_query("https://x/cb?k=v", &[("s", "a b")]),
            "https://x/cb?k=v&s=a%20b"
        );
    }
}
