//! The admin commands: `--add-user` and friends. They work with the server stopped (opening the
//! data directory) and running (asking the server over its admin socket).
//!
//! Everything the operator runs from a shell lives under this folder: `cli` (the command line),
//! this file (the commands), `links` (printing invite and reset links), `protocol` and `socket`
//! (the running server's admin socket), `doctor` (`--doctor`), `migrate` (`--migrate-store`).

pub mod cli;
pub mod doctor;
mod links;
pub mod migrate;
pub mod protocol;
pub mod socket;

pub use crate::base::civil::format_time;
use crate::base::secret::{self, Secret};
use crate::config::Config;
use crate::store::{AddUserError, Store, StoreError, Username};
use cli::Command;
pub use protocol::{AdminError, Request};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, IsTerminal};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::accounts::password_rules::{
    check_new_password, PasswordProblem, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN,
};

/// Builds the request for a CLI command, asking for a password where one is needed.
pub fn request(command: &Command) -> Result<Request, AdminError> {
    request_with(command, None)
}

/// The same, with the config (commands that need a setting from it).
pub fn request_for(config: &Config, command: &Command) -> Result<Request, AdminError> {
    request_with(command, Some(config))
}

fn request_with(command: &Command, config: Option<&Config>) -> Result<Request, AdminError> {
    Ok(match command {
        Command::AddUser(name) => Request::AddUser {
            name: username(name)?.to_string(),
            password_hash: secret::hash_password(&read_new_password()?),
        },
        Command::SetPassword(name) => Request::SetPassword {
            name: username(name)?.to_string(),
            password_hash: secret::hash_password(&read_new_password()?),
        },
        Command::ListUsers => Request::ListUsers,
        Command::RemoveUser(name) => Request::RemoveUser {
            name: username(name)?.to_string(),
        },
        // A local username or a login API subject (any string the API returned), so it is not
        // held to the username rules here; `execute` decides which it is.
        Command::UnlinkUser(name) => Request::UnlinkUser {
            name: name.trim().to_string(),
        },
        Command::Backup(_) => Request::Backup,
        Command::DisableTotp(name) => Request::DisableTotp {
            name: username(name)?.to_string(),
        },
        Command::LinkingLog(client) => Request::LinkingLog {
            client: client.clone(),
        },
        Command::RotateTokenKey => Request::RotateTokenKey {
            access_secs: config
                .map(|c| c.tokens.access_secs)
                .ok_or_else(|| AdminError("--rotate-token-key needs the config".into()))?,
        },
        other => return Err(AdminError(format!("{other:?} is not an admin command"))),
    })
}

/// `--linking-log`: the events as a table an operator reads, oldest first.
pub fn linking_log_table(
    events: &[crate::oauth::linking_log::Event],
    tallies: &[(String, crate::oauth::linking_log::Tally)],
    client: Option<&str>,
    since: u64,
) -> String {
    let whose = client.map_or("every client".to_string(), |c| format!("client {c}"));
    let mut out = format!(
        "linking log of {whose} since the server started at {} (kept in memory, the last {} per client)\n",
        format_time(since),
        crate::oauth::linking_log::KEPT
    );
    if events.is_empty() && tallies.is_empty() {
        out.push_str("nothing yet\n");
        return out;
    }
    // Successes counted (a refresh only so: Alexa refreshes all day).
    for (id, tally) in tallies {
        out.push_str(&format!(
            "{id}: {} {} ok, the last at {}\n",
            tally.count,
            tally.step.name(),
            format_time(tally.last_at)
        ));
    }
    out.push_str("TIME (UTC)\tCLIENT\tSTEP\tOUTCOME\tREFERENCE\tREASON\n");
    for e in events {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            format_time(e.at).trim_end_matches(" UTC"),
            e.client,
            e.step.name(),
            e.outcome,
            e.reference.as_deref().unwrap_or("-"),
            if e.reason.is_empty() { "-" } else { &e.reason }
        ));
    }
    out
}

/// `--invite NAME` / `--reset-password NAME`: stores a new one-time password link and returns
/// what to print (`accounts::links`).
pub fn issue_link(
    config: &Config,
    kind: crate::store::LinkKind,
    name: &str,
) -> Result<String, AdminError> {
    let (token, request) = links::new_link(config, kind, name)?;
    let message = run(config, request)?;
    Ok(links::printed(config, &message, &token))
}

