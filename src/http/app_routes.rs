//! The routes the operator's own apps call (`/app/*`, `src/apps/`) and the universal-link
//! association files. Parse the credentials and parameters, call `apps`, answer JSON: errors are
//! `{"error", "message"}` with the status `AppError` gives.

use super::request;
use super::response::{self, Reply};
use crate::apps::customer::{self, Customer, Presented};
use crate::apps::{alexa, authorize, files, AppError};
use crate::base::urlencoded::{self, Params};
use crate::oauth::linking_log::Step;
use crate::oauth::server::Server;
use crate::oauth::OAuthError;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request};
use serde::Serialize;
use std::net::IpAddr;

const AASA: &str = "/.well-known/apple-app-site-association";
const ASSET_LINKS: &str = "/.well-known/assetlinks.json";
/// The user name the operator's backend uses in HTTP Basic.
const BACKEND: &str = "backend";

/// Whether `path` is one of these routes.
pub fn handles(path: &str) -> bool {
    path.starts_with("/app/") || path == AASA || path == ASSET_LINKS
}

pub async fn route(app: &Server, req: Request<Incoming>, path: &str, ip: IpAddr) -> Reply {
    let method = req.method().clone();
    match (path, method) {
        (AASA, Method::GET) => association(
            app.config
                .apps
                .as_ref()
                .and_then(|apps| files::apple_app_site_association(apps, app.config.public_path())),
        ),
        (ASSET_LINKS, Method::GET) => {
            association(app.config.apps.as_ref().and_then(files::asset_links))
        }
        (AASA | ASSET_LINKS, _) => response::method_not_allowed("GET"),
        (
            "/app/authorize" | "/app/alexa/start" | "/app/alexa/finish" | "/app/alexa/unlink",
            Method::POST,
        )
        | ("/app/alexa/status", Method::GET) => {
            let path = path.to_string();
            let method = req.method().clone();
            match call(app, req, &path, ip).await {
                Ok(reply) => reply,
                Err(error) => {
                    let mut reply = app_error(&error);
                    // A refusal (not a fault of ours or Amazon's): logged with its reason.
                    if error.status() < 500 {
                        let reason = format!("{method} {path}: {}", error.message());
                        let reference =
                            app.linking
                                .refused(Step::App, None, false, error.code(), &reason);
                        if let Ok(value) = HeaderValue::from_str(reference.as_str()) {
                            reply.headers_mut().insert(response::REFERENCE, value);
                        }
                    }
                    reply
                }
            }
        }
        ("/app/authorize" | "/app/alexa/start" | "/app/alexa/finish" | "/app/alexa/unlink", _) => {
            response::method_not_allowed("POST")
        }
        ("/app/alexa/status", _) => response::method_not_allowed("GET"),
        // The app's universal link opened in a browser: the app is not installed on this phone.
        ("/app/alexa", Method::GET) => response::text(
            200,
            "This link finishes linking your account with Alexa in our app.\n\
             Open it on the phone where the app is installed, or link from the Alexa app.\n",
        ),
        _ => response::text(404, "not found\n"),
    }
}

/// An association file, or 404 when `[apps]` does not describe the apps.
fn association(file: Option<serde_json::Value>) -> Reply {
    match file {
        Some(file) => response::json(200, &file),
        None => response::text(404, "not found\n"),
    }
}

async fn call(
    app: &Server,
    req: Request<Incoming>,
    path: &str,
    ip: IpAddr,
) -> Result<Reply, AppError> {
    let presented = presented(req.headers())?;
    let form = parameters(app, req).await?;
    let params = Params::parse(&form).map_err(|e| AppError::BadRequest(e.into()))?;
    let get = |name: &str| {
        params
            .single(name)
            .map_err(|e| AppError::BadRequest(e.into()))
    };
    let customer: Customer = customer::identify(app, presented, get("subject")?, ip).await?;
    let client_id = get("client_id")?;
    match path {
        "/app/authorize" => {
            let authorized = authorize::authorize(app, &customer, &form).await?;
            Ok(response::json(
                200,
                &AuthorizeBody {
                    code: authorized.code,
                    redirect_to: authorized.redirect_to,
                },
            ))
        }
        "/app/alexa/start" => Ok(response::json(
            200,
            &alexa::start(app, &customer, client_id)?,
        )),
        "/app/alexa/finish" => {
            let required = |name: &str| {
                get(name)?.filter(|v| !v.is_empty()).ok_or_else(|| {
                    AppError::BadRequest(OAuthError::InvalidRequest(format!("{name} is required")))
                })
            };
            let (code, state) = (required("code")?, required("state")?);
            Ok(response::json(
                200,
                &alexa::finish(app, &customer, code, state).await?,
            ))
        }
        "/app/alexa/status" => Ok(response::json(
            200,
            &alexa::status(app, &customer, client_id).await?,
        )),
        _ => Ok(response::json(
            200,
            &alexa::unlink(app, &customer, client_id).await?,
        )),
    }
}

