//! The certificate reader (`x509-cert` underneath) `--doctor` runs on whatever certificate a server presents: any
//! bytes must give a certificate or `None`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkgate::base::der::Certificate;

fuzz_target!(|data: &[u8]| {
    if let Some(cert) = Certificate::parse(data) {
        // The names it returns are re-encoded from the input, never longer.
        assert!(cert.issuer.len() <= data.len());
        assert!(cert.subject.len() <= data.len());
    }
});
