//! linkgate: parse the command line, load the config, then serve or run one admin command.

use linkgate::admin::cli::Command;
use linkgate::admin::{cli, doctor, socket as admin_socket};
use linkgate::{acme, admin, config, http, logging, oauth, store};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    let args = match cli::parse(
        std::env::args().skip(1),
        std::env::var("LINKGATE_CONFIG").ok(),
    ) {
        Ok(args) => args,
        Err(e) => return fail(2, &e),
    };
    match args.command {
        Command::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("linkgate {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    // Also for a new operator without a config yet (the console URLs then say so).
    if let Command::NewClient(name, preset) = &args.command {
        let config = config::load(&args.config).ok();
        return match linkgate::presets::new_client(config.as_ref(), name, *preset) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, &e),
        };
    }
    let config = match config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return fail(2, &e.to_string()),
    };
    let result = match &args.command {
        Command::Serve => return serve(config),
        Command::Doctor(extra_ca) => {
            return match doctor::run(&config, extra_ca.as_deref()) {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(1),
            }
        }
        Command::CheckConfig => admin::check_config(&config),
        Command::Backup(file) => admin::backup(&config, file),
        Command::Restore(file) => admin::restore(&config, file),
        Command::MigrateStore(target) => linkgate::admin::migrate::run(&config, target),
        Command::Invite(name) => admin::issue_link(&config, store::LinkKind::Invite, name),
        Command::ResetPassword(name) => admin::issue_link(&config, store::LinkKind::Reset, name),
        command => {
            admin::request_for(&config, command).and_then(|request| admin::run(&config, request))
        }
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(admin::AdminError(message)) => fail(1, &message),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    for line in message.lines() {
        eprintln!("linkgate: {line}");
    }
    ExitCode::from(code)
}

fn serve(config: config::Config) -> ExitCode {
    // Dropped last, at return: writes the log lines still buffered.
    let _logs = logging::init();
    let store = match store::Store::open_configured(
        &config.storage_path,
        config.cache_bytes,
        config.postgres.as_ref(),
    ) {
        Ok(store) => store,
        Err(e) => return fail(1, &e.to_string()),
    };
    if config.postgres.is_none() {
        keep_reserve(&config.storage_path);
    }
    store.listen_for_changes();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    for warning in config.permission_warnings() {
        tracing::warn!("{warning}");
    }
    let listen = config.listen;
    let tls = match &config.tls {
        Some(files) => match http::tls::Tls::load(&files.cert, &files.key) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => return fail(2, &format!("{}: {e}", config.file.display())),
        },
        None => None,
    };
    if let Some(api) = config.login.api.clone() {
        if let Err(e) = linkgate::login_api::LoginApiClient::new(api) {
            return fail(2, &format!("{}: {e}", config.file.display()));
        }
    }
    // A key for access tokens exists, durably, before the first one is issued.
    if let Err(e) = store
        .ensure_token_key(store::now())
        .and_then(|()| store.flush_blocking())
    {
        return fail(1, &e.to_string());
    }
    // [server.acme]: the cached certificate is loaded before the first handshake.
    let acme = match config.acme.is_some().then(|| acme::Acme::prepare(&config)) {
        Some(Ok(acme)) => Some(acme),
        Some(Err(e)) => return fail(2, &format!("{}: {e}", config.file.display())),
        None => None,
    };
    let reload_tls = tls.clone();
    let tls = match &acme {
        Some(acme) => match http::tls::Tls::with_resolver(acme.resolver()) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => return fail(1, &e),
        },
        None => tls,
    };
    let app = match oauth::server::Server::new(config, store.clone()) {
        Ok(app) => app,
        Err(e) => return fail(1, &e.to_string()),
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| http::bind_error(listen, "", &e))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(
            https = tls.is_some(),
            "linkgate {} listening on {local}",
            env!("CARGO_PKG_VERSION")
        );
        let signals = Signals::install()?;
        let socket_path = admin_socket::path(&app.config);
        let started = linkgate::store::now();
        let served = config::Served::of(&app.config);
        let live: admin_socket::Live = {
            let app = app.clone();
            let served = served.clone();
            std::sync::Arc::new(move |request: &admin::Request| match request {
                admin::Request::LinkingLog { client } => {
                    let client = client.as_deref();
                    let events = app.linking.recent(client);
                    let tallies = app.linking.tallies(client);
                    Some(admin::linking_log_table(&events, &tallies, client, started))
                }
                admin::Request::Served => serde_json::to_string(&served).ok(),
                _ => None,
            })
        };
        let admin = admin_socket::listen(&socket_path, app.store.clone(), admin::execute, live)
            .map_err(|e| {
                format!(
                    "cannot create the admin socket {}: {e}",
                    socket_path.display()
                )
            })?;
        let sweeper = tokio::spawn(sweep_forever(
            app.store.clone(),
            Duration::from_secs(app.config.sweep_interval_secs),
        ));
        let acme_tasks = acme::start(&app, acme).await?;
        // Everything is ready: say so, for scripts and tests that bound port 0.
        println!("listening on {local}");
        let _ = std::io::stdout().flush();
        let reloader = tokio::spawn(reload_on_sighup(
            signals.hangup,
            reload_tls,
            served,
            app.config.file.clone(),
        ));
        let signalled = shutdown_signal(signals.terminate, signals.interrupt);
        let store_failed = store_stopped_writing(app.store.clone());
        let mut failed = false;
        let shutdown = async {
            tokio::select! {
                _ = signalled => {}
                _ = store_failed => failed = true,
            }
        };
        http::server::serve(app, listener, tls, shutdown).await;
        reloader.abort();
        acme_tasks.iter().for_each(|task| task.abort());
        sweeper.abort();
        admin.abort();
        let _ = std::fs::remove_file(&socket_path);
        Ok::<bool, String>(failed)
    });
    // The tasks still holding the store (sweeper, admin socket, connections) go with the runtime.
    drop(runtime);
    let failed = match result {
        Ok(failed) => failed,
        Err(e) => return fail(1, &e),
    };
    if failed {
        let _ = store.close();
        return fail(
            1,
            "stopped because the store could not write (see above); systemd starts linkgate again",
        );
    }
    match store.close() {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &format!("closing the store failed: {e}")),
    }
}