/// Runs a request against the data directory, or through the running server's admin socket
/// when the server holds the directory's lock.
pub fn run(config: &Config, request: Request) -> Result<String, AdminError> {
    if let Request::LinkingLog { .. } = request {
        let path = socket::path(config);
        return socket::send(&path, &request).map_err(|e| {
            AdminError(format!(
                "the linking log is kept in the running server's memory, and no server answered \
                 at {} ({e}); start linkgate and try again",
                path.display()
            ))
        });
    }
    match Store::open_configured(
        &config.storage_path,
        config.cache_bytes,
        config.postgres.as_ref(),
    ) {
        Ok(store) => execute(&store, request),
        Err(StoreError::Locked(_)) => socket::send(&socket::path(config), &request),
        Err(e) => Err(e.into()),
    }
}

/// Carries out a request on an open store; every change is flushed before it returns.
pub fn execute(store: &Store, request: Request) -> Result<String, AdminError> {
    let message = match request {
        Request::AddUser {
            name,
            password_hash,
        } => {
            let name = username(&name)?;
            store.add_user(&name, password_hash).map_err(|e| match e {
                AddUserError::Exists(_) => AdminError(e.to_string()),
                AddUserError::Store(e) => e.into(),
            })?;
            format!("added user {name}")
        }
        Request::ListUsers => return list_users(store),
        Request::DisableTotp { name } => {
            let name = username(&name)?;
            let Some(user) = store.user(&name)? else {
                return Err(no_user(&name));
            };
            if !crate::accounts::second_factor::disable(store, &name)? {
                return Err(AdminError(format!(
                    "{name} has no two-factor sign-in turned on"
                )));
            }
            // A lost phone: whoever holds a session (or the phone) is signed out.
            let ended = store.end_sessions_of(&user.sub, None)?;
            crate::accounts::events::record(
                store,
                &user.sub,
                name.as_str(),
                crate::store::EventKind::TotpOff,
                None,
                "--disable-totp",
            );
            format!(
                "turned off two-factor sign-in for {name}; ended {ended} /account session(s); \
                 they sign in with the password alone until they turn it on again"
            )
        }
        Request::LinkingLog { .. } | Request::Served => {
            return Err(AdminError(
                "only the running server can answer this: ask it over its admin socket".into(),
            ))
        }
        Request::Backup => return Err(AdminError("use --backup FILE".into())),
        Request::PasswordLink {
            name,
            kind,
            key,
            ttl_secs,
        } => return links::execute(store, &name, kind, &key, ttl_secs),
        Request::RemoveUser { name } => {
            let name = username(&name)?;
            if !store.remove_user(&name)? {
                return Err(no_user(&name));
            }
            format!("removed user {name} and revoked their tokens")
        }
        Request::SetPassword {
            name,
            password_hash,
        } => {
            let name = username(&name)?;
            if !store.set_password(&name, password_hash)? {
                return Err(no_user(&name));
            }
            if let Some(user) = store.user(&name)? {
                let kind = crate::store::EventKind::Admin;
                crate::accounts::events::record(
                    store,
                    &user.sub,
                    name.as_str(),
                    kind,
                    None,
                    "--set-password",
                );
            }
            format!("changed the password of {name} and revoked their tokens")
        }
        Request::UnlinkUser { name } => unlink(store, &name)?,
        Request::RotateTokenKey { access_secs } => {
            let id = store.rotate_token_key(crate::store::now(), access_secs)?;
            format!(
                "new access tokens are signed with key {id}; the previous key verifies the tokens it signed for {access_secs} s more, then it is dropped"
            )
        }
    };
    store.flush_blocking()?;
    Ok(message)
}

