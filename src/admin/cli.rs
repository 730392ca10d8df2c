//! Command-line arguments. Few enough to parse by hand, with errors that say what to type.

use std::path::PathBuf;

pub const USAGE: &str = "\
linkgate — OAuth 2.0 account linking for Alexa skills and Google Home actions

Usage:
  linkgate [--config PATH]                      serve (the default)
  linkgate [--config PATH] --add-user NAME      create a user (password from the terminal or stdin)
  linkgate [--config PATH] --list-users         list users and how many clients each has linked,
                                                then login API subjects that hold links
  linkgate [--config PATH] --remove-user NAME   delete a user and revoke their tokens
  linkgate [--config PATH] --set-password NAME  change a password and revoke the user's tokens
  linkgate [--config PATH] --unlink-user NAME   revoke all of a user's tokens (unlinks them); NAME
                                                may be a login API subject (see --list-users);
                                                api:SUBJECT is always the subject
  linkgate [--config PATH] --invite NAME        create a user and print a one-time link where
                                                they set their own password
  linkgate [--config PATH] --reset-password NAME
                                                print a one-time link where the user sets a new
                                                password (their links end when they do)
  linkgate [--config PATH] --rotate-token-key  sign new access tokens with a new key; the old one
                                                verifies until access_ttl_secs has passed
  linkgate [--config PATH] --linking-log [CLIENT]
                                                the running server's recent refusals (with their
                                                reasons and reference ids) and successes, of one
                                                client or all
  linkgate [--config PATH] --new-client NAME [--preset alexa|google|alexa-plus]
                                                a fresh client secret (shown once), its
                                                secret_hash, the [[clients]] block to paste and
                                                the values for the console; writes nothing
  linkgate [--config PATH] --disable-totp NAME  turn off a user's two-factor sign-in (a lost
                                                phone): their /account sessions end; recorded
                                                as a security event
  linkgate [--config PATH] --check-config       validate the config and show what would be served
  linkgate [--config PATH] --backup FILE        write a consistent snapshot (server running or not)
  linkgate [--config PATH] --restore FILE       restore a snapshot into an empty store (either
                                                backend, whichever made the backup)
  linkgate [--config PATH] --migrate-store --to-config OTHER
                                                copy everything from this config's store into the
                                                empty store of OTHER (sled <-> PostgreSQL), then
                                                read both back and compare; a sled source must be
                                                stopped, a PostgreSQL source may keep running
  linkgate [--config PATH] --doctor             check the deployment as Alexa and Google will see it:
                                                public URL, certificate chain, endpoints, redirect
                                                URIs, secrets, data directory; exits 1 on a failure
      --doctor-ca FILE                          with --doctor: also trust the CA certificates in FILE
                                                (PEM), for a private CA; Alexa itself will not
  linkgate --version | --help

The config file is --config PATH, else $LINKGATE_CONFIG, else ./linkgate.toml.
";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve,
    AddUser(String),
    ListUsers,
    RemoveUser(String),
    SetPassword(String),
    UnlinkUser(String),
    Invite(String),
    ResetPassword(String),
    RotateTokenKey,
    /// `--linking-log [CLIENT]`.
    LinkingLog(Option<String>),
    /// `--new-client NAME [--preset P]` (default preset: alexa).
    NewClient(String, crate::presets::Preset),
    DisableTotp(String),
    CheckConfig,
    Backup(PathBuf),
    Restore(PathBuf),
    /// `--migrate-store --to-config PATH`: the target's config file.
    MigrateStore(PathBuf),
    /// `--doctor`, with an extra CA file to trust (`--doctor-ca`).
    Doctor(Option<PathBuf>),
    Version,
    Help,
}

#[derive(Debug)]
pub struct Args {
    pub config: PathBuf,
    pub command: Command,
}

