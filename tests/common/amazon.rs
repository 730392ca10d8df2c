//! Stand-ins for what linking from the operator's app talks to, on one plain-HTTP hyper server
//! on 127.0.0.1:0: the operator's session API (`GET /v1/me`), Login with Amazon's token endpoint
//! (`POST /auth/o2/token`), the Alexa API endpoint lookup (`GET /v1/alexaApiEndpoint`, answering
//! with this server as the region host) and the skill enablement API
//! (`/v1/users/~current/skills/{id}/enablement`). A test scripts the answers at run time and
//! reads back every request the server saw.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The app sessions the stand-in session API knows: token, subject, name.
pub const SESSIONS: [(&str, &str, &str); 2] = [
    ("session-rita-0123456789", "cust-1001", "Rita Rider"),
    ("session-bob-0123456789", "cust-2002", "Bob Boarder"),
];
pub const RITA: &str = SESSIONS[0].0;
pub const BOB: &str = SESSIONS[1].0;
/// The Amazon code the stand-in LWA accepts: any code starting with it; the rest names the
/// Amazon user (`ANamazon-code-rita`).
pub const AMAZON_CODE: &str = "ANamazon-code";
pub const LWA_CLIENT_ID: &str = "amzn1.application-oa2-client.test";
pub const LWA_SECRET: &str = "lwa-secret-do-not-log-0123";
pub const SKILL_ID: &str = "amzn1.ask.skill.test-0001";

/// A request the stand-in saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

/// What the stand-in answers; a test changes it at run time.
#[derive(Debug, Clone)]
pub struct Script {
    /// The session API's status for a known session (None: 200 with the customer).
    pub session_status: Option<u16>,
    /// Login with Amazon's status and body for the code exchange (None: 200 with tokens).
    pub lwa: Option<(u16, String)>,
    /// `expires_in` as a JSON string rather than a number.
    pub lwa_expires_as_string: bool,
    /// The access tokens' lifetime LWA gives.
    pub lwa_expires_in: u64,
    /// The enablement POST's status and body (None: 201 enabled and linked).
    pub enable: Option<(u16, String)>,
    /// The enablement POST waits this long before answering.
    pub enable_delay: Duration,
    /// The region hosts the endpoint lookup names before this server itself.
    pub extra_hosts_first: Vec<String>,
    /// The enablement DELETE's status.
    pub disable_status: u16,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            session_status: None,
            lwa: None,
            lwa_expires_as_string: false,
            lwa_expires_in: 3600,
            enable: None,
            enable_delay: Duration::ZERO,
            extra_hosts_first: Vec::new(),
            disable_status: 204,
        }
    }
}

struct Shared {
    addr: SocketAddr,
    script: Mutex<Script>,
    seen: Mutex<Vec<Seen>>,
    /// Tokens LWA issued, and whose (the Amazon user: the code's suffix) each is.
    issued: Mutex<u32>,
    owners: Mutex<HashMap<String, String>>,
    /// The Amazon users with the skill enabled, and the linkgate code it was linked with.
    enabled: Mutex<HashMap<String, String>>,
}

pub struct FakeAmazon {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeAmazon {
    pub fn start() -> FakeAmazon {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            addr,
            script: Mutex::new(Script::default()),
            seen: Mutex::new(Vec::new()),
            issued: Mutex::new(0),
            owners: Mutex::new(HashMap::new()),
            enabled: Mutex::new(HashMap::new()),
        });
        runtime.spawn(accept_loop(listener, shared.clone()));
        FakeAmazon {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.shared.script.lock().unwrap());
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests whose path ends with `suffix` (and method, when given).
    pub fn calls(&self, method: &str, suffix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.path.ends_with(suffix))
            .collect()
    }

    pub fn enablements(&self) -> Vec<Seen> {
        self.calls("POST", "/enablement")
    }

    /// The linkgate code in the last enablement request (`accountLinkRequest.authCode`).
    pub fn last_auth_code(&self) -> String {
        let last = self.enablements().pop().expect("an enablement call");
        let body: serde_json::Value = serde_json::from_str(&last.body).expect("JSON body");
        body["accountLinkRequest"]["authCode"]
            .as_str()
            .expect("authCode")
            .to_string()
    }

    /// `[apps]` for the session API, and `[clients.alexa_app]` on `client` for the rest.
    pub fn configure(&self, config: super::TestConfig, client: &str) -> super::TestConfig {
        let alexa_app = toml::toml! {
            skill_id = SKILL_ID
            stage = "development"
            lwa_client_id = LWA_CLIENT_ID
            lwa_client_secret = LWA_SECRET
            app_redirect_uri = APP_LINK
        };
        let mut alexa_app = toml::Value::Table(alexa_app);
        let table = alexa_app.as_table_mut().expect("table");
        table.insert("lwa_token_url".into(), self.url("/auth/o2/token").into());
        table.insert(
            "alexa_endpoint_url".into(),
            self.url("/v1/alexaApiEndpoint").into(),
        );
        config
            .set("apps.session_url", self.url("/v1/me"))
            .set("apps.subject", "/user/id")
            .set("apps.display_name", "/user/name")
            .client(
                client,
                "redirect_uris",
                toml::Value::Array(vec![super::ALEXA_REDIRECT.into(), APP_LINK.into()]),
            )
            .client(client, "alexa_app", alexa_app)
    }
}

