//! linkgate's load, footprint and durability benchmarks, loopback only and bounded in time.
//!
//!     cargo bench --bench load              # full run (a few minutes), figures for BENCHMARKS.md
//!     cargo bench --bench load -- --quick   # seconds; CI runs this so the benchmark cannot rot
//!
//! Every throughput figure is also given as a ratio to a bare hyper server answering a fixed
//! 200, measured in the same run on the same machine: that is the physical limit here, and the
//! ratio stays meaningful on a busy or slow machine where absolute numbers do not.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use linkgate::base::secret;
use linkgate::oauth::tokens;
use linkgate::store::{CodeRecord, Generation, Grant, Store, TokenRecord};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Plan {
    quick: bool,
    /// How long each throughput measurement runs.
    window: Duration,
    connections: usize,
    logins: usize,
    big_store: usize,
    expired: usize,
    kill_iterations: usize,
    flood: usize,
}

fn main() {
    if std::env::args().any(|a| a == "--baseline-server") {
        return baseline_server();
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--shaped-server") {
        let dir = args.get(at + 1).expect("--shaped-server DIR");
        return shaped_server(std::path::Path::new(dir));
    }
    if let Some(at) = args.iter().position(|a| a == "--wrk-prepare") {
        let dir = args
            .get(at + 1)
            .expect("--wrk-prepare DIR CONNECTIONS [POSTGRES_URL]");
        let conns = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .expect("--wrk-prepare DIR CONNECTIONS [POSTGRES_URL]");
        let postgres = args.get(at + 3).map(String::as_str);
        return wrk_prepare(std::path::Path::new(dir), conns, postgres);
    }
    if let Some(at) = args.iter().position(|a| a == "--wrk-codes") {
        let usage = "--wrk-codes DIR COUNT [POSTGRES_URL]";
        let dir = args.get(at + 1).expect(usage);
        let count = args.get(at + 2).and_then(|n| n.parse().ok()).expect(usage);
        let postgres = args.get(at + 3).map(String::as_str);
        return wrk_codes(std::path::Path::new(dir), count, postgres);
    }
    if let Some(at) = args.iter().position(|a| a == "--soak") {
        let secs = args.get(at + 1).and_then(|n| n.parse().ok()).unwrap_or(600);
        return soak(secs);
    }
    if let Some(at) = args.iter().position(|a| a == "--refresh-growth") {
        let n = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        return refresh_growth(n);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            quick,
            window: Duration::from_millis(700),
            connections: 16,
            logins: 4,
            big_store: 20_000,
            expired: 10_000,
            kill_iterations: 2,
            flood: 40,
        }
    } else {
        Plan {
            quick,
            window: Duration::from_secs(5),
            connections: 64,
            logins: 40,
            big_store: 1_000_000,
            expired: 100_000,
            kill_iterations: 10,
            flood: 200,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = Report::default();
    report.line(format!(
        "machine: {} cores, {}; mode: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        if quick { "quick" } else { "full" }
    ));

    // Baseline: the bare hyper server, in a process of its own as linkgate is.
    let baseline_process = BaselineProcess::start();
    let baseline = runtime.block_on(load(
        baseline_process.addr,
        plan.connections,
        plan.window,
        Arc::new(|_| get("/", &[])),
    ));
    report.row("baseline hyper, fixed 200", &baseline, None);
    drop(baseline_process);

    // linkgate with one linked user.
    let env = TestEnv::with_user();
    let server = env.start();
    let idle_rss = rss_kib(server.pid());
    let (access, refresh_token) = tokens_for(&server);
    let addr = server.addr;

    let bearer = format!("Bearer {access}");
    let userinfo = runtime.block_on(load_with_rss(
        &server,
        &runtime,
        plan.connections,
        plan.window,
        {
            let bearer = bearer.clone();
            Arc::new(move |_| get("/userinfo", &[("Authorization", &bearer)]))
        },
    ));
    report.row("GET /userinfo", &userinfo.0, Some(&baseline));
    let auth = basic(ALEXA_ID, ALEXA_SECRET);
    let introspect = runtime.block_on(load(addr, plan.connections, plan.window, {
        let body = form(&[("token", &access)]);
        let auth = auth.clone();
        Arc::new(move |_| post("/introspect", &[("Authorization", &auth)], &body))
    }));
    report.row("POST /introspect", &introspect, Some(&baseline));
    let refresh_stats = runtime.block_on(load(addr, plan.connections, plan.window, {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ]);
        let auth = auth.clone();
        Arc::new(move |_| post("/token", &[("Authorization", &auth)], &body))
    }));
    report.row(
        "POST /token refresh (durable)",
        &refresh_stats,
        Some(&baseline),
    );

    // Sign-ins (argon2, the intended cost) and the exchange of the codes they produce.
    let started = Instant::now();
    let codes: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    (0..plan.logins / 2)
                        .map(|_| code_for(&server, ALEXA_ID, ALEXA_REDIRECT))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("login worker"))
            .collect()
    });
    let login_secs = started.elapsed().as_secs_f64();
    report.line(format!(
        "sign-in flow (authorize + login with argon2id + consent), 2 browsers: {:.1} logins/s ({} in {:.2} s)",
        codes.len() as f64 / login_secs,
        codes.len(),
        login_secs
    ));
    let codes = Arc::new(codes);
    let exchange = runtime.block_on(load_n(
        addr,
        plan.connections.min(codes.len()),
        codes.len(),
        {
            let codes = codes.clone();
            let auth = auth.clone();
            Arc::new(move |i| {
                let body = form(&code_fields(&codes[i], ALEXA_REDIRECT));
                post("/token", &[("Authorization", &auth)], &body)
            })
        },
    ));
    report.row(
        "POST /token authorization_code (durable)",
        &exchange,
        Some(&baseline),
    );

    report.line(format!(
        "idle RSS: {:.1} MiB; RSS under /userinfo load: {:.1} MiB",
        idle_rss as f64 / 1024.0,
        userinfo.1 as f64 / 1024.0
    ));
    let binary = std::fs::metadata(binary()).map(|m| m.len()).unwrap_or(0);
    report.line(format!(
        "binary size ({}): {:.2} MiB",
        binary_profile(),
        binary as f64 / (1024.0 * 1024.0)
    ));

    // The login flood: do the token endpoints keep answering? (issue 3)
    flood(&runtime, &server, &bearer, &plan, &mut report);
    drop(server);

    // Start-up time and lookup flatness with small and big stores. The store is written through
    // the store's API and dropped without a clean close, as after a crash; the first start pays
    // sled's log replay. The server is then stopped cleanly and started again.
    let small = store_with_tokens(1_000, 0);
    let big = store_with_tokens(plan.big_store, 0);
    let mut lookup_p99 = Vec::new();
    for (label, prepared) in [
        ("1k", &small),
        (if plan.quick { "20k" } else { "1M" }, &big),
    ] {
        let (server, after_crash) = timed_start(prepared, label);
        drop(server.stop());
        let (server, after_clean_stop) = timed_start(prepared, label);
        let (lookups, _) = distinct_lookups(&runtime, &server, &plan, prepared.count);
        lookup_p99.push(lookups.p(0.99));
        report.line(format!(
            "store with {label} tokens ({}): start-up to first /healthz {:.0} ms after a crash (log replay), {:.0} ms after a clean stop; on disk {:.0} bytes/token; /userinfo over distinct tokens (cache {DEFAULT_CACHE_MIB} MiB) p99 {:.3} ms, {:.0} req/s",
            prepared.count,
            after_crash.as_secs_f64() * 1000.0,
            after_clean_stop.as_secs_f64() * 1000.0,
            prepared.disk_bytes as f64 / prepared.count as f64,
            lookups.p(0.99),
            lookups.rate()
        ));
    }
    report.line(format!(
        "lookup flatness, default cache: p99 big store / small store = {:.2}x",
        lookup_p99[1] / lookup_p99[0]
    ));
    // The same big store with a cache that holds it: memory is what storage.cache_mib allows.
    set_cache_mib(&big.env, BIG_CACHE_MIB);
    let server = big.env.start();
    assert!(
        wait_healthy(&server),
        "big store with a big cache did not start"
    );
    let (lookups, rss) = distinct_lookups(&runtime, &server, &plan, big.count);
    report.line(format!(
        "lookup flatness, cache {BIG_CACHE_MIB} MiB: big store p99 {:.3} ms, {:.0} req/s, max RSS {:.0} MiB; p99 big store / small store = {:.2}x",
        lookups.p(0.99),
        lookups.rate(),
        rss as f64 / 1024.0,
        lookups.p(0.99) / lookup_p99[0]
    ));
    drop(server);
    drop((small, big));

    sweep_under_load(&runtime, &plan, &mut report);
    kill9(&plan, &mut report);
    report.print();
}