pub fn parse(
    args: impl IntoIterator<Item = String>,
    env_config: Option<String>,
) -> Result<Args, String> {
    let mut config = None;
    let mut command = None;
    let mut doctor_ca = None;
    let mut preset = None;
    let mut to_config = None;
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        // Its client id is optional: the next argument, unless that is another flag.
        if flag == "--linking-log" {
            if command.is_some() {
                return Err("give one command at a time (see --help)".into());
            }
            let client = inline.or_else(|| args.next_if(|next| !next.starts_with('-')));
            command = Some(Command::LinkingLog(client.filter(|c| !c.is_empty())));
            continue;
        }
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let next = match flag.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(value("--config")?));
                continue;
            }
            "--doctor-ca" => {
                doctor_ca = Some(PathBuf::from(value("--doctor-ca FILE")?));
                continue;
            }
            "--preset" => {
                preset = Some(crate::presets::Preset::parse(&value("--preset NAME")?)?);
                continue;
            }
            "--to-config" => {
                to_config = Some(PathBuf::from(value("--to-config PATH")?));
                continue;
            }
            "--migrate-store" => Command::MigrateStore(PathBuf::new()),
            "--add-user" => Command::AddUser(value("--add-user NAME")?),
            "--new-client" => {
                Command::NewClient(value("--new-client NAME")?, crate::presets::Preset::Alexa)
            }
            "--disable-totp" => Command::DisableTotp(value("--disable-totp NAME")?),
            "--remove-user" => Command::RemoveUser(value("--remove-user NAME")?),
            "--set-password" => Command::SetPassword(value("--set-password NAME")?),
            "--unlink-user" => Command::UnlinkUser(value("--unlink-user NAME")?),
            "--invite" => Command::Invite(value("--invite NAME")?),
            "--reset-password" => Command::ResetPassword(value("--reset-password NAME")?),
            "--backup" => Command::Backup(PathBuf::from(value("--backup FILE")?)),
            "--restore" => Command::Restore(PathBuf::from(value("--restore FILE")?)),
            "--list-users" => Command::ListUsers,
            "--rotate-token-key" => Command::RotateTokenKey,
            "--check-config" => Command::CheckConfig,
            "--doctor" => Command::Doctor(None),
            "--version" | "-V" => Command::Version,
            "--help" | "-h" => Command::Help,
            other => return Err(format!("unknown argument `{other}` (see --help)")),
        };
        if command.is_some() {
            return Err("give one command at a time (see --help)".into());
        }
        command = Some(next);
    }
    if let Some(chosen) = preset {
        match &mut command {
            Some(Command::NewClient(_, preset)) => *preset = chosen,
            _ => return Err("--preset goes with --new-client NAME".into()),
        }
    }
    if let Some(ca) = doctor_ca {
        match &mut command {
            Some(Command::Doctor(extra)) => *extra = Some(ca),
            _ => return Err("--doctor-ca FILE goes with --doctor".into()),
        }
    }
    match (&mut command, to_config) {
        (Some(Command::MigrateStore(target)), Some(file)) => *target = file,
        (Some(Command::MigrateStore(_)), None) => {
            return Err(
                "--migrate-store needs --to-config PATH: the config of the store to copy into"
                    .into(),
            )
        }
        (_, Some(_)) => return Err("--to-config PATH goes with --migrate-store".into()),
        (_, None) => {}
    }
    Ok(Args {
        config: config
            .or_else(|| env_config.filter(|c| !c.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("linkgate.toml")),
        command: command.unwrap_or(Command::Serve),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str, env: Option<&str>) -> Result<Args, String> {
        parse(
            s.split_whitespace().map(String::from),
            env.map(String::from),
        )
    }

    #[test]
    fn defaults_and_flags() {
        let args = parse_str("", None).unwrap();
        assert_eq!(args.config, PathBuf::from("linkgate.toml"));
        assert_eq!(args.command, Command::Serve);
        let args = parse_str("--add-user alice --config /etc/l.toml", Some("/x.toml")).unwrap();
        assert_eq!(args.config, PathBuf::from("/etc/l.toml"));
        assert_eq!(args.command, Command::AddUser("alice".into()));
        assert_eq!(
            parse_str("", Some("/x.toml")).unwrap().config,
            PathBuf::from("/x.toml")
        );
        assert_eq!(
            parse_str("--config=a.toml", None).unwrap().config,
            PathBuf::from("a.toml")
        );
        assert_eq!(
            parse_str("--rotate-token-key", None).unwrap().command,
            Command::RotateTokenKey
        );
    }

    #[test]
    fn errors() {
        assert!(parse_str("--add-user", None).is_err());
        assert!(parse_str("--bogus", None).is_err());
        assert!(parse_str("--list-users --check-config", None).is_err());
        assert!(parse_str("--doctor-ca ca.pem", None).is_err());
        assert!(parse_str("--list-users --doctor-ca ca.pem", None).is_err());
    }

    #[test]
    fn migrate_store_needs_its_target() {
        assert_eq!(
            parse_str("--migrate-store --to-config b.toml -c a.toml", None)
                .unwrap()
                .command,
            Command::MigrateStore(PathBuf::from("b.toml"))
        );
        assert_eq!(
            parse_str("--to-config=b.toml --migrate-store", None)
                .unwrap()
                .command,
            Command::MigrateStore(PathBuf::from("b.toml"))
        );
        let err = parse_str("--migrate-store", None).unwrap_err();
        assert!(err.contains("--to-config PATH"), "{err}");
        assert!(parse_str("--to-config b.toml", None).is_err());
        assert!(parse_str("--list-users --to-config b.toml", None).is_err());
        assert!(parse_str("--migrate-store --to-config", None).is_err());
    }

    #[test]
    fn doctor_takes_an_extra_ca() {
        assert_eq!(
            parse_str("--doctor", None).unwrap().command,
            Command::Doctor(None)
        );
        assert_eq!(
            parse_str("--doctor-ca ca.pem --doctor", None)
                .unwrap()
                .command,
            Command::Doctor(Some(PathBuf::from("ca.pem")))
        );
    }
}