#[derive(Serialize)]
struct AuthorizeBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    redirect_to: String,
}

/// The app's session token (Bearer) or the backend's secret (Basic `backend:<secret>`).
fn presented(headers: &hyper::HeaderMap) -> Result<Presented, AppError> {
    let unauthorized = |e: OAuthError| AppError::Unauthorized(e.description());
    if let Some(basic) = request::basic_credentials(headers).map_err(unauthorized)? {
        if basic.client_id != BACKEND {
            return Err(AppError::Unauthorized(format!(
                "HTTP Basic is for the operator's backend: the user name must be `{BACKEND}`"
            )));
        }
        return Ok(Presented::Backend(basic.secret));
    }
    match request::bearer_token(headers).map_err(unauthorized)? {
        Some(token) => Ok(Presented::Session(token.to_string())),
        None => Ok(Presented::None),
    }
}

/// The request's parameters as a form: the query of a GET; the body of a POST, form-encoded or
/// a JSON object of strings (re-encoded, so both are validated by the same code).
async fn parameters(app: &Server, req: Request<Incoming>) -> Result<Vec<u8>, AppError> {
    if req.method() == Method::GET {
        return Ok(req.uri().query().unwrap_or("").as_bytes().to_vec());
    }
    let json = is_json(req.headers());
    if !json && !request::is_form(req.headers()) {
        return Err(bad(
            "the body must be application/x-www-form-urlencoded or application/json",
        ));
    }
    let body: Bytes = super::body::read(app, req)
        .await
        .map_err(|_| bad("the request body could not be read (too large or too slow)"))?;
    if !json {
        return Ok(body.to_vec());
    }
    json_as_form(&body)
}

fn bad(why: &str) -> AppError {
    AppError::BadRequest(OAuthError::InvalidRequest(why.into()))
}

fn is_json(headers: &hyper::HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `{"client_id": "x", "state": "y"}` as `client_id=x&state=y`. Values must be strings (or
/// numbers, written as JSON writes them); `null` is the same as absent.
fn json_as_form(body: &[u8]) -> Result<Vec<u8>, AppError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the body is not valid JSON"))?;
    let serde_json::Value::Object(object) = value else {
        return Err(bad("the JSON body must be an object"));
    };
    let mut form = Vec::new();
    for (name, value) in &object {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Null => continue,
            _ => return Err(bad(&format!("`{name}` must be a string"))),
        };
        if !form.is_empty() {
            form.push(b'&');
        }
        form.extend_from_slice(urlencoded::encode(name).as_bytes());
        form.push(b'=');
        form.extend_from_slice(urlencoded::encode(&text).as_bytes());
    }
    Ok(form)
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

fn app_error(error: &AppError) -> Reply {
    let mut reply = response::json(
        error.status(),
        &ErrorBody {
            error: error.code(),
            message: error.message(),
        },
    );
    let headers = reply.headers_mut();
    match error {
        AppError::Unauthorized(_) => {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        AppError::Throttled(wait) => {
            headers.insert(RETRY_AFTER, HeaderValue::from(*wait));
        }
        _ => {}
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_become_forms_that_parse_back() {
        let form = json_as_form(br#"{"state":"a&b=c d","n":5,"gone":null}"#).unwrap();
        let params = Params::parse(&form).unwrap();
        assert_eq!(params.single("state").unwrap(), Some("a&b=c d"));
        assert_eq!(params.single("n").unwrap(), Some("5"));
        assert_eq!(params.single("gone").unwrap(), None);
        assert!(json_as_form(br#"{"state":["x"]}"#).is_err());
        assert!(json_as_form(b"[1]").is_err());
        assert!(json_as_form(b"{").is_err());
    }

    #[test]
    fn basic_must_name_the_backend() {
        let mut headers = hyper::HeaderMap::new();
        // "someone:secret"
        headers.insert(
            "authorization",
            "Basic c29tZW9uZTpzZWNyZXQ=".parse().unwrap(),
        );
        assert!(matches!(
            presented(&headers),
            Err(AppError::Unauthorized(_))
        ));
        // "backend:secret"
        headers.insert(
            "authorization",
            "Basic YmFja2VuZDpzZWNyZXQ=".parse().unwrap(),
        );
        assert!(matches!(presented(&headers), Ok(Presented::Backend(_))));
    }
}