/// The operator app's universal link, registered for the Alexa client.
pub const APP_LINK: &str = "https://auth.example-taxi.test/app/alexa";

impl Drop for FakeAmazon {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(shared.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn json(status: u16, body: &serde_json::Value) -> Reply {
    text(status, body.to_string())
}

fn text(status: u16, body: String) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await?.to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    shared.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let script = shared.script.lock().unwrap().clone();
    let bearer = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let reply = match (method.as_str(), path.as_str()) {
        ("GET", "/v1/me") => match SESSIONS.iter().find(|(token, _, _)| *token == bearer) {
            Some(_) if script.session_status.is_some() => json(
                script.session_status.unwrap_or(500),
                &serde_json::json!({"error": "scripted"}),
            ),
            Some((_, id, name)) => {
                json(200, &serde_json::json!({"user": {"id": id, "name": name}}))
            }
            None => json(401, &serde_json::json!({"error": "not signed in"})),
        },
        ("POST", "/auth/o2/token") => lwa(&shared, &script, &body),
        ("GET", "/v1/alexaApiEndpoint") if bearer.starts_with("amz-access-") => {
            let mut hosts = script.extra_hosts_first.clone();
            hosts.push(shared.addr.to_string());
            json(200, &serde_json::json!({"endpoints": hosts}))
        }
        (_, "/v1/alexaApiEndpoint") => json(401, &serde_json::json!({"message": "bad token"})),
        (_, p) if p.ends_with("/enablement") => {
            if p != format!("/v1/users/~current/skills/{SKILL_ID}/enablement") {
                json(404, &serde_json::json!({"message": "no such skill"}))
            } else {
                let owner = shared.owners.lock().unwrap().get(&bearer).cloned();
                match owner {
                    Some(owner) => enablement(&shared, &script, &method, &owner, &body).await,
                    None => json(401, &serde_json::json!({"message": "Invalid access token"})),
                }
            }
        }
        _ => json(404, &serde_json::json!({"message": "not found"})),
    };
    Ok(reply)
}

fn lwa(shared: &Shared, script: &Script, body: &str) -> Reply {
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (super::decode(k), super::decode(v)))
        .collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("client_id") != LWA_CLIENT_ID || field("client_secret") != LWA_SECRET {
        return json(
            401,
            &serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
        );
    }
    let owner = match field("grant_type") {
        "authorization_code" => {
            if let Some((status, body)) = &script.lwa {
                return text(*status, body.clone());
            }
            field("code")
                .strip_prefix(AMAZON_CODE)
                .filter(|_| field("redirect_uri") == APP_LINK)
                .map(str::to_string)
        }
        "refresh_token" => shared
            .owners
            .lock()
            .unwrap()
            .get(field("refresh_token"))
            .cloned(),
        _ => None,
    };
    let Some(owner) = owner else {
        return json(
            400,
            &serde_json::json!({"error": "invalid_grant", "error_description": "The request has an invalid grant parameter : code"}),
        );
    };
    let n = {
        let mut issued = shared.issued.lock().unwrap();
        *issued += 1;
        *issued
    };
    let mut owners = shared.owners.lock().unwrap();
    owners.insert(format!("amz-access-{n}"), owner.clone());
    owners.insert(format!("amz-refresh-{n}"), owner);
    let expires: serde_json::Value = if script.lwa_expires_as_string {
        script.lwa_expires_in.to_string().into()
    } else {
        script.lwa_expires_in.into()
    };
    json(
        200,
        &serde_json::json!({
            "access_token": format!("amz-access-{n}"),
            "refresh_token": format!("amz-refresh-{n}"),
            "token_type": "bearer",
            "expires_in": expires,
        }),
    )
}

async fn enablement(
    shared: &Shared,
    script: &Script,
    method: &str,
    owner: &str,
    body: &str,
) -> Reply {
    let linked = serde_json::json!({
        "skill": {"stage": "development", "id": SKILL_ID},
        "user": {"id": "amzn1.ask.account.test"},
        "accountLink": {"status": "LINKED"},
        "status": "ENABLED",
    });
    match method {
        "POST" => {
            tokio::time::sleep(script.enable_delay).await;
            if let Some((status, body)) = &script.enable {
                return text(*status, body.clone());
            }
            if shared.enabled.lock().unwrap().contains_key(owner) {
                return json(
                    409,
                    &serde_json::json!({"message": "The skill is already enabled"}),
                );
            }
            let request: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let code = request["accountLinkRequest"]["authCode"]
                .as_str()
                .unwrap_or("");
            if code.is_empty() || request["accountLinkRequest"]["redirectUri"] != APP_LINK {
                return json(
                    400,
                    &serde_json::json!({"message": "bad accountLinkRequest"}),
                );
            }
            shared
                .enabled
                .lock()
                .unwrap()
                .insert(owner.to_string(), code.to_string());
            json(201, &linked)
        }
        "GET" if shared.enabled.lock().unwrap().contains_key(owner) => json(200, &linked),
        "GET" => json(404, &serde_json::json!({"message": "not enabled"})),
        "DELETE" => {
            shared.enabled.lock().unwrap().remove(owner);
            text(script.disable_status, String::new())
        }
        _ => json(405, &serde_json::json!({"message": "method"})),
    }
}
