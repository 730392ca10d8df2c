//! What a new password must be, in one place: `--add-user` and `--set-password` on the terminal
//! and the password-link form in the browser apply the same rule.

/// Fewer characters than this is refused.
pub const MIN_PASSWORD_LEN: usize = 8;
/// More than this is refused (argon2 takes any length; this bounds the work and the form).
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    Empty,
    TooShort,
    TooLong,
}

/// Checks a new password's length in characters (not bytes: "Größe" is five).
pub fn check_new_password(password: &str) -> Result<(), PasswordProblem> {
    let length = password.chars().count();
    if password.is_empty() {
        Err(PasswordProblem::Empty)
    } else if length < MIN_PASSWORD_LEN {
        Err(PasswordProblem::TooShort)
    } else if length > MAX_PASSWORD_LEN {
        Err(PasswordProblem::TooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_in_characters() {
        assert_eq!(check_new_password(""), Err(PasswordProblem::Empty));
        assert_eq!(
            check_new_password("1234567"),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(check_new_password("12345678"), Ok(()));
        // Eight characters, sixteen bytes.
        assert_eq!(check_new_password("ääääääää"), Ok(()));
        assert_eq!(
            check_new_password("äääääää"),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(check_new_password(&"x".repeat(1024)), Ok(()));
        assert_eq!(
            check_new_password(&"x".repeat(1025)),
            Err(PasswordProblem::TooLong)
        );
    }
}
