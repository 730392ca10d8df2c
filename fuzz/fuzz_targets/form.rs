//! Form and query parsing (every /authorize query and every POST body goes through it).
#![no_main]
use libfuzzer_sys::fuzz_target;
use linkgate::base::urlencoded::{self, Params};

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = Params::parse(data) {
        for name in ["grant_type", "code", "state", "redirect_uri", "client_id"] {
            if let Ok(Some(value)) = params.single(name) {
                let encoded = urlencoded::encode(value);
                assert_eq!(urlencoded::decode(encoded.as_bytes()).as_deref(), Ok(value));
            }
        }
    }
});
