//! Authorization (Basic, Bearer) and Cookie header parsing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use linkgate::http::request;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = hyper::header::HeaderValue::from_bytes(data) {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(hyper::header::AUTHORIZATION, value.clone());
        headers.insert(hyper::header::COOKIE, value);
        let _ = request::basic_credentials(&headers);
        let _ = request::bearer_token(&headers);
        let _ = request::csrf_cookie(&headers, request::CSRF_COOKIE_HTTPS);
    }
});
