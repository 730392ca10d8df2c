//! The DER certificate reader `--doctor` runs on whatever certificate a server presents: any
//! bytes must give a certificate or `None`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkgate::base::der::Certificate;

fuzz_target!(|data: &[u8]| {
    if let Some(cert) = Certificate::parse(data) {
        // The slices it returns lie inside the input.
        assert!(cert.issuer.len() <= data.len());
        assert!(cert.subject.len() <= data.len());
    }
});
