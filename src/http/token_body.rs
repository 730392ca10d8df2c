//! The body of a `/token` answer (RFC 6749 §5.1), written straight into one buffer: it is on
//! every refresh, and its two tokens are most of it. The bytes are exactly what serde_json makes
//! of `{access_token, token_type, expires_in, refresh_token?, scope}` (the tests compare them):
//! strings are written by `json_string`.

use super::json_string::string;
use crate::oauth::TokenResponse;
use std::io::Write;

pub fn token_body(t: &TokenResponse) -> Vec<u8> {
    let access = t.access_token.expose();
    let refresh = t.refresh_token.as_ref().map(|r| r.expose());
    let mut out =
        Vec::with_capacity(96 + access.len() + refresh.map_or(0, str::len) + t.scope.len());
    out.extend_from_slice(b"{\"access_token\":");
    string(&mut out, access);
    out.extend_from_slice(b",\"token_type\":\"Bearer\",\"expires_in\":");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", t.expires_in);
    if let Some(refresh) = refresh {
        out.extend_from_slice(b",\"refresh_token\":");
        string(&mut out, refresh);
    }
    out.extend_from_slice(b",\"scope\":");
    string(&mut out, &t.scope);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::secret::Secret;
    use proptest::prelude::*;

    /// What the body was before: serde_json of the struct.
    #[derive(serde::Serialize)]
    struct TokenBody<'a> {
        access_token: &'a str,
        token_type: &'static str,
        expires_in: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        refresh_token: Option<&'a str>,
        scope: &'a str,
    }

    fn both(access: &str, refresh: Option<&str>, scope: &str, expires_in: u64) -> (String, String) {
        let t = TokenResponse {
            access_token: Secret::new(access),
            expires_in,
            refresh_token: refresh.map(Secret::new),
            scope: scope.into(),
        };
        let ours = String::from_utf8(token_body(&t)).expect("utf-8");
        let serde = serde_json::to_string(&TokenBody {
            access_token: access,
            token_type: "Bearer",
            expires_in,
            refresh_token: refresh,
            scope,
        })
        .expect("json");
        (ours, serde)
    }

    #[test]
    fn the_body_is_serde_jsons_byte_for_byte() {
        for (access, refresh, scope) in [
            ("lgat_abc-_09", Some("lgrt_xyz"), "profile"),
            ("lgat_abc", None, ""),
            (
                "a\"b\\c\u{1}\n\u{1f}",
                Some("é日本\u{7f}"),
                "scope with \"quotes\"",
            ),
        ] {
            let (ours, serde) = both(access, refresh, scope, 3600);
            assert_eq!(ours, serde);
        }
    }

    proptest! {
        #[test]
        fn any_strings_give_serde_jsons_bytes(
            access in any::<String>(),
            refresh in proptest::option::of(any::<String>()),
            scope in any::<String>(),
            expires_in in any::<u64>(),
        ) {
            let (ours, serde) = both(&access, refresh.as_deref(), &scope, expires_in);
            prop_assert_eq!(ours, serde);
        }
    }
}
