//! A certificate's end of validity and whether it signed itself, which rustls checks but does
//! not show: read with the `x509-cert` crate (RustCrypto, already in the build through the
//! PostgreSQL client's TLS), so linkgate keeps no DER parser of its own.

use x509_cert::der::{Decode, Encode};

pub struct Certificate {
    /// The DER-encoded names, compared byte for byte.
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    /// Unix seconds.
    pub not_after: u64,
    /// Unix seconds (for the ACME renewal schedule: a third of the lifetime).
    pub not_before: u64,
}

impl Certificate {
    /// RFC 5280 §4.1. Any bytes give a certificate or `None` (fuzzed: `fuzz/fuzz_targets/der.rs`).
    pub fn parse(der: &[u8]) -> Option<Certificate> {
        let cert = x509_cert::Certificate::from_der(der).ok()?;
        let tbs = &cert.tbs_certificate;
        Some(Certificate {
            issuer: tbs.issuer.to_der().ok()?,
            subject: tbs.subject.to_der().ok()?,
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Certificate;

    fn certificate(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> rcgen::Certificate {
        let mut params = rcgen::CertificateParams::new(vec!["auth.example".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    /// Both time forms of RFC 5280 §4.1.2.5: UTCTime up to 2049, GeneralizedTime from 2050.
    #[test]
    fn reads_both_time_forms() {
        let cert = certificate((1970, 1, 1), (2026, 11, 18));
        let read = Certificate::parse(cert.der()).expect("a certificate");
        assert_eq!(read.not_before, 0);
        assert_eq!(read.not_after, 1_794_960_000);
        let cert = certificate((2026, 1, 1), (2051, 1, 1));
        let read = Certificate::parse(cert.der()).expect("a certificate");
        assert_eq!(read.not_after, 2_556_144_000);
        assert_eq!(read.issuer, read.subject, "self-signed");
    }

    #[test]
    fn truncated_or_trailing_input_is_refused() {
        assert!(Certificate::parse(&[]).is_none());
        assert!(Certificate::parse(&[0x30, 0x82, 0xff]).is_none());
        assert!(Certificate::parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        let der = certificate((2026, 1, 1), (2027, 1, 1)).der().to_vec();
        for cut in [1, der.len() / 2, der.len() - 1] {
            assert!(Certificate::parse(&der[..cut]).is_none(), "cut at {cut}");
        }
        let mut corrupted = der.clone();
        corrupted[der.len() / 3] ^= 0xff;
        let _ = Certificate::parse(&corrupted); // any answer, no panic
    }
}