// ---- scenarios ----------------------------------------------------------------------------

/// `--wrk-prepare DIR N` (for tools/bench-wrk.sh): a config and data directory in DIR with one
/// user, and token files for wrk: `access.txt` (one access token), `refresh.txt` (one refresh
/// token of a non-rotating client), `rotating.txt` (N refresh tokens of N grants of a rotating
/// client, one per wrk connection: a rotation chain cannot be shared between connections).
/// With a third argument, a `postgres://` URL, the store is that database (`backend =
/// "postgres"`, default pool size) and `data` only holds the admin socket.
fn wrk_prepare(dir: &std::path::Path, conns: usize, postgres: Option<&str>) {
    std::fs::create_dir_all(dir).expect("create the directory");
    let config = dir.join("linkgate.toml");
    let config_body = config_text(&format!(
        "[[clients]]\nid = \"rotating\"\nsecret = \"rotating-secret-0123456789\"\nname = \"Rotating\"\nredirect_uris = [\"{ALEXA_REDIRECT}\"]\nrotate_refresh_tokens = true\n\n[tokens]\naccess_ttl_secs = 86400\n"
    ));
    // wrk's connections all come from 127.0.0.1, and the client-authentication throttle
    // (issue 12) counts every authentication in progress against the calling address: more
    // than 20 at once from one address get 429. The scripts give each wrk thread an address
    // of its own in X-Forwarded-For, so what is measured is the endpoint, not the throttle.
    let config_body = config_body.replace(
        "public_url = \"http://127.0.0.1\"",
        "public_url = \"http://127.0.0.1\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    let config_body = match postgres {
        Some(url) => config_body.replace(
            "path = \"data\"",
            &format!("path = \"data\"\nbackend = \"postgres\"\nurl = \"{url}\""),
        ),
        None => config_body,
    };
    std::fs::write(&config, config_body).expect("write the config");
    let out = run_cli(&config, &["--add-user", USER], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = wrk_store(dir, postgres);
    let now = linkgate::store::now();
    store.ensure_token_key(now).expect("key");
    let plain = stored_grant(&store, ALEXA_ID, now);
    let access = tokens::issue::access(&store, &plain, &plain.scope, now, 86400).expect("access");
    let refresh = tokens::issue::refresh(&plain, 0, now).expect("refresh");
    let rotating: Vec<String> = (0..conns)
        .map(|_| {
            let grant = stored_grant(&store, "rotating", now);
            tokens::issue::refresh(&grant, 0, now)
                .expect("refresh")
                .expose()
                .to_string()
        })
        .collect();
    store.flush_blocking().expect("flush");
    drop(store);
    std::fs::write(dir.join("access.txt"), access.expose()).expect("write");
    std::fs::write(dir.join("refresh.txt"), refresh.expose()).expect("write");
    std::fs::write(dir.join("rotating.txt"), rotating.join("\n") + "\n").expect("write");
    println!("{}", config.display());
}

/// The store of a `--wrk-prepare` directory: its sled data directory (no node may have it
/// open), or the database.
fn wrk_store(dir: &std::path::Path, postgres: Option<&str>) -> Store {
    match postgres {
        Some(url) => Store::connect(&linkgate::store::PostgresSettings {
            url: url.to_string(),
            pool_size: 4,
            ca_file: None,
            revocation_bound: std::time::Duration::from_secs(1),
        })
        .expect("connect to the database"),
        None => Store::open(&dir.join("data"), 16 << 20).expect("open the store"),
    }
}

/// `--wrk-codes DIR COUNT [POSTGRES_URL]`: COUNT pending authorization codes in the store of a
/// `--wrk-prepare` directory, written to DIR/codes.txt, for tools/wrk/exchange.lua. Stored
/// just before that run (the other runs' memory figures are not those of a store full of
/// codes); on PostgreSQL while the nodes run, as another node would.
fn wrk_codes(dir: &std::path::Path, count: usize, postgres: Option<&str>) {
    let store = wrk_store(dir, postgres);
    let codes = pending_codes(&store, count, linkgate::store::now());
    store.flush_blocking().expect("flush");
    std::fs::write(dir.join("codes.txt"), codes.join("\n") + "\n").expect("write");
}

/// `count` pending authorization codes of the bench user for the Alexa client, as the consent
/// page stores them (no PKCE, `redirect_uri` given), living an hour so that a whole bench run
/// can use them. Eight threads: on PostgreSQL each insert is a round trip.
fn pending_codes(store: &Store, count: usize, now: u64) -> Vec<String> {
    let user = bench_user(store);
    let threads = 8;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let user = &user;
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|_| {
                            let code = secret::new_token("lgc_");
                            let record =
                                bench_code(&user.sub, user.generation, ALEXA_ID, now + 3600);
                            store.put_code(&code.key(), &record).expect("code");
                            code.expose().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("code worker"))
            .collect()
    })
}

