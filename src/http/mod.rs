//! The HTTP layer on plain hyper 1.x: accept loop (`server`), which connections get in
//! (`admission`; token clients beyond an address's share: `vetting`), path to handler
//! (`routes`), header parsing (`request`) and response building (`response`). It parses, calls
//! `oauth`, and renders; it decides nothing about OAuth itself.

mod account_routes;
pub(crate) mod admission;
mod app_routes;
mod body;
mod json_string;
mod refusal;
pub mod request;
mod resource_body;
mod response;
mod routes;
pub mod server;
pub mod tls;
mod token_body;
mod vetting;

/// Why a listener on `address` (`what`: which setting, or empty) could not be bound, with the
/// fix for a privileged port.
pub fn bind_error(address: std::net::SocketAddr, what: &str, e: &std::io::Error) -> String {
    let hint = match (e.kind(), address.port()) {
        (std::io::ErrorKind::PermissionDenied, port) if port < 1024 => format!(
            ": port {port} needs the CAP_NET_BIND_SERVICE capability — in systemd/linkgate.service \
             uncomment AmbientCapabilities=CAP_NET_BIND_SERVICE and \
             CapabilityBoundingSet=CAP_NET_BIND_SERVICE (and set PrivateUsers=no); by hand, \
             `setcap cap_net_bind_service=+ep $(command -v linkgate)`"
        ),
        (std::io::ErrorKind::AddrInUse, _) => ": another process listens there".to_string(),
        _ => String::new(),
    };
    format!("cannot listen on {address}{what}: {e}{hint}")
}

#[cfg(test)]
mod tests {
    use super::bind_error;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_privileged_port_refused_names_the_capability_and_the_unit() {
        let denied = Error::from(ErrorKind::PermissionDenied);
        let said = bind_error("0.0.0.0:443".parse().unwrap(), "", &denied);
        assert!(
            said.starts_with("cannot listen on 0.0.0.0:443: ")
                && said.contains("CAP_NET_BIND_SERVICE")
                && said.contains("systemd/linkgate.service"),
            "{said}"
        );
        let said = bind_error("0.0.0.0:8443".parse().unwrap(), "", &denied);
        assert!(!said.contains("CAP_NET_BIND_SERVICE"), "{said}");
        let used = Error::from(ErrorKind::AddrInUse);
        let said = bind_error("[::]:80".parse().unwrap(), " (server.http_listen)", &used);
        assert!(
            said.contains("(server.http_listen)") && said.contains("another process"),
            "{said}"
        );
    }
}
