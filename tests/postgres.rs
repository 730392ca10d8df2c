//! linkgate on PostgreSQL (issue 14), black-box: two linkgate processes on one throwaway
//! database (`common::postgres`), speaking HTTP to each, and the CLI against the database while
//! they run.

mod common;
use common::postgres::PgCluster;
use std::os::unix::fs::MetadataExt;

/// The harness itself: a cluster starts, answers SQL, keeps its data across a clean stop and a
/// crash, and comes back on the same port.
#[test]
fn the_throwaway_cluster_starts_stops_and_keeps_its_data() {
    let mut pg = PgCluster::start();
    assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"));
    assert_eq!(pg.psql("SELECT current_database()"), "linkgate");
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')");
    pg.stop();
    pg.start_again();
    assert_eq!(pg.psql("SELECT v FROM t"), "kept");
    pg.psql("INSERT INTO t VALUES ('after a crash')");
    pg.kill();
    pg.start_again();
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "2");
    assert_eq!(pg.psql("SHOW server_encoding"), "UTF8");
    // It runs as an unprivileged user, never as root.
    let owner = std::fs::metadata(format!("/proc/{}", pg.postmaster_pid()))
        .expect("the postmaster's /proc entry")
        .uid();
    assert_ne!(owner, 0, "postgres runs as root");
    let folder = pg.folder().to_path_buf();
    drop(pg);
    assert!(!folder.exists(), "{} left behind", folder.display());
}

#[test]
fn the_tls_cluster_speaks_only_tls_with_a_certificate_from_its_ca() {
    let pg = PgCluster::start_tls();
    assert_eq!(pg.psql("SHOW ssl"), "on");
    assert_eq!(
        pg.psql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
        "t"
    );
    let ca = std::fs::read_to_string(pg.ca_pem()).expect("ca.pem");
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");
}