/// The bench user's subject and generation, as a sign-in reads them.
fn bench_user(store: &Store) -> Generation {
    store
        .user_generation(USER)
        .expect("read the user")
        .expect("the user exists")
}

/// A pending code of the bench user (`sub`, `generation`) for `client`, as the consent page stores it (no PKCE,
/// `redirect_uri` given).
fn bench_code(sub: &str, generation: u64, client: &str, expires_at: u64) -> CodeRecord {
    CodeRecord {
        client_id: client.into(),
        redirect_uri: ALEXA_REDIRECT.into(),
        redirect_uri_given: true,
        sub: sub.into(),
        username: USER.into(),
        scope: "profile".into(),
        code_challenge: None,
        expires_at,
        redeemed_by: None,
        generation,
        resource: None,
    }
}

/// A grant of the bench user for `client`, stored as a code exchange stores it.
fn stored_grant(store: &Store, client: &str, now: u64) -> Grant {
    let user = bench_user(store);
    let grant = Grant::new(&user.sub, USER, client, "profile", user.generation, now, 0);
    let code = secret::new_token("lgc_");
    let record = bench_code(&user.sub, user.generation, client, now + 60);
    store.put_code(&code.key(), &record).expect("code");
    store
        .redeem_code(&code.key(), now, &grant, &[])
        .expect("redeem");
    grant
}

