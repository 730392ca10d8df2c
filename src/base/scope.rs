//! OAuth scopes as strings (RFC 6749 §3.3): read by the config check and by the OAuth rules.

/// RFC 6749 §3.3: `scope = scope-token *( SP scope-token )`, scope-token = 1*( %x21 / %x23-5B /
/// %x5D-7E ). Returns the scopes normalised to single spaces, or `None` if a character is not
/// allowed.
pub fn normalize_scope(scope: &str) -> Option<String> {
    let tokens: Vec<&str> = scope.split(' ').filter(|t| !t.is_empty()).collect();
    let valid =
        |c: char| c == '\x21' || ('\x23'..='\x5b').contains(&c) || ('\x5d'..='\x7e').contains(&c);
    if tokens.iter().all(|t| t.chars().all(valid)) {
        Some(tokens.join(" "))
    } else {
        None
    }
}

/// Whether every scope in `requested` is in `granted`.
pub fn scope_within(requested: &str, granted: &str) -> bool {
    requested
        .split(' ')
        .filter(|t| !t.is_empty())
        .all(|r| granted.split(' ').any(|g| g == r))
}