/// Writes the data directory's disk reserve if it is missing (`store/reserve.rs`), or says why not.
fn keep_reserve(dir: &std::path::Path) {
    match store::reserve::keep(dir) {
        Ok(store::reserve::Reserve::Kept) => {}
        Ok(store::reserve::Reserve::NoRoom) => tracing::warn!(
            "no room for linkgate's {} KiB disk reserve in {}: if the disk fills up, a restart \
             may not be able to open the store; make room",
            store::reserve::RESERVE_BYTES / 1024,
            dir.display()
        ),
        Err(e) => tracing::warn!("cannot write the disk reserve in {}: {e}", dir.display()),
    }
}

/// Signal handlers are installed before the server says it is listening, so that a SIGTERM or
/// SIGHUP sent right after start-up is handled, not fatal.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let install =
            |kind| signal(kind).map_err(|e| format!("cannot install signal handlers: {e}"));
        Ok(Signals {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            hangup: install(SignalKind::hangup())?,
        })
    }
}

async fn shutdown_signal(
    mut terminate: tokio::signal::unix::Signal,
    mut interrupt: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("stopping: finishing requests in flight");
}

/// Completes when the sled store has stopped writing (after a full disk, sled refuses every
/// write until it is reopened) and there is room again, three checks a second apart: the
/// server then stops with exit status 1, and systemd (`Restart=on-failure`) starts it again,
/// which reopens the store. Until there is room it keeps serving what needs no write.
async fn store_stopped_writing(store: store::Store) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut seen = 0;
    loop {
        every.tick().await;
        seen = match store.stopped_writing_with_room_again().await {
            true => seen + 1,
            false => 0,
        };
        if seen >= 3 {
            tracing::error!(
                "the store stopped writing after an I/O error (a full disk?) and there is room \
                 again: stopping so that it is reopened (systemd starts linkgate again)"
            );
            return;
        }
    }
}

/// `systemctl reload` (SIGHUP): re-read the TLS certificate, e.g. after a Let's Encrypt renewal.
/// Without TLS there is nothing to reload, but SIGHUP must still not kill the server.
/// SIGHUP reloads the TLS certificate and key from the files the server started with (a
/// renewed certificate); every other edit of the config needs a restart, and the log says which
/// edits the file has that are not served (and does not claim a reload it did not do).
async fn reload_on_sighup(
    mut hangups: tokio::signal::unix::Signal,
    tls: Option<Arc<http::tls::Tls>>,
    served: config::Served,
    file: std::path::PathBuf,
) {
    while hangups.recv().await.is_some() {
        let differences = match config::load(&file) {
            Ok(now) => served.differences(&config::Served::of(&now)),
            Err(e) => vec![format!("the file does not load now ({e})")],
        };
        let paths_changed = differences.iter().any(|d| d.starts_with("server.tls"));
        match (&tls, &served.tls_files) {
            (Some(tls), Some((cert, key))) if !paths_changed => match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: reloaded the TLS certificate from {cert} and {key}"),
                Err(e) => tracing::error!("SIGHUP: certificate reload failed, keeping the old one: {e}"),
            },
            (Some(_), _) => tracing::warn!(
                "SIGHUP: the certificate path changed in the config: the old certificate stays in service until a restart"
            ),
            (None, _) => tracing::info!("SIGHUP: no [server.tls] certificate to reload"),
        }
        if !differences.is_empty() {
            tracing::warn!(
                "SIGHUP: {} changed in {} but SIGHUP reloads only the TLS certificate files: restart linkgate to apply (systemctl restart linkgate): {}",
                if differences.len() == 1 { "one thing" } else { "several things" },
                file.display(),
                differences.join("; ")
            );
        }
    }
}

async fn sweep_forever(store: store::Store, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.tick().await;
    loop {
        interval.tick().await;
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || {
            // Between batches, give writers a moment so a big sweep never stalls requests.
            store.sweep(store::now(), || {
                std::thread::sleep(Duration::from_millis(1))
            })
        })
        .await;
        match result {
            Ok(Ok(swept)) if swept.codes + swept.grants + swept.tokens > 0 => tracing::info!(
                codes = swept.codes,
                grants = swept.grants,
                tokens = swept.tokens,
                "swept expired entries"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("sweep failed: {e}"),
            Err(e) => tracing::warn!("sweep task failed: {e}"),
        }
    }
}