/// `--soak SECONDS` (default 600): a mixed load for that long — 16 connections alternating
/// `/userinfo` and refreshes back to back, and a whole sign-in (browser flow with argon2, code
/// exchange) every second — then the server's RSS: issue 13 wants ≤ 32 MiB with the default
/// cache. Measured in windows of a minute (so the load generator's own latency record stays
/// small); prints each window and the RSS after it.
fn soak(secs: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = TestEnv::with_user();
    let server = env.start();
    let pid = server.pid();
    std::thread::sleep(Duration::from_millis(500));
    println!("idle RSS: {:.1} MiB", rss_kib(pid) as f64 / 1024.0);
    let (access, refresh_token) = tokens_for(&server);
    let bearer = format!("Bearer {access}");
    let auth = basic(ALEXA_ID, ALEXA_SECRET);
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_token),
    ]);
    let make: MakeRequest = Arc::new(move |i| {
        if i % 2 == 0 {
            get("/userinfo", &[("Authorization", &bearer)])
        } else {
            post("/token", &[("Authorization", &auth)], &body)
        }
    });
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut max_rss = 0;
    let sign_ins = std::thread::scope(|scope| {
        let signer = scope.spawn(|| {
            let mut linked = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let code = code_for(&server, ALEXA_ID, ALEXA_REDIRECT);
                let answer =
                    server.token_basic(ALEXA_ID, ALEXA_SECRET, &code_fields(&code, ALEXA_REDIRECT));
                assert_eq!(answer.status, 200, "a sign-in failed: {}", answer.text());
                linked += 1;
                std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
            }
            linked
        });
        let mut minute = 0;
        while Instant::now() < deadline {
            minute += 1;
            let window = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(60));
            let (stats, rss) =
                runtime.block_on(load_with_rss(&server, &runtime, 16, window, make.clone()));
            max_rss = max_rss.max(rss);
            println!(
                "window {minute}: {:.0} req/s, p99 {:.3} ms, {} errors; max RSS {:.1} MiB",
                stats.rate(),
                stats.p(0.99),
                stats.errors,
                rss as f64 / 1024.0
            );
        }
        stop.store(true, Ordering::Relaxed);
        signer.join().expect("sign-in thread")
    });
    println!(
        "soak of {secs} s: {sign_ins} sign-ins; max RSS during {:.1} MiB, RSS after {:.1} MiB (target <= 32 MiB)",
        max_rss as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0
    );
}

/// `--refresh-growth N`: refresh loops in-process against the store, as `/token` runs them (the
/// same `Store::refresh`, a flush every 100 refreshes standing in for group commit): N
/// refreshes of one token without rotation, N/10 with rotation following the chain (each new
/// token used, one grant write each) and N/10 with rotation presenting the same token again
/// (lost responses). Prints data-directory growth and the speed of the first and last tenth.
fn refresh_growth(n: usize) {
    for (label, count, rotate, follow) in [
        ("no rotation, one token", n, false, false),
        ("rotation, following the chain", n / 10, true, true),
        (
            "rotation, the same token again and again",
            n / 10,
            true,
            false,
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), 16 << 20).expect("open");
        let name = linkgate::store::Username::parse(USER).expect("name");
        let user = store.add_user(&name, "hash".into()).expect("user");
        let now = linkgate::store::now();
        let grant = Grant::new(
            &user.sub,
            USER,
            ALEXA_ID,
            "profile",
            user.generation,
            now,
            0,
        );
        store
            .put_code(
                &[0; 32],
                &bench_code(&user.sub, user.generation, ALEXA_ID, now + 60),
            )
            .expect("code");
        store
            .redeem_code(&[0; 32], now, &grant, &[])
            .expect("redeem");
        store.ensure_token_key(now).expect("key");
        let mut current = tokens::issue::refresh(&grant, 0, now).expect("refresh");
        store.flush_blocking().expect("flush");
        store.close().expect("close");
        let store = Store::open(dir.path(), 16 << 20).expect("open");
        let before = dir_size(dir.path());
        let mut times = Vec::with_capacity(count);
        // The refresh is async (a PostgreSQL write may be awaited); on sled it never waits.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let started = Instant::now();
        for i in 0..count {
            let t = Instant::now();
            let outcome = runtime
                .block_on(tokens::refresh(
                    &store,
                    current.expose(),
                    now,
                    None,
                    |_, _| {
                        Ok::<_, linkgate::store::StoreError>(tokens::Issue {
                            scope: "profile".into(),
                            access_secs: 3600,
                            rotate,
                        })
                    },
                ))
                .expect("refresh");
            let tokens::Refreshed::Issued { refresh, .. } = outcome else {
                panic!("refresh {i} failed: {outcome:?}");
            };
            if follow {
                current = refresh.expect("a rotated token");
            }
            if i % 100 == 99 {
                store.flush_blocking().expect("flush");
            }
            times.push(t.elapsed());
        }
        let total = started.elapsed();
        if !rotate {
            // What checking an access token costs in the store (MAC, grant read, cached user
            // generation), against which the HTTP request's cost can be set.
            let grant = store
                .grant(&grant.id)
                .expect("read")
                .expect("the grant exists");
            let access =
                tokens::issue::access(&store, &grant, "profile", now, 3600).expect("access");
            let checks = 200_000;
            let started = Instant::now();
            for _ in 0..checks {
                let found = tokens::token(&store, access.expose(), now, None).expect("check");
                assert!(found.is_some());
            }
            println!(
                "checking an access token in the store: {:.2} us ({checks} checks)",
                started.elapsed().as_secs_f64() * 1e6 / checks as f64
            );
        }
        store.flush_blocking().expect("flush");
        let flushed = dir_size(dir.path());
        store.close().expect("close");
        let closed = dir_size(dir.path());
        let tenth = (count / 10).max(1);
        let mean = |slice: &[Duration]| {
            slice.iter().map(Duration::as_secs_f64).sum::<f64>() / slice.len() as f64 * 1e6
        };
        let (first, last) = (mean(&times[..tenth]), mean(&times[count - tenth..]));
        println!(
            "{label}: {count} refreshes in {:.1} s ({:.0}/s); data directory {before} -> {flushed} bytes ({:+} bytes), {closed} after a clean close; mean per refresh first tenth {first:.1} us, last tenth {last:.1} us ({:.2}x)",
            total.as_secs_f64(),
            count as f64 / total.as_secs_f64(),
            flushed as i64 - before as i64,
            last / first
        );
    }
}

