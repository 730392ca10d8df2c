//! Reading a request body within `max_body_bytes` and `body_read_timeout_secs`, or the answer
//! that refuses it: shared by every route that takes a body.

use super::request::{self, BodyError};
use super::response::{self, Reply};
use crate::oauth::server::Server;
use hyper::body::Incoming;
use hyper::Request;

/// The body, or the reply that refuses it (413, 408 or 400).
pub(super) async fn read(
    app: &Server,
    req: Request<Incoming>,
) -> Result<hyper::body::Bytes, Reply> {
    let limits = &app.config.limits;
    let deadline = std::time::Duration::from_secs(limits.body_read_timeout_secs);
    match request::body(req, limits.max_body_bytes, deadline).await {
        Ok(body) => Ok(body),
        Err(BodyError::TooLarge) => Err(response::closing(413, "request body too large\n")),
        Err(BodyError::TooSlow) => Err(response::closing(
            408,
            "the request body did not arrive in time\n",
        )),
        Err(BodyError::Io) => Err(response::text(400, "could not read the request body\n")),
    }
}