/// `--backup FILE`: a snapshot from the stopped store, or streamed by the running server. Written
/// to a temporary file first, then renamed into place. The temporary file holds password hashes:
/// it is made in the target's directory under a random name, exclusively (`O_EXCL`), without
/// following symlinks (`O_NOFOLLOW`), mode 0600, so nothing planted there beforehand (a symlink,
/// a world-readable file) can receive the backup.
pub fn backup(config: &Config, file: &Path) -> Result<String, AdminError> {
    use std::os::unix::fs::PermissionsExt;
    let name = file
        .file_name()
        .ok_or_else(|| AdminError(format!("{} is not a file name", file.display())))?;
    let tmp = file.with_file_name(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        crate::base::secret::new_id()
    ));
    let fail = |e: std::io::Error| AdminError(format!("cannot write {}: {e}", tmp.display()));
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(fail)?;
    // The umask can only take permissions away; make sure of 0600 whatever it is.
    out.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    let mut out = std::io::BufWriter::new(out);
    let written = match Store::open_configured(
        &config.storage_path,
        config.cache_bytes,
        config.postgres.as_ref(),
    ) {
        Ok(store) => store
            .backup(&mut out)
            .map(|n| format!("{n} entries"))
            .map_err(AdminError::from),
        Err(StoreError::Locked(_)) => socket::send_backup(&socket::path(config), &mut out),
        Err(e) => Err(e.into()),
    };
    let finished = written.and_then(|summary| {
        let file_handle = out.into_inner().map_err(|e| fail(e.into_error()))?;
        file_handle.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, file).map_err(fail)?;
        Ok(summary)
    });
    match finished {
        Ok(summary) => Ok(format!("wrote backup {} ({summary})", file.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `--restore FILE`: into an empty data directory, with the server stopped.
pub fn restore(config: &Config, file: &Path) -> Result<String, AdminError> {
    let input = std::fs::File::open(file)
        .map_err(|e| AdminError(format!("cannot read {}: {e}", file.display())))?;
    let store = Store::open_configured(
        &config.storage_path,
        config.cache_bytes,
        config.postgres.as_ref(),
    )
    .map_err(|e| match e {
        StoreError::Locked(_) => AdminError(format!("{e}; stop it before restoring")),
        other => other.into(),
    })?;
    let entries = store
        .restore(std::io::BufReader::new(input))
        .map_err(|e| match e {
            crate::store::RestoreError::NotEmpty if config.postgres.is_some() => {
                AdminError(format!(
                    "{}: the database is not empty ({}): restore only into a new, empty database",
                    file.display(),
                    storage_description(config)
                ))
            }
            e => AdminError(format!("{}: {e}", file.display())),
        })?;
    Ok(format!(
        "restored {entries} entries from {} into {}",
        file.display(),
        storage_description(config)
    ))
}

/// Which store a config names, for people: `sled in DIR`, or where the PostgreSQL database is
/// (never its password).
pub fn storage_description(config: &Config) -> String {
    match &config.postgres {
        None => format!("sled in {}", config.storage_path.display()),
        Some(settings) => settings.describe(),
    }
}

/// The `storage` lines of `--check-config`: the backend and, for PostgreSQL, where the database
/// is, whether the connection must use TLS, and the pool (never the password).
fn storage_summary(config: &Config) -> String {
    let Some(settings) = &config.postgres else {
        return format!(
            "storage     sled (embedded, one node) in {}\n",
            config.storage_path.display()
        );
    };
    let mut out = format!("storage     {}\n", settings.describe());
    out.push_str(&format!(
        "  TLS       {}{}\n",
        match settings.tls_mode() {
            Some("required") => "yes (sslmode=require; certificate and host name verified)",
            Some("no") => "no (sslmode=disable)",
            _ => "only if the server offers it (sslmode=prefer; set sslmode=require to insist)",
        },
        settings
            .ca_file
            .as_ref()
            .map(|f| format!(", extra CA {}", f.display()))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "  pool      {} connection{} per node\n",
        settings.pool_size,
        if settings.pool_size == 1 { "" } else { "s" }
    ));
    out
}

/// A warning for `--check-config`: a database on another machine reached without required TLS.
fn storage_warning(config: &Config) -> Option<String> {
    let settings = config.postgres.as_ref()?;
    (settings.tls_mode() != Some("required") && !settings.is_local()).then(|| {
        "storage.url: the database is on another machine but TLS is not required: add \
         ?sslmode=require to the URL (passwords and tokens cross the network)"
            .to_string()
    })
}

/// `--unlink-user NAME`: a local user's name, else the subject of a customer who signed in
/// through the login API (they have no local record, only grants under that subject).
/// The explicit form for a login API subject, for one spelled like a local user.
const SUBJECT_PREFIX: &str = "api:";

fn unlink(store: &Store, name: &str) -> Result<String, AdminError> {
    if let Some(subject) = name.strip_prefix(SUBJECT_PREFIX) {
        return unlink_subject(store, subject);
    }
    if let Ok(local) = Username::parse(name) {
        if let Some(revoked) = store.unlink_user(&local)? {
            if let Some(user) = store.user(&local)? {
                let kind = crate::store::EventKind::Admin;
                crate::accounts::events::record(
                    store,
                    &user.sub,
                    local.as_str(),
                    kind,
                    None,
                    "--unlink-user",
                );
            }
            return Ok(format!(
                "unlinked {local}: revoked {revoked} grant(s) and any code not yet redeemed"
            ));
        }
    }
    unlink_subject(store, name)
}

fn unlink_subject(store: &Store, name: &str) -> Result<String, AdminError> {
    // Codes first: an exchange racing with this either finds its code gone, or stored its
    // grant with the code's mark (one step) before the grants below are listed.
    let codes = store.revoke_subject_codes(name)?;
    let grants =
        store.revoke_user_grants(name, "its login API subject was unlinked (--unlink-user)")?;
    // Linked from the operator's app: the customer's Amazon tokens go too.
    let amazon = store.remove_subject_alexa_links(name)?;
    let shown = printable(name);
    if grants + codes + amazon == 0 {
        return Err(AdminError(format!(
            "no user `{shown}` and no login API subject `{shown}` with linked clients"
        )));
    }
    Ok(format!(
        "unlinked login API subject {shown}: revoked {grants} grant(s) and {codes} code(s) not yet redeemed"
    ))
}

/// User data as the CLI prints it: control characters (an ESC sequence in a name a customer
/// typed) escaped, so they cannot drive the operator's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn no_user(name: &Username) -> AdminError {
    AdminError(format!("no user `{name}`"))
}

fn username(name: &str) -> Result<Username, AdminError> {
    Username::parse(name).map_err(|e| AdminError(format!("invalid username `{name}`: {e}")))
}

/// The new password: asked twice without echo on a terminal, else the first line of stdin.
fn read_new_password() -> Result<Secret, AdminError> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ")
            .map_err(|e| AdminError(format!("cannot read the password: {e}")))?;
        let second = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| AdminError(format!("cannot read the password: {e}")))?;
        if first != second {
            return Err(AdminError("the passwords do not match".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| AdminError(format!("cannot read the password from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    match check_new_password(&password) {
        Ok(()) => {}
        Err(PasswordProblem::Empty) => return Err(AdminError("the password is empty".into())),
        Err(PasswordProblem::TooShort) => {
            return Err(AdminError(format!(
                "the password is too short: use at least {MIN_PASSWORD_LEN} characters"
            )))
        }
        Err(PasswordProblem::TooLong) => {
            return Err(AdminError(format!(
                "the password is too long (over {MAX_PASSWORD_LEN} characters)"
            )))
        }
    }
    Ok(Secret::new(password))
}

fn list_users(store: &Store) -> Result<String, AdminError> {
    let mut out = String::new();
    // One pass over the grants for all users, not one per user.
    let mut linked: HashMap<String, BTreeSet<String>> = HashMap::new();
    for grant in store.live_grants(crate::store::now())? {
        linked.entry(grant.sub).or_default().insert(grant.client_id);
    }
    let mut local_subs = BTreeSet::new();
    for user in store.users()? {
        local_subs.insert(user.sub.clone());
        let clients = linked.remove(&user.sub).unwrap_or_default();
        out.push_str(&format!(
            "{}\tcreated {}\t{} linked client{}\n",
            user.username,
            format_time(user.created_at),
            clients.len(),
            if clients.len() == 1 { "" } else { "s" }
        ));
    }
    out.push_str(&api_subjects(store, &local_subs)?);
    if out.is_empty() {
        out.push_str("no users yet: add one with --add-user NAME\n");
    }
    Ok(out.trim_end().to_string())
}

/// Customers who signed in through the login API have no local record: they are listed by the
/// subjects that hold links, with the name they last signed in with.
fn api_subjects(store: &Store, local_subs: &BTreeSet<String>) -> Result<String, AdminError> {
    let mut subjects: std::collections::BTreeMap<String, (String, BTreeSet<String>)> =
        Default::default();
    for grant in store.live_grants(crate::store::now())? {
        if local_subs.contains(&grant.sub) {
            continue;
        }
        let entry = subjects.entry(grant.sub).or_default();
        entry.0 = grant.username;
        entry.1.insert(grant.client_id);
    }
    let mut out = String::new();
    for (subject, (username, clients)) in subjects {
        out.push_str(&format!(
            "{}\tlogin API (signed in as {})\t{} linked client{}\n",
            printable(&subject),
            printable(&username),
            clients.len(),
            if clients.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(out)
}

pub fn check_config(config: &Config) -> Result<String, AdminError> {
    if let Some(files) = &config.tls {
        crate::http::tls::Tls::load(&files.cert, &files.key)
            .map_err(|e| AdminError(format!("{}: {e}", config.file.display())))?;
    }
    let mut out = format!("config {} is valid\n", config.file.display());
    out.push_str(&format!("listen      {}\n", config.listen));
    out.push_str(&format!("public url  {}\n", config.public_url));
    out.push_str(&format!("  authorize {}/authorize\n", config.public_url));
    out.push_str(&format!("  token     {}/token\n", config.public_url));
    out.push_str(&format!(
        "https       {}\n",
        match (&config.tls, &config.acme) {
            (Some(files), _) => format!("built in ({})", files.cert.display()),
            (None, Some(acme)) => format!(
                "built in, certificate for {} from ACME ({}), renewed automatically",
                acme.domain, acme.directory
            ),
            (None, None) => "not built in (use a reverse proxy)".to_string(),
        }
    ));
    out.push_str(&format!(
        "proxies     {}\n",
        if config.trusted_proxies.is_empty() {
            "none trusted (the client is the TCP peer; X-Forwarded-For is ignored)".to_string()
        } else {
            format!(
                "{} (X-Forwarded-For believed from these; the client is the first other hop from the right)",
                config.trusted_proxies
            )
        }
    ));
    out.push_str(&format!("data        {}\n", config.storage_path.display()));
    out.push_str(&storage_summary(config));
    out.push_str(&format!(
        "tokens      code {}s, access {}s, refresh {}\n",
        config.tokens.code_secs,
        config.tokens.access_secs,
        match config.tokens.refresh_secs {
            0 => "until revoked".to_string(),
            s => format!("{s}s"),
        }
    ));
    out.push_str(&login_summary(config));
    for client in &config.clients {
        out.push_str(&format!("client      {} ({})\n", client.id, client.name));
        for uri in &client.redirect_uris {
            out.push_str(&format!("  redirect  {uri}\n"));
        }
    }
    for warning in config
        .warnings()
        .into_iter()
        .chain(config.permission_warnings())
        .chain(storage_warning(config))
    {
        out.push_str(&format!("warning: {warning}\n"));
    }
    Ok(out.trim_end().to_string())
}

/// The `login` lines of `--check-config`: where passwords are checked.
fn login_summary(config: &Config) -> String {
    use crate::config::{BodyFormat, LoginSource};
    let source = config.login.source;
    let mut out = format!(
        "login       {}\n",
        match source {
            LoginSource::Local => "local users (--add-user)",
            LoginSource::Api => "the login API",
            LoginSource::Both => "local users first, then the login API",
        }
    );
    if let Some(api) = config.login.api.as_ref().filter(|_| source.uses_api()) {
        out.push_str(&format!(
            "  api       POST {} ({}, {} + {}); subject {}{}\n",
            api.url,
            match api.body {
                BodyFormat::Json => "JSON",
                BodyFormat::Form => "form",
            },
            api.username_field,
            api.password_field,
            api.subject,
            api.display_name
                .as_ref()
                .map(|d| format!(", display name {d}"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "  limits    {} ms timeout, at most {} call(s) in flight{}{}\n",
            api.timeout.as_millis(),
            api.max_in_flight,
            if api.headers.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = api.headers.iter().map(|(n, _)| n.as_str()).collect();
                format!(", headers {} (values not shown)", names.join(", "))
            },
            api.ca_file
                .as_ref()
                .map(|f| format!(", extra CA {}", f.display()))
                .unwrap_or_default()
        ));
        if let Some(check) = &api.check {
            out.push_str(&format!(
                "  recheck   GET {} {}; 404/410 ends the link\n",
                check.url,
                match check.every_secs {
                    0 => "on every refresh".to_string(),
                    secs => format!("at most every {} h per link", secs / 3600),
                }
            ));
        }
    }
    out
}