fn flood(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    bearer: &str,
    plan: &Plan,
    report: &mut Report,
) {
    let window = plan.window.max(Duration::from_secs(2));
    let conns = 8;
    let quiet = runtime.block_on(load(server.addr, conns, window, {
        let bearer = bearer.to_string();
        Arc::new(move |_| get("/userinfo", &[("Authorization", &bearer)]))
    }));
    let pages: Vec<Page> = (0..plan.flood)
        .map(|_| Page::from(server.get(&authorize_path(ALEXA_ID, ALEXA_REDIRECT, "s", &[]))))
        .collect();
    let done = AtomicBool::new(false);
    let mut max_rss = 0;
    let (loaded, statuses) = std::thread::scope(|scope| {
        let attackers: Vec<_> = pages
            .iter()
            .enumerate()
            .map(|(i, page)| {
                scope.spawn(move || {
                    let name = format!("flood{i}");
                    page.submit(
                        server,
                        page.cookie.as_deref(),
                        &[("username", &name), ("password", "guess")],
                    )
                    .status
                })
            })
            .collect();
        let sampler = scope.spawn(|| {
            let mut max = 0;
            while !done.load(Ordering::Relaxed) {
                max = max.max(rss_kib(server.pid()));
                std::thread::sleep(Duration::from_millis(20));
            }
            max
        });
        let loaded = runtime.block_on(load(server.addr, conns, window, {
            let bearer = bearer.to_string();
            Arc::new(move |_| get("/userinfo", &[("Authorization", &bearer)]))
        }));
        let statuses: Vec<u16> = attackers
            .into_iter()
            .map(|a| a.join().unwrap_or(0))
            .collect();
        done.store(true, Ordering::Relaxed);
        max_rss = sampler.join().unwrap_or(0);
        (loaded, statuses)
    });
    let count = |s: u16| statuses.iter().filter(|x| **x == s).count();
    report.line(format!(
        "login flood: {} concurrent wrong logins ({} answered 401, {} 503 busy, {} 429 locked); /userinfo p99 {:.3} ms quiet vs {:.3} ms during the flood ({:.2}x); max RSS {:.1} MiB",
        plan.flood,
        count(401),
        count(503),
        count(429),
        quiet.p(0.99),
        loaded.p(0.99),
        loaded.p(0.99) / quiet.p(0.99),
        max_rss as f64 / 1024.0
    ));
}

struct Prepared {
    env: TestEnv,
    access: String,
    count: usize,
    disk_bytes: u64,
}

/// The value of the `i`th bulk access token in a prepared store: known to the load generator, so
/// lookups can spread over the whole store instead of hitting one cached token.
fn bulk_token(i: usize) -> String {
    format!("lgat_bulk{i:012}")
}

/// A data directory holding `count` tokens (of which `expired` already expired), written through
/// the store's own API, plus one live access token to look up.
fn store_with_tokens(count: usize, expired: usize) -> Prepared {
    // Sweep every second only where the sweep itself is measured; otherwise the default.
    let sweep = if expired > 0 {
        "\nsweep_interval_secs = 1"
    } else {
        ""
    };
    let env = TestEnv::with_config(
        &config_text("[tokens]\naccess_ttl_secs = 86400\n")
            .replace("path = \"data\"", &format!("path = \"data\"{sweep}")),
    );
    env.add_user(USER, PASSWORD);
    let store = Store::open(&env.data_dir(), 16 << 20).expect("open store");
    let now = linkgate::store::now();
    let user = bench_user(&store);
    let grant = Grant::new(
        &user.sub,
        USER,
        ALEXA_ID,
        "profile",
        user.generation,
        now,
        0,
    );
    let code = secret::new_token("lgc_");
    let record = bench_code(&user.sub, user.generation, ALEXA_ID, now + 60);
    store.put_code(&code.key(), &record).expect("code");
    let refresh_token = secret::new_token("lgrt_");
    let access = secret::new_token("lgat_");
    let first = [
        (
            access.key(),
            TokenRecord::access(&grant, "profile", now, 86400),
        ),
        (
            refresh_token.key(),
            TokenRecord::refresh(&grant, "profile", now),
        ),
    ];
    store
        .redeem_code(&code.key(), now, &grant, &first)
        .expect("redeem");
    for i in 2..count {
        // Expired tokens were issued a day ago and lived an hour.
        let (issued, ttl) = if i < expired + 2 {
            (now - 86400, 3600)
        } else {
            (now, 86400)
        };
        let record = TokenRecord::access(&grant, "profile", issued, ttl);
        let key = secret::Secret::new(bulk_token(i)).key();
        // Stored, as earlier releases stored every access token: the upgrade path's lookups.
        store.put_stored_token(&key, &record).expect("insert");
    }
    store.flush_blocking().expect("flush");
    drop(store);
    let disk_bytes = dir_size(&env.data_dir());
    Prepared {
        env,
        access: access.expose().to_string(),
        count: count.max(2),
        disk_bytes,
    }
}

