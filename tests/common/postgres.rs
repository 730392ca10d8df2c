//! A throwaway PostgreSQL cluster for the tests of the PostgreSQL store: Debian's server binaries
//! (`tools/test-setup.sh` installs them), a data directory in a temporary folder, a free port on
//! 127.0.0.1, trust authentication, and a `linkgate` database. When the tests run as root (CI),
//! the cluster runs as the `postgres` user the package creates, since PostgreSQL refuses to run as
//! root. Every step is bounded by a timeout; a missing PostgreSQL fails the test with the reason,
//! it never skips it. Dropping the cluster stops it and removes its folder.

use super::{run_bounded, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How long one `pg_ctl` or `psql` run may take before the test fails.
const STEP: Duration = Duration::from_secs(45);
/// `pg_ctl -w -t`: how long it waits for the server to start or stop.
const PG_CTL_WAIT: &str = "30";
/// Fresh ports tried when postgres cannot bind the one picked.
const PORT_ATTEMPTS: usize = 5;

pub struct PgCluster {
    /// Owns the folder: `data` (the cluster), `sock` (its Unix socket), `log`, `ca.pem`.
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    /// `Some((uid, gid))` of the `postgres` user when the tests run as root.
    run_as: Option<(u32, u32)>,
    ca_pem: Option<PathBuf>,
    running: bool,
}

impl PgCluster {
    /// initdb, start on a free port, create the `linkgate` database.
    pub fn start() -> PgCluster {
        PgCluster::create(false)
    }

    /// As `start`, with `ssl = on`, a certificate for 127.0.0.1 and localhost from a test CA
    /// (`ca_pem`), and only TLS connections accepted over TCP.
    pub fn start_tls() -> PgCluster {
        PgCluster::create(true)
    }

    fn create(tls: bool) -> PgCluster {
        let bin = server_bin();
        let run_as = if is_root() {
            Some(postgres_user())
        } else {
            None
        };
        // Root's TMPDIR may not be reachable by the postgres user; /tmp always is.
        let mut builder = tempfile::Builder::new();
        builder.prefix("linkgate-pg-");
        let dir = match run_as {
            Some(_) => builder.tempdir_in("/tmp"),
            None => builder.tempdir(),
        }
        .expect("temp dir for PostgreSQL");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the cluster's folder to postgres");
        }
        let mut cluster = PgCluster {
            dir,
            port: 0,
            bin,
            run_as,
            ca_pem: None,
            running: false,
        };
        cluster.initdb(tls);
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port();
            match cluster.try_start() {
                Ok(()) => {
                    cluster.psql_in("postgres", "CREATE DATABASE linkgate");
                    return cluster;
                }
                Err(log) if log.contains("could not bind") || log.contains("in use") => {
                    last = log;
                }
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        panic!("PostgreSQL found no free port in {PORT_ATTEMPTS} attempts:\n{last}");
    }

    /// `postgres://postgres@127.0.0.1:PORT/linkgate`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/linkgate", self.port)
    }

    /// Creates another database on the cluster; returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql_in("postgres", &format!("CREATE DATABASE {name}"));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM of the CA that signed the server's certificate (`start_tls` only).
    pub fn ca_pem(&self) -> &Path {
        self.ca_pem
            .as_deref()
            .expect("ca_pem: the cluster was not started with start_tls")
    }

    /// The folder that holds everything; removed on drop.
    pub fn folder(&self) -> &Path {
        self.dir.path()
    }

    /// The postmaster's process id (from its lock file).
    pub fn postmaster_pid(&self) -> u32 {
        let lock = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("postmaster.pid: the cluster is not running");
        lock.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in postmaster.pid: {lock}"))
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// A clean shutdown (`pg_ctl stop -m fast`): sessions are ended, data is kept.
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    /// A crash (`pg_ctl stop -m immediate`): no checkpoint, recovery on the next start.
    pub fn kill(&mut self) {
        self.pg_ctl_stop("immediate");
    }

    /// Starts the stopped (or killed) cluster again on the same port and data.
    pub fn start_again(&mut self) {
        assert!(!self.running, "start_again: the cluster is running");
        // The port was ours a moment ago; a stranger taking it meanwhile is retried briefly.
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match self.try_start() {
                Ok(()) => return,
                Err(log) => last = log,
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "PostgreSQL did not start again on port {}:\n{last}",
            self.port
        );
    }

    /// Runs `sql` in the `linkgate` database; returns psql's unaligned, tuples-only output
    /// (`|` between columns, one row a line), trimmed. Fails the test on an SQL error.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("linkgate", sql)
    }

    /// `psql` in another database (`postgres`, say, for what cannot run in `linkgate`).
    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        let mut command = Command::new(self.bin.join("psql"));
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGSSLMODE", "prefer")
            .env_remove("PGPASSWORD")
            .current_dir(self.dir.path());
        let out = run_bounded(&mut command, STEP, "psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed ({}):\n{}\nserver log:\n{}",
            out.status,
            text(&out.stderr),
            self.log()
        );
        text(&out.stdout).trim().to_string()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for one of the server binaries, as the postgres user when we are root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--init-groups")
                    .arg(program);
                c
            }
            None => Command::new(program),
        };
        // The postgres user cannot enter root's working directory.
        command.current_dir(self.dir.path());
        command
    }

    fn run(&self, command: &mut Command, what: &str) -> Output {
        let out = run_bounded(command, STEP, what);
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}{}\nserver log:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.log()
        );
        out
    }

    fn initdb(&mut self, tls: bool) {
        let data = self.data();
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "-A", "trust"])
            .arg("--no-sync");
        self.run(&mut initdb, "initdb");
        let sock = self.dir.path().join("sock");
        std::fs::create_dir(&sock).expect("socket folder");
        self.give_to_postgres(&sock);
        // fsync = off: the machine does not crash under a test, and a commit is still written
        // to the kernel before it is acknowledged (synchronous_commit stays on), so `kill`
        // loses nothing acknowledged.
        let mut conf = format!(
            "\n# tests/common/postgres.rs\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nfsync = off\nfull_page_writes = off\n\
             shared_buffers = 32MB\nmax_connections = 200\n\
             log_min_messages = warning\n",
            sock.display()
        );
        if tls {
            self.write_certificates(&data);
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            // Over TCP, TLS only: a client that falls back to plain text is refused.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("pg_hba.conf");
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("write postgresql.conf");
    }

    /// A test CA, and a server certificate and key it signed, for `ssl = on`.
    fn write_certificates(&mut self, data: &Path) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "linkgate test database CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .expect("server certificate");
        let (crt, pem) = (data.join("server.crt"), data.join("server.key"));
        std::fs::write(&crt, cert.pem()).expect("server.crt");
        std::fs::write(&pem, key.serialize_pem()).expect("server.key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");
        self.give_to_postgres(&crt);
        self.give_to_postgres(&pem);
        let ca_path = self.dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).expect("ca.pem");
        self.ca_pem = Some(ca_path);
    }

    fn give_to_postgres(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
        }
    }

    /// `pg_ctl start -w` on `self.port`; the log on failure.
    fn try_start(&mut self) -> Result<(), String> {
        let before = self.log().len();
        let mut start = self.command("pg_ctl");
        start
            .arg("start")
            .args(["-w", "-t", PG_CTL_WAIT, "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg("-o")
            .arg(format!("-p {}", self.port));
        let out = run_bounded(&mut start, STEP, "pg_ctl start");
        if out.status.success() {
            self.running = true;
            return Ok(());
        }
        // pg_ctl may give up while postgres still starts: make sure nothing is left behind.
        self.pg_ctl_stop_quietly("immediate");
        let log = self.log();
        Err(format!(
            "pg_ctl start on port {} failed ({}):\n{}{}\nserver log:\n{}",
            self.port,
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            log.get(before..).unwrap_or(&log)
        ))
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        assert!(self.running, "pg_ctl stop: the cluster is not running");
        let mut stop = self.command("pg_ctl");
        stop.args(["stop", "-w", "-t", PG_CTL_WAIT, "-m", mode, "-D"])
            .arg(self.data());
        self.run(&mut stop, "pg_ctl stop");
        self.running = false;
    }

    fn pg_ctl_stop_quietly(&mut self, mode: &str) {
        let mut stop = self.command("pg_ctl");
        stop.args(["stop", "-w", "-t", PG_CTL_WAIT, "-m", mode, "-D"])
            .arg(self.data());
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_bounded(&mut stop, STEP, "pg_ctl stop")
        }));
        self.running = false;
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            self.pg_ctl_stop_quietly("immediate");
        }
        // Should pg_ctl have failed, the postmaster's pid is in its lock file; it is killed only
        // if that process is this cluster's postmaster (a stale file may name another process).
        let data = self.data();
        let pid = std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|p| p.trim().parse::<u32>().ok()));
        if let Some(pid) = pid {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy());
            if ours {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// The folder of Debian's PostgreSQL server binaries (the newest version installed), or
/// `LINKGATE_PG_BIN`.
fn server_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("LINKGATE_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) if bin.join("psql").exists() => bin,
        _ => panic!(
            "PostgreSQL's server binaries (initdb, pg_ctl, postgres, psql) are not in \
             /usr/lib/postgresql/<version>/bin: run tools/test-setup.sh (it installs Debian's \
             postgresql), or point LINKGATE_PG_BIN at them"
        ),
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user Debian's package creates.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "the tests run as root, and PostgreSQL will not: they need the `postgres` user \
             that Debian's postgresql package creates (run tools/test-setup.sh): {}",
            text(&out.stderr)
        );
        text(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id from `id`")
    };
    (id("-u"), id("-g"))
}

/// A port free on 127.0.0.1 a moment ago (bind and release); `start` retries if it was taken.
fn free_port() -> u16 {
    super::free_port()
}
