//! The bodies of `/userinfo` and `/introspect` answers, written straight into one buffer: they
//! are on every request a skill backend makes. The bytes are exactly what serde_json makes of
//! `UserInfo` and `Introspection` (the tests compare them); strings are written by `json_string`.

use super::json_string::string;
use crate::oauth::resource::{Introspection, UserInfo};
use std::io::Write;

pub fn userinfo_body(info: &UserInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + info.sub.len() + info.preferred_username.len());
    out.extend_from_slice(b"{\"sub\":");
    string(&mut out, &info.sub);
    out.extend_from_slice(b",\"preferred_username\":");
    string(&mut out, &info.preferred_username);
    out.push(b'}');
    out
}

/// RFC 7662 §2.2, in `Introspection`'s field order; absent fields are left out.
pub fn introspection_body(i: &Introspection) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(if i.active {
        b"{\"active\":true"
    } else {
        b"{\"active\":false"
    });
    let strings = [
        ("sub", i.sub.as_deref()),
        ("username", i.username.as_deref()),
        ("client_id", i.client_id.as_deref()),
        ("scope", i.scope.as_deref()),
    ];
    for (name, value) in strings {
        field(&mut out, name, value);
    }
    for (name, value) in [("exp", i.exp), ("iat", i.iat)] {
        if let Some(value) = value {
            // Writing into a Vec cannot fail.
            let _ = write!(out, ",\"{name}\":{value}");
        }
    }
    field(&mut out, "token_type", i.token_type);
    field(&mut out, "aud", i.aud.as_deref());
    out.push(b'}');
    out
}

/// `,"name":"value"`, if there is a value (`name` needs no escape).
fn field(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        string(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(any::<String>())
    }

    proptest! {
        #[test]
        fn an_introspection_gives_serde_jsons_bytes(
            active in any::<bool>(),
            (sub, username, client_id, scope, aud) in (any_text(), any_text(), any_text(), any_text(), any_text()),
            exp in proptest::option::of(any::<u64>()),
            iat in proptest::option::of(any::<u64>()),
            token_type in proptest::option::of(prop_oneof![Just("Bearer"), Just("refresh_token")]),
        ) {
            let i = Introspection { active, sub, username, client_id, scope, exp, iat, token_type, aud };
            let ours = String::from_utf8(introspection_body(&i)).expect("utf-8");
            prop_assert_eq!(ours, serde_json::to_string(&i).expect("json"));
        }

        #[test]
        fn a_userinfo_gives_serde_jsons_bytes(sub in any::<String>(), name in any::<String>()) {
            let info = UserInfo { sub, preferred_username: name };
            let ours = String::from_utf8(userinfo_body(&info)).expect("utf-8");
            prop_assert_eq!(ours, serde_json::to_string(&info).expect("json"));
        }
    }

    #[test]
    fn an_inactive_token_is_only_active_false() {
        let body = introspection_body(&Introspection::default());
        assert_eq!(body, b"{\"active\":false}");
    }
}