/// sled's page cache as linkgate's config sets it by default, and one that holds 1M tokens.
const DEFAULT_CACHE_MIB: u64 = 16;
const BIG_CACHE_MIB: u64 = 512;

/// `/userinfo` load where every request asks about another stored token, spread over the whole
/// store, after a warm-up of half a window (so that the figures are the steady state, not sled
/// loading its pages). Returns the stats and the server's max RSS (KiB) while measured.
fn distinct_lookups(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    plan: &Plan,
    count: usize,
) -> (Stats, u64) {
    let make: MakeRequest = Arc::new(move |i| {
        let bearer = format!("Bearer {}", bulk_token(2 + (i * 7919) % (count - 2)));
        get("/userinfo", &[("Authorization", &bearer)])
    });
    runtime.block_on(load(
        server.addr,
        plan.connections,
        plan.window / 2,
        make.clone(),
    ));
    let (stats, rss) = runtime.block_on(load_with_rss(
        server,
        runtime,
        plan.connections,
        plan.window,
        make,
    ));
    assert_eq!(stats.errors, 0, "bulk tokens must all be live");
    (stats, rss)
}

/// Sets `storage.cache_mib` in a test environment's config.
fn set_cache_mib(env: &TestEnv, mib: u64) {
    let text = std::fs::read_to_string(&env.config).expect("read config");
    let text = text.replace(
        "path = \"data\"",
        &format!("path = \"data\"\ncache_mib = {mib}"),
    );
    std::fs::write(&env.config, text).expect("write config");
}

/// Starts the server on a prepared store; returns it and the time to its first healthy answer.
fn timed_start(prepared: &Prepared, label: &str) -> (Server, Duration) {
    let started = Instant::now();
    let server = prepared.env.start();
    let healthy = wait_healthy(&server);
    let startup = started.elapsed();
    assert!(healthy, "server with {label} tokens did not become healthy");
    (server, startup)
}

fn sweep_under_load(runtime: &tokio::runtime::Runtime, plan: &Plan, report: &mut Report) {
    let prepared = store_with_tokens(plan.expired + 2, plan.expired);
    let server = prepared.env.start();
    let bearer = format!("Bearer {}", prepared.access);
    let window = Duration::from_secs(if plan.quick { 2 } else { 4 });
    // The sweeper runs every second: the first window overlaps the sweep of all expired entries.
    let during = runtime.block_on(load(server.addr, 8, window, {
        let bearer = bearer.clone();
        Arc::new(move |_| get("/userinfo", &[("Authorization", &bearer)]))
    }));
    std::thread::sleep(Duration::from_secs(1));
    let after = runtime.block_on(load(
        server.addr,
        8,
        window,
        Arc::new(move |_| get("/userinfo", &[("Authorization", &bearer)])),
    ));
    let log = server.stop();
    let swept = log
        .lines()
        .find(|l| l.contains("swept expired entries"))
        .map(|l| l.split("swept").next().unwrap_or("").to_string());
    report.line(format!(
        "sweep of {} expired tokens: /userinfo p99 {:.3} ms during vs {:.3} ms after ({:.2}x); sweep logged: {}",
        plan.expired,
        during.p(0.99),
        after.p(0.99),
        during.p(0.99) / after.p(0.99),
        swept.map_or("no".to_string(), |_| "yes".to_string())
    ));
}

