//! Two-factor sign-in (issue 15): RFC 6238 time-based one-time passwords (HMAC-SHA-1, 6 digits,
//! 30-second steps, one step of clock drift either way), the base32 secret and `otpauth://` URI an
//! authenticator app reads, its QR code as inline SVG, and single-use recovery codes. Pure
//! functions with `now` passed in; the store keeps the per-user state (`store::users::Totp`),
//! `second_factor.rs` applies these rules to it, and the HTTP layer only parses and renders.

use crate::base::secret;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step (RFC 6238 `X`).
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// How many recovery codes a person gets when they turn two-factor sign-in on.
pub const RECOVERY_CODES: usize = 10;
/// Length of the secret in bytes: 160 bits, as RFC 4226 recommends for HMAC-SHA-1.
pub const SECRET_BYTES: usize = 20;

/// HMAC-SHA-1 (RFC 2104, the `hmac` crate) of `message` under `key`.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    // HMAC takes a key of any length (a long one is hashed first): this cannot fail.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The HOTP value (RFC 4226 section 5.3) for `counter`, reduced to `digits` digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    let mac = hmac_sha1(key, &counter.to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    binary % 10u32.pow(digits)
}

/// The time step `now` falls in.
pub fn step_at(now: u64) -> u64 {
    now / STEP_SECS
}

/// The 6-digit code for step `step`, zero-padded as an authenticator shows it.
pub fn code_at_step(key: &[u8], step: u64) -> String {
    format!("{:06}", hotp(key, step, DIGITS))
}

/// Checks a code the person typed (spaces allowed, as apps group digits "123 456") against the
/// steps `now - 30 s ..= now + 30 s`. A step at or before `last_used` is refused, so each code is
/// usable once and an older code cannot follow a newer one. Returns the step that matched; the
/// caller stores it as the new `last_used` in the same read-modify-write.
pub fn verify(key: &[u8], typed: &str, now: u64, last_used: Option<u64>) -> Option<u64> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now);
    let mut matched = None;
    // Every candidate is computed and compared, so timing says nothing about which step matched.
    for step in [current.saturating_sub(1), current, current + 1] {
        let ok = secret::ct_eq(code_at_step(key, step).as_bytes(), digits.as_bytes());
        let fresh = match last_used {
            Some(last) => step > last,
            None => true,
        };
        if ok && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without `=` padding (what authenticator apps expect).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes RFC 4648 base32 (upper case, no padding), `None` if it is not.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in text.bytes() {
        let value = BASE32.iter().position(|&b| b == byte)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// A new random secret (160 bits from the operating system).
pub fn new_secret() -> [u8; SECRET_BYTES] {
    secret::random_bytes::<SECRET_BYTES>()
}

/// The `otpauth://` URI (Key Uri Format) an authenticator app reads from the QR code. `issuer`
/// and `account` are percent-encoded.
pub fn otpauth_uri(issuer: &str, account: &str, key: &[u8]) -> String {
    let issuer = percent(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent(account),
        base32_encode(key)
    )
}

fn percent(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The QR code of `data` as an SVG document fragment (black modules on white, with the quiet
/// zone), `None` if the data is too long for a QR code.
pub fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let width = code.width();
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{px}" height="{px}" shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/><path fill="#000" d="{path}"/></svg>"##,
        px = size * 5
    ))
}

/// Ten new recovery codes: each 16 base32 characters (80 random bits) shown in four groups of
/// four, `abcd-efgh-ijkl-mnop`. Returns the codes to show once and the SHA-256 keys to store.
pub fn new_recovery_codes() -> (Vec<String>, Vec<[u8; 32]>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = base32_encode(&secret::random_bytes::<10>()).to_lowercase();
            let shown = format!(
                "{}-{}-{}-{}",
                &raw[..4],
                &raw[4..8],
                &raw[8..12],
                &raw[12..]
            );
            let key = recovery_key(&shown).unwrap_or([0; 32]);
            (shown, key)
        })
        .unzip()
}

/// The stored key of a recovery code as typed (case, spaces and dashes ignored), `None` if it
/// cannot be one (not 16 base32 characters).
pub fn recovery_key(typed: &str) -> Option<[u8; 32]> {
    let normal: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    if normal.len() != 16 || !normal.bytes().all(|b| BASE32.contains(&b)) {
        return None;
    }
    Some(secret::sha256(normal.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (key "12345678901234567890"), truncated to 6 digits.
    #[test]
    fn codes_match_rfc_6238_appendix_b() {
        let key = b"12345678901234567890";
        let vectors = [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ];
        for (time, eight) in vectors {
            assert_eq!(
                format!("{:08}", hotp(key, step_at(time), 8)),
                eight,
                "T={time}"
            );
            assert_eq!(code_at_step(key, step_at(time)), eight[2..], "T={time}");
        }
    }

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        let key = b"12345678901234567890";
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, value) in expected.iter().enumerate() {
            assert_eq!(hotp(key, counter as u64, 6), *value);
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_way_and_only_once() {
        let key = b"12345678901234567890";
        let now = 1_111_111_111;
        let step = step_at(now);
        for candidate in [step - 1, step, step + 1] {
            let code = code_at_step(key, candidate);
            assert_eq!(verify(key, &code, now, None), Some(candidate));
            assert_eq!(verify(key, &code, now, Some(candidate)), None, "reuse");
        }
        assert_eq!(verify(key, &code_at_step(key, step - 2), now, None), None);
        assert_eq!(verify(key, &code_at_step(key, step + 2), now, None), None);
        // An older code cannot follow a newer one.
        assert_eq!(
            verify(key, &code_at_step(key, step - 1), now, Some(step)),
            None
        );
        let spaced = code_at_step(key, step);
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert_eq!(verify(key, &spaced, now, None), Some(step));
        for bad in ["", "12345", "1234567", "abcdef", "１２３４５６"] {
            assert_eq!(verify(key, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn base32_matches_rfc_4648() {
        for (input, output) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(input.as_bytes()), output);
            assert_eq!(base32_decode(output).unwrap(), input.as_bytes());
        }
        assert_eq!(base32_encode(&new_secret()).len(), 32);
    }

    #[test]
    fn the_uri_names_issuer_account_and_secret() {
        let uri = otpauth_uri("Smart Home", "alice@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Smart%20Home:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Smart%20Home&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_checked_loosely() {
        let (shown, keys) = new_recovery_codes();
        assert_eq!(shown.len(), RECOVERY_CODES);
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (code, key) in shown.iter().zip(&keys) {
            assert_eq!(code.len(), 19);
            assert_eq!(recovery_key(code), Some(*key));
            assert_eq!(
                recovery_key(&code.to_uppercase().replace('-', " ")),
                Some(*key)
            );
        }
        assert_eq!(recovery_key("abcd-efgh-ijkl-mno"), None);
        assert_eq!(recovery_key("abcd-efgh-ijkl-mn01"), None);
    }
}
