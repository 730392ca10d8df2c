//! Checks of single values that several sections share: a path relative to the config file's
//! folder, a redirect URI.

use crate::base::url;
use std::path::{Path, PathBuf};

/// `path` as written if absolute, else relative to the config file's directory.
pub(super) fn relative(dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// RFC 6749 §3.1.2 and RFC 9700 §2.1: absolute, no fragment, https unless on this machine.
pub(super) fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = url::parse(uri).ok_or("is not an absolute https URL")?;
    if uri.contains('#') {
        return Err("must not contain a fragment (#)");
    }
    let loopback = matches!(url.host, "localhost" | "[::1]")
        || url
            .host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !url.https && !loopback {
        return Err("must use https (plain http is allowed only for localhost)");
    }
    Ok(())
}