/// Grants under load, SIGKILL at a random moment, restart: every token a client got a 200 for
/// must still work (zero lost), and the store must open cleanly. Eight connections refresh one
/// token of a non-rotating client; four more each follow a rotation chain of their own (a
/// rotating client's grant each), and the last refresh token each was given must still work.
fn kill9(plan: &Plan, report: &mut Report) {
    const ROTATING: &str = "rotating";
    const ROTATING_SECRET: &str = "rotating-secret-0123456789";
    let mut acknowledged = 0;
    let mut rotations = 0;
    let mut lost = 0;
    for iteration in 0..plan.kill_iterations {
        let env = TestEnv::with_config(&config_text(&format!(
            "[[clients]]\nid = \"{ROTATING}\"\nsecret = \"{ROTATING_SECRET}\"\nname = \"Rotating\"\nredirect_uris = [\"{ALEXA_REDIRECT}\"]\nrotate_refresh_tokens = true\n\n[tokens]\naccess_ttl_secs = 86400\n"
        )));
        env.add_user(USER, PASSWORD);
        let server = env.start();
        let (_, refresh_token) = tokens_for(&server);
        let chains: Vec<String> = (0..4)
            .map(|_| {
                let code = code_for(&server, ROTATING, ALEXA_REDIRECT);
                server
                    .token_basic(
                        ROTATING,
                        ROTATING_SECRET,
                        &code_fields(&code, ALEXA_REDIRECT),
                    )
                    .json_str("refresh_token")
            })
            .collect();
        let addr = server.addr;
        let refresh_request = |id: &str, secret: &str, token: &str| {
            request_bytes(
                addr,
                "POST",
                "/token",
                &[
                    ("Authorization", &basic(id, secret)),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                form(&[("grant_type", "refresh_token"), ("refresh_token", token)]).as_bytes(),
            )
        };
        let request = refresh_request(ALEXA_ID, ALEXA_SECRET, &refresh_token);
        let stop = AtomicBool::new(false);
        let delay = Duration::from_millis(100 + u64::from(secret::random_bytes::<2>()[0]) * 3);
        let (tokens, last_rotated): (Vec<String>, Vec<(String, usize)>) =
            std::thread::scope(|scope| {
                let clients: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut got = Vec::new();
                            let deadline = Instant::now() + Duration::from_secs(10);
                            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                                match raw(addr, &request) {
                                    Ok(r) if r.status == 200 => got.push(
                                        r.json()["access_token"].as_str().unwrap_or("").to_string(),
                                    ),
                                    Ok(_) => {}
                                    Err(_) => break, // the server is gone
                                }
                            }
                            got
                        })
                    })
                    .collect();
                let rotating: Vec<_> = chains
                    .iter()
                    .map(|first| {
                        let (stop, refresh_request) = (&stop, &refresh_request);
                        scope.spawn(move || {
                            let mut current = first.clone();
                            let mut count = 0;
                            let deadline = Instant::now() + Duration::from_secs(10);
                            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                                let request = refresh_request(ROTATING, ROTATING_SECRET, &current);
                                match raw(addr, &request) {
                                    Ok(r) if r.status == 200 => {
                                        current = r.json_str("refresh_token");
                                        count += 1;
                                    }
                                    Ok(r) => panic!("a rotation failed: {}", r.text()),
                                    Err(_) => break,
                                }
                            }
                            (current, count)
                        })
                    })
                    .collect();
                std::thread::sleep(delay);
                server.signal("KILL");
                stop.store(true, Ordering::Relaxed);
                (
                    clients
                        .into_iter()
                        .flat_map(|c| c.join().unwrap_or_default())
                        .collect(),
                    rotating
                        .into_iter()
                        .map(|c| c.join().expect("rotating client"))
                        .collect(),
                )
            });
        drop(server);
        let restarted = env.start();
        assert!(
            restarted.is_healthy(),
            "iteration {iteration}: the store did not open cleanly"
        );
        let dead = tokens
            .iter()
            .filter(|t| restarted.userinfo(t).status != 200)
            .count();
        assert_eq!(
            refresh(&restarted, &refresh_token).status,
            200,
            "iteration {iteration}: the refresh token was lost"
        );
        for (last, count) in &last_rotated {
            let again = restarted.token_basic(
                ROTATING,
                ROTATING_SECRET,
                &[("grant_type", "refresh_token"), ("refresh_token", last)],
            );
            assert_eq!(
                again.status,
                200,
                "iteration {iteration}: the last rotated refresh token (after {count} rotations) was lost: {}",
                again.text()
            );
            rotations += count;
        }
        acknowledged += tokens.len();
        lost += dead;
    }
    report.line(format!(
        "kill -9 under refresh load, {} iterations: {acknowledged} grants acknowledged, {lost} lost; the refresh token survived every time; {rotations} rotations acknowledged on 4 chains, the last rotated token of every chain worked after the restart",
        plan.kill_iterations
    ));
}

// ---- load generation ------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency percentile in milliseconds.
    fn p(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

type MakeRequest = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

/// `conns` keep-alive connections sending requests back to back for `window`.
async fn load(addr: SocketAddr, conns: usize, window: Duration, make: MakeRequest) -> Stats {
    run(addr, conns, Some(window), usize::MAX, make).await
}

/// The same, for exactly `total` requests (request `i` built by `make(i)`).
async fn load_n(addr: SocketAddr, conns: usize, total: usize, make: MakeRequest) -> Stats {
    run(addr, conns.max(1), None, total, make).await
}

async fn run(
    addr: SocketAddr,
    conns: usize,
    window: Option<Duration>,
    total: usize,
    make: MakeRequest,
) -> Stats {
    let started = Instant::now();
    let deadline = started + window.unwrap_or(Duration::from_secs(60));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let make = make.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                    return (latencies, 1);
                };
                let _ = stream.set_nodelay(true);
                let mut buf = Vec::with_capacity(4096);
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let request = make(i);
                    let sent = Instant::now();
                    match exchange(&mut stream, &request, &mut buf).await {
                        Ok(status) if status < 300 => latencies.push(sent.elapsed()),
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            match tokio::net::TcpStream::connect(addr).await {
                                Ok(s) => stream = s,
                                Err(_) => break,
                            }
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut stats = Stats::default();
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            stats.latencies.extend(latencies);
            stats.errors += errors;
        }
    }
    stats.elapsed = started.elapsed();
    stats.latencies.sort();
    stats
}

