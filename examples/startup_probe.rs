use linkgate::secret;
use linkgate::store::{CodeRecord, Grant, Store, TokenRecord};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir =
        std::path::PathBuf::from(std::env::args().nth(2).unwrap_or("/tmp/probe-store".into()));
    if !dir.exists() {
        let store = Store::open(&dir, 16 << 20).unwrap();
        let now = linkgate::store::now();
        let grant = Grant {
            id: secret::new_id(),
            sub: "s".into(),
            username: "alice".into(),
            client_id: "alexa".into(),
            scope: "profile".into(),
            created_at: now,
            expires_at: 0,
        };
        let code = secret::new_token("lgc_");
        let record = CodeRecord {
            client_id: "alexa".into(),
            redirect_uri: "https://x".into(),
            redirect_uri_given: true,
            sub: "s".into(),
            username: "alice".into(),
            scope: "profile".into(),
            code_challenge: None,
            expires_at: now + 60,
            redeemed_by: None,
        };
        store.put_code(&code.key(), &record).unwrap();
        let rt = secret::new_token("lgrt_");
        store
            .redeem_code(
                &code.key(),
                now,
                &grant,
                &[(rt.key(), TokenRecord::refresh(&grant, "profile", now))],
            )
            .unwrap();
        let t = Instant::now();
        for i in 0..n {
            let record = TokenRecord::access(&grant, "profile", now, 86400);
            let key = secret::sha256(&(i as u64).to_le_bytes());
            store
                .refresh(&rt.key(), now, (&key, &record), None)
                .unwrap();
        }
        store.flush_blocking().unwrap();
        eprintln!("filled {n} in {:?}", t.elapsed());
    }
    let t = Instant::now();
    let store = Store::open(&dir, 256 << 20).unwrap();
    eprintln!("open: {:?}", t.elapsed());
    let t = Instant::now();
    store
        .put_code(
            &[9u8; 32],
            &CodeRecord {
                client_id: "alexa".into(),
                redirect_uri: "https://x".into(),
                redirect_uri_given: true,
                sub: "s".into(),
                username: "alice".into(),
                scope: "profile".into(),
                code_challenge: None,
                expires_at: 1,
                redeemed_by: None,
            },
        )
        .unwrap();
    store.flush_blocking().unwrap();
    drop(store);
    let store = Store::open(&dir, 256 << 20).unwrap();
    eprintln!("drop + reopen in-process: {:?}", t.elapsed());
    let t = Instant::now();
    let c = store.token_count();
    eprintln!("token_count {c}: {:?}", t.elapsed());
    let t = Instant::now();
    let key = secret::sha256(&(7u64).to_le_bytes());
    let found = store.token(&key, linkgate::store::now()).unwrap().is_some();
    eprintln!("first lookup {found}: {:?}", t.elapsed());
    let t = Instant::now();
    for i in 0..100_000u64 {
        let key = secret::sha256(&(i * 7 % n as u64).to_le_bytes());
        let _ = store.token(&key, linkgate::store::now()).unwrap();
    }
    eprintln!("100k random lookups: {:?}", t.elapsed());
}
