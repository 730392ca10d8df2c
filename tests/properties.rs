//! Property tests: the parsers and the token endpoint's request handling, fed arbitrary input,
//! never panic, never report a server fault, and round-trip what they should. Bounded: each
//! property runs a fixed number of cases.

use linkgate::base::urlencoded::{self, Params};
use linkgate::oauth::client::{BasicCredentials, Caller};
use linkgate::oauth::server::Server;
use linkgate::{config, http::request, oauth, store::Store};
use proptest::prelude::*;
use std::sync::Arc;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn form_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(params) = Params::parse(&bytes) {
            let _ = params.single("grant_type");
        }
    }

    #[test]
    fn encode_then_decode_is_identity(value in any::<String>()) {
        let encoded = urlencoded::encode(&value);
        prop_assert_eq!(urlencoded::decode(encoded.as_bytes()).unwrap(), value);
    }

    #[test]
    fn appended_query_parameters_come_back_unchanged(state in any::<String>(), code in "[A-Za-z0-9_-]{1,64}") {
        let uri = urlencoded::append_query("https://layla.amazon.com/api/skill/link/M2X?a=b", &[("code", &code), ("state", &state)]);
        let query = uri.split_once('?').unwrap().1;
        let params = Params::parse(query.as_bytes()).unwrap();
        prop_assert_eq!(params.single("code").unwrap(), Some(code.as_str()));
        let expected = if state.is_empty() { None } else { Some(state.as_str()) };
        prop_assert_eq!(params.single("state").unwrap(), expected);
    }

    #[test]
    fn authorization_and_cookie_headers_never_panic(value in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(header) = hyper::header::HeaderValue::from_bytes(&value) {
            let mut headers = hyper::HeaderMap::new();
            headers.insert(hyper::header::AUTHORIZATION, header.clone());
            headers.insert(hyper::header::COOKIE, header);
            let _ = request::basic_credentials(&headers);
            let _ = request::bearer_token(&headers);
            let _ = request::csrf_cookie(&headers, request::CSRF_COOKIE_HTTPS);
        }
    }

    #[test]
    fn basic_credentials_round_trip(id in any::<String>(), secret in any::<String>()) {
        use base64::Engine;
        let raw = format!("{}:{}", urlencoded::encode(&id), urlencoded::encode(&secret));
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw));
        let mut headers = hyper::HeaderMap::new();
        headers.insert(hyper::header::AUTHORIZATION, value.parse().unwrap());
        let creds = request::basic_credentials(&headers).unwrap().unwrap();
        prop_assert_eq!(creds.client_id, id);
        prop_assert_eq!(creds.secret.expose(), secret.as_str());
    }
}

fn test_app() -> (tempfile::TempDir, Arc<Server>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("linkgate.toml");
    std::fs::write(
        &file,
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1"
[storage]
path = "data"
[[clients]]
id = "alexa-skill"
secret = "alexa-secret-0123456789"
redirect_uris = ["https://layla.amazon.com/api/skill/link/M2X"]
"#,
    )
    .unwrap();
    let config = config::load(&file).unwrap();
    let store = Store::open(&config.storage_path, config.cache_bytes).unwrap();
    (dir, Server::new(config, store).expect("app"))
}

/// Token requests built from the parameters a client could send, with arbitrary values.
fn token_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("grant_type".to_string()),
        Just("code".to_string()),
        Just("refresh_token".to_string()),
        Just("redirect_uri".to_string()),
        Just("client_id".to_string()),
        Just("client_secret".to_string()),
        Just("code_verifier".to_string()),
        Just("scope".to_string()),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![
        Just("authorization_code".to_string()),
        Just("refresh_token".to_string()),
        Just("alexa-skill".to_string()),
        Just("alexa-secret-0123456789".to_string()),
        any::<String>(),
    ];
    proptest::collection::vec((name, value), 0..8).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={}", urlencoded::encode(v)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    })
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn the_token_endpoint_answers_any_request_with_a_client_error(
        body in prop_oneof![token_body(), proptest::collection::vec(any::<u8>(), 0..256)],
        basic in proptest::option::of(("[ -~]{0,20}", "[ -~]{0,30}")),
    ) {
        let (_dir, app) = test_app();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let outcome = runtime.block_on(async {
            let params = Params::parse(&body)?;
            let basic = basic.map(|(id, secret)| BasicCredentials {
                client_id: id,
                secret: linkgate::base::secret::Secret::new(secret),
            });
            let caller = Caller { basic, ip: std::net::Ipv4Addr::LOCALHOST.into() };
            oauth::token::exchange(&app, &params, caller).await
        });
        if let Err(error) = outcome {
            prop_assert!((400..500).contains(&error.status()), "{error}");
        }
    }
}

/// A real certificate's DER and where its notAfter time's 13 bytes start.
fn certificate_template() -> &'static (Vec<u8>, usize) {
    static TEMPLATE: std::sync::OnceLock<(Vec<u8>, usize)> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let at = der.windows(13).position(|w| w == b"300101000000Z").unwrap();
        (der, at)
    })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn the_der_reader_never_panics_on_any_validity_bytes(time in "[0-9Zé€\u{7f}+-]{0,13}") {
        let (template, at) = certificate_template();
        // Exactly 13 bytes, as the field's length says: padded with digits, or cut.
        let mut bytes = time.into_bytes();
        bytes.resize(13, b'0');
        let mut der = template.clone();
        der[*at..*at + 13].copy_from_slice(&bytes);
        let _ = linkgate::base::der::Certificate::parse(&der);
    }

    #[test]
    fn the_der_reader_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = linkgate::base::der::Certificate::parse(&bytes);
    }
}