/// One request on a keep-alive connection; returns the status once the whole body is read.
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn load_with_rss(
    server: &Server,
    _runtime: &tokio::runtime::Runtime,
    conns: usize,
    window: Duration,
    make: MakeRequest,
) -> (Stats, u64) {
    let pid = server.pid();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while !done.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            max
        })
    };
    let stats = load(server.addr, conns, window, make).await;
    done.store(true, Ordering::Relaxed);
    (stats, sampler.join().unwrap_or(0))
}

fn get(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

/// The physical limit on this machine: hyper answering a fixed 200, nothing else, on the same
/// kind of runtime as linkgate (tokio multi-thread, one worker per core). Runs in its own process
/// (this binary, started again with `--baseline-server`), so that it competes with the load
/// generator for the cores exactly as linkgate does.
fn baseline_server() {
    serve_bare(|_req| async {
        hyper::Response::new(http_body_util::Full::new(hyper::body::Bytes::from_static(
            b"ok",
        )))
    });
}

/// The floor for each endpoint's exchange: bare hyper (as the baseline) that reads the whole
/// request body and answers with the status, headers and body linkgate answered the same request
/// with (DIR/shape-NAME.http, a response as `curl -si` printed it, for NAME = userinfo,
/// introspect, token; hyper adds `date` and `content-length` itself). What linkgate costs beyond
/// it is its own work; what it costs beyond the hello-world is the request's and the answer's
/// size on the wire, which no server can avoid.
fn shaped_server(dir: &std::path::Path) {
    use http_body_util::BodyExt;
    use hyper::header::{HeaderName, HeaderValue};
    type Shape = (
        hyper::StatusCode,
        Vec<(HeaderName, HeaderValue)>,
        hyper::body::Bytes,
    );
    let load = |name: &str| -> Shape {
        let raw = std::fs::read(dir.join(format!("shape-{name}.http"))).expect("read a shape");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| {
                let n = n.trim().to_ascii_lowercase();
                !["date", "content-length", "connection", "keep-alive"].contains(&n.as_str())
            })
            .map(|(n, v)| {
                let name = HeaderName::from_bytes(n.trim().as_bytes()).expect("a header name");
                (
                    name,
                    HeaderValue::from_str(v.trim()).expect("a header value"),
                )
            })
            .collect();
        (
            status,
            headers,
            hyper::body::Bytes::from(raw[split + 4..].to_vec()),
        )
    };
    let shapes: Arc<[Shape; 3]> = Arc::new([load("userinfo"), load("introspect"), load("token")]);
    serve_bare(move |req| {
        let shapes = shapes.clone();
        async move {
            let (status, headers, body) = match req.uri().path() {
                "/userinfo" => &shapes[0],
                "/introspect" => &shapes[1],
                _ => &shapes[2],
            };
            let _ = req.into_body().collect().await;
            let mut response = hyper::Response::new(http_body_util::Full::new(body.clone()));
            *response.status_mut() = *status;
            let map = response.headers_mut();
            map.reserve(headers.len());
            for (name, value) in headers {
                map.append(name.clone(), value.clone());
            }
            response
        }
    });
}

/// Serves `answer` with bare hyper on 127.0.0.1 (a free port, printed first), each connection
/// with TCP_NODELAY as linkgate's, on a default tokio runtime. Never returns.
fn serve_bare<F, Fut>(answer: F)
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = hyper::Response<http_body_util::Full<hyper::body::Bytes>>>
        + Send
        + 'static,
{
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr"));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let answered = answer(req);
                    async move { Ok::<_, std::convert::Infallible>(answered.await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// The baseline server's process; killed when dropped.
struct BaselineProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl BaselineProcess {
    fn start() -> BaselineProcess {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut child = std::process::Command::new(exe)
            .arg("--baseline-server")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the baseline server");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("baseline stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("baseline address");
        let addr = line.trim().parse().expect("baseline address");
        BaselineProcess { child, addr }
    }
}

impl Drop for BaselineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- measurements and report ----------------------------------------------------------------

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn wait_healthy(server: &Server) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if raw(
            server.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .is_ok_and(|r| r.status == 200)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn binary_profile() -> &'static str {
    if binary().contains("/release/") {
        "release, stripped"
    } else {
        "debug build"
    }
}

#[derive(Default)]
struct Report {
    rows: Vec<String>,
    lines: Vec<String>,
}

impl Report {
    fn row(&mut self, what: &str, stats: &Stats, baseline: Option<&Stats>) {
        let ratio = baseline.map_or("1.00 (baseline)".to_string(), |b| {
            format!("{:.2}", stats.rate() / b.rate())
        });
        self.rows.push(format!(
            "| {what} | {:.0} | {:.3} | {:.3} | {ratio} | {} |",
            stats.rate(),
            stats.p(0.5),
            stats.p(0.99),
            stats.errors
        ));
        eprintln!("{}", self.rows.last().map(String::as_str).unwrap_or(""));
    }

    fn line(&mut self, text: String) {
        eprintln!("{text}");
        self.lines.push(text);
    }

    fn print(&self) {
        println!("| request | req/s | p50 ms | p99 ms | ratio to baseline | errors |");
        println!("|---|---|---|---|---|---|");
        for row in &self.rows {
            println!("{row}");
        }
        println!();
        for line in &self.lines {
            println!("- {line}");
        }
    }
}
