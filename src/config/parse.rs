//! TOML into the raw schema, and serde's errors made readable: the line, the key path, words an
//! operator uses, and for an unknown key the closest valid one ("did you mean").

use super::schema::RawConfig;

/// TOML into `RawConfig`, with the key path and line of the first problem.
pub(super) fn parse(text: &str) -> Result<RawConfig, String> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let line = inner.span().map(|span| {
            text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        });
        let message = readable(inner.message().trim());
        let mut out = String::new();
        if let Some(line) = line {
            out.push_str(&format!("line {line}: "));
        }
        if path != "." && !path.is_empty() {
            out.push_str(&format!("key `{path}`: "));
        }
        out.push_str(&message);
        out
    })
}

/// serde's words made an operator's: "expected u64" is "expected a number" (and a number
/// written in quotes is named as such); an unknown key gets the closest valid one suggested.
fn readable(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, words) in [
        ("expected u64", "expected a number"),
        ("expected u32", "expected a number"),
        ("expected u16", "expected a number"),
        ("expected usize", "expected a number"),
        ("expected i64", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
        (
            "expected a sequence",
            "expected a list in brackets, e.g. [\"a\", \"b\"]",
        ),
    ] {
        out = out.replace(rust, words);
    }
    if let Some(rest) = out.strip_prefix("invalid type: string ") {
        let quoted = rest.split(',').next().unwrap_or("");
        if quoted.trim_matches('"').parse::<f64>().is_ok() && out.contains("a number") {
            out = format!(
                "{out} (write it without quotes: {})",
                quoted.trim_matches('"')
            );
        }
    }
    // "unknown field `listne`, expected one of `listen`, `public_url`, …"
    if let Some(rest) = out.strip_prefix("unknown field `") {
        let typed = rest.split('`').next().unwrap_or("");
        let valid: Vec<&str> = rest
            .split('`')
            .skip(1)
            .filter(|part| !part.contains(' ') && !part.contains(',') && !part.is_empty())
            .collect();
        if let Some(closest) = valid
            .iter()
            .min_by_key(|v| edit_distance(typed, v))
            .filter(|v| edit_distance(typed, v) <= typed.len().max(2) / 2)
        {
            out = format!("unknown key `{typed}`; did you mean `{closest}`? ({out})");
        }
    }
    out
}

/// Levenshtein distance, for suggesting a key.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{check, GOOD};

    #[test]
    fn names_an_unknown_key() {
        let err = check(&GOOD.replace("listen =", "listne =")).unwrap_err();
        assert!(err.contains("listne"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("did you mean `listen`?"), "{err}");
        // Nothing close: no guess.
        let err = check(&GOOD.replace("listen =", "zzzzzzzzzz =")).unwrap_err();
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn names_a_badly_typed_key() {
        let err = check(&format!("{GOOD}\n[tokens]\ncode_ttl_secs = \"five\"\n")).unwrap_err();
        assert!(err.contains("tokens.code_ttl_secs"), "{err}");
        assert!(
            err.contains("expected a number") && !err.contains("u64"),
            "{err}"
        );
        let err = check(&format!("{GOOD}\n[tokens]\ncode_ttl_secs = \"2000\"\n")).unwrap_err();
        assert!(err.contains("write it without quotes: 2000"), "{err}");
    }
}
