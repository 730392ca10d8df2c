//! A JSON string exactly as serde_json writes it, for the answers written straight into a
//! buffer (`token_body.rs`, `resource_body.rs`): a string that needs no escape (no `"`, `\` or
//! control character; tokens and ids never do) is copied as it is, any other goes through
//! serde_json.

/// A JSON string as serde_json writes it.
pub(super) fn string(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Whether any byte is one serde_json escapes: `"`, `\` or below 0x20. Eight bytes at a time
/// (the word tests of "Bit Twiddling Hacks": exact for "any byte", which is all that is asked).
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * n as u64) & !w & HIGH != 0;
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let w = u64::from_le_bytes(bytes);
        if below(w, 0x20) || zero(w ^ (ONES * b'"' as u64)) || zero(w ^ (ONES * b'\\' as u64)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_escape_finds_every_escaped_byte_at_every_position() {
        for len in 0..20 {
            for at in 0..len {
                for b in 0u8..=255 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&s), expected, "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape("lgat_AbC-_09é日本\u{7f}".as_bytes()));
    }
}
