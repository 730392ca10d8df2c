"""An MCP server and client from the official MCP Python SDK (PyPI `mcp`), with linkgate as the
authorization server.

The server is the SDK's `MCPServer` (streamable HTTP) with the SDK's resource-server auth: it
serves RFC 9728 protected-resource metadata naming linkgate, answers 401 without a token, and
checks every bearer token with a `TokenVerifier` that asks linkgate's `/introspect` (RFC 7662)
and accepts only an active token whose `aud` is this server's URL (RFC 8707). One tool,
`where_is_my_driver`, answers with the token's `sub`.

The clients are the SDK's own:
- user level: `OAuthClientProvider` with a pre-registered client (no dynamic registration)
  discovers linkgate from the 401 and the metadata, sends the person to linkgate's
  authorization URL (PKCE S256, `resource`), and exchanges the code. The "browser" is plain
  HTTP here: the login and consent forms are filled in with their hidden fields and cookies, and
  the final 303's Location is what the callback hands back.
- service level: `ClientCredentialsOAuthProvider` (the `client_credentials` grant).

Usage: python mcp_e2e.py CONFIG_JSON
  {"base_url": "http://127.0.0.1:PORT", "mcp_port": PORT, "username": ..., "password": ...,
   "client_id": ..., "client_secret": ..., "redirect_uri": ...,
   "user_auth_method": "client_secret_basic" | "client_secret_post",
   "service_auth_method": "client_secret_basic" | "client_secret_post",
   "other_resource": "http://127.0.0.1:PORT/other"}
(how each SDK client authenticates at /token, the MCP server always introspecting with Basic;
`other_resource` is another resource of the same client, whose tokens this server must refuse)
Prints one JSON report on stdout (diagnostics go to stderr) and exits 0; a step that fails is
recorded in the report with its error. The Rust test (tests/mcp_sdk.rs) asserts on the report.
"""

import asyncio
import base64
import json
import logging
import os
import sys
import threading
import time
import traceback
import warnings
from html.parser import HTMLParser
from importlib.metadata import version
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import anyio
import httpx2
import uvicorn
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata

TIMEOUT = 10  # seconds, for every HTTP request
FLOW_TIMEOUT = 20  # seconds, for each whole client run
WATCHDOG = 60  # seconds: the script ends by then whatever happens (a partial report, exit 2)
TOOL = "where_is_my_driver"

REPORT = {}
REPORT_LOCK = threading.Lock()
PRINTED = threading.Event()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def emit_report():
    """Prints the report once (the watchdog and the normal end may race)."""
    with REPORT_LOCK:
        if PRINTED.is_set():
            return
        PRINTED.set()
        print(json.dumps(REPORT, default=str), flush=True)


def error_text(e, top=True):
    """An exception with its causes and groups in one line for the report (the traceback goes
    to stderr)."""
    if top:
        log("".join(traceback.format_exception(type(e), e, e.__traceback__)))
    parts = [f"{type(e).__name__}: {e}"]
    for inner in getattr(e, "exceptions", None) or []:
        parts.append(error_text(inner, top=False))
    if e.__cause__ is not None:
        parts.append(f"caused by {error_text(e.__cause__, top=False)}")
    return " | ".join(parts)


def basic(client_id, client_secret):
    """RFC 6749 §2.3.1: form-urlencode, then Basic."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


# ---------------------------------------------------------------- the MCP server (resource server)


class IntrospectionVerifier:
    """The SDK's TokenVerifier protocol, answered by linkgate's /introspect."""

    def __init__(self, config, mcp_url):
        self.introspect_url = config["base_url"] + "/introspect"
        self.auth = basic(config["client_id"], config["client_secret"])
        self.mcp_url = mcp_url
        self.seen = []  # for the report: one entry per distinct token (checked on every request)
        self.by_token = {}

    async def verify_token(self, token):
        entry = {"checks": 0, "status": None, "answer": None, "accepted": False, "reason": None}
        entry = self.by_token.setdefault(token, entry)
        if entry["checks"] == 0:
            self.seen.append(entry)
        entry["checks"] += 1
        try:
            async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
                r = await http.post(
                    self.introspect_url,
                    data={"token": token},
                    headers={"Authorization": self.auth},
                )
            entry["status"] = r.status_code
            body = r.json()
            entry["answer"] = body
        except Exception as e:  # an unreachable linkgate means "not authenticated"
            entry["reason"] = error_text(e)
            return None
        if r.status_code != 200 or body.get("active") is not True:
            entry["reason"] = "not active"
            return None
        aud = body.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.mcp_url not in audiences:
            entry["reason"] = f"aud {aud!r} is not {self.mcp_url}"
            return None
        entry["accepted"] = True
        return AccessToken(
            token=token,
            client_id=body.get("client_id") or "",
            scopes=(body.get("scope") or "").split(),
            expires_at=body.get("exp"),
            resource=self.mcp_url,
            subject=body.get("sub"),
            claims={k: v for k, v in body.items() if k in ("iss", "username", "token_type", "aud")},
        )


def make_mcp_app(config, mcp_url, verifier):
    server = MCPServer(
        name="Example Taxi MCP",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=config["base_url"],
            resource_server_url=mcp_url,
            # The verifier checks `aud` itself and reports it as the resource; let the SDK check
            # it again.
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def where_is_my_driver() -> str:
        """Where the taxi booked by the signed-in customer is."""
        token = get_access_token()
        sub = token.subject if token else None
        client = token.client_id if token else None
        return f"Your driver is 3 minutes away (sub={sub}, client_id={client})"

    return server.streamable_http_app(host="127.0.0.1")


class ServerThread:
    """uvicorn serving the MCP app on its own thread and event loop."""

    def __init__(self, app, port):
        self.port = port
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error = None

    def _run(self):
        try:
            asyncio.run(self.server.serve())
        except BaseException as e:  # reported by start() and in the report, never raised here
            self.error = error_text(e)

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.server.started:
                return
            if not self.thread.is_alive():
                raise RuntimeError(f"the MCP server did not start: {self.error}")
            time.sleep(0.05)
        raise RuntimeError(f"the MCP server did not listen on port {self.port} within {TIMEOUT} s")

    def stop(self):
        self.server.should_exit = True
        self.thread.join(TIMEOUT)


# ---------------------------------------------------------------- the person's "browser"


class FormParser(HTMLParser):
    """The first form's action and its hidden inputs."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.hidden = {}
        self.in_form = False
        self.forms = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms += 1
            if self.forms == 1:
                self.in_form = True
                self.action = attrs.get("action")
        elif tag == "input" and self.in_form and attrs.get("type") == "hidden":
            self.hidden[attrs.get("name")] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False


async def submit_form(browser, page, fields):
    """Posts the page's first form (its hidden fields plus `fields`), not following redirects."""
    if page.status_code != 200:
        raise RuntimeError(f"{page.url}: status {page.status_code}: {page.text[:500]}")
    form = FormParser()
    form.feed(page.text)
    if form.action is None:
        raise RuntimeError(f"{page.url}: no form in the page: {page.text[:500]}")
    data = dict(form.hidden)
    data.update(fields)
    return await browser.post(urljoin(str(page.url), form.action), data=data, follow_redirects=False)


class Browser:
    """The SDK's redirect_handler and callback_handler: sign in at linkgate over plain HTTP."""

    def __init__(self, config, run):
        self.config = config
        self.run = run
        self.result = None

    async def redirect_handler(self, authorization_url):
        self.run["authorization_url"] = authorization_url
        query = urlsplit(authorization_url).query
        self.run["authorize_params"] = {k: v[0] for k, v in parse_qs(query).items()}
        async with httpx2.AsyncClient(timeout=TIMEOUT) as browser:
            login = await browser.get(authorization_url, follow_redirects=True)
            self.run["login_page_status"] = login.status_code
            consent = await submit_form(
                browser, login, {"username": self.config["username"], "password": self.config["password"]}
            )
            self.run["consent_page_status"] = consent.status_code
            redirect = await submit_form(browser, consent, {"decision": "allow"})
        location = redirect.headers.get("Location", "")
        self.run["redirect_status"] = redirect.status_code
        self.run["redirect_to"] = location.split("?")[0]
        back = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        self.run["redirect_params"] = sorted(back)
        if "code" not in back:
            answer = location or redirect.text[:500]
            raise RuntimeError(f"no code in the redirect ({redirect.status_code}): {answer}")
        self.run["state_matches"] = back.get("state") == self.run["authorize_params"].get("state")
        self.result = AuthorizationCodeResult(code=back["code"], state=back.get("state"), iss=back.get("iss"))

    async def callback_handler(self):
        if self.result is None:
            raise RuntimeError("the redirect handler got no code")
        return self.result


class PreRegistered:
    """The SDK's TokenStorage: a client registered in linkgate's config, tokens in memory."""

    def __init__(self, client_info):
        self.client_info = client_info
        self.tokens = None
        self.client_info_writes = 0

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info_writes += 1
        self.client_info = client_info


# ---------------------------------------------------------------- the runs


def request_logger(run):
    """An httpx2 event hook: every request the SDK client sends (OAuth ones included), and how
    it called linkgate's /token."""
    run["requests"] = []
    run["token_requests"] = []

    async def hook(request):
        url = request.url
        query = url.query.decode() if isinstance(url.query, bytes) else str(url.query)
        keys = "&".join(sorted(parse_qs(query)))  # the parameter names, not their values
        where = f"{url.scheme}://{url.host}:{url.port}{url.path}"
        run["requests"].append(f"{request.method} {where}" + (f"?{keys}" if keys else ""))
        if request.method == "POST" and url.path.endswith("/token"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            run["token_requests"].append({
                "grant_type": form.get("grant_type"),
                "resource": form.get("resource"),
                "scope": form.get("scope"),
                "code_verifier_sent": "code_verifier" in form,
                "sent_basic": request.headers.get("Authorization", "").startswith("Basic "),
                "sent_secret_in_body": "client_secret" in form,
            })

    return hook


def describe_token(tokens):
    if tokens is None:
        return None
    return {
        "token_type": tokens.token_type,
        "expires_in": tokens.expires_in,
        "scope": tokens.scope,
        "has_refresh_token": tokens.refresh_token is not None,
    }


def tool_text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def call_tool(mcp_url, auth, run):
    """tools/list and the tool through the SDK's streamable HTTP client and ClientSession."""
    http = httpx2.AsyncClient(
        auth=auth,
        timeout=httpx2.Timeout(TIMEOUT, read=FLOW_TIMEOUT),
        event_hooks={"request": [request_logger(run)]},
    )
    async with http:
        async with streamable_http_client(mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=FLOW_TIMEOUT) as session:
                await session.initialize()
                tools = await session.list_tools()
                run["tools"] = [t.name for t in tools.tools]
                result = await session.call_tool(TOOL, {})
                run["tool_result"] = {"is_error": bool(result.is_error), "text": tool_text(result)}


async def user_level(config, mcp_url):
    method = config["user_auth_method"]
    run = {"error": None, "auth_method": method}
    client_info = OAuthClientInformationFull(
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        redirect_uris=[config["redirect_uri"]],
        token_endpoint_auth_method=method,
        grant_types=["authorization_code", "refresh_token"],
    )
    storage = PreRegistered(client_info)
    browser = Browser(config, run)
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="Alexa+ add-on (MCP SDK test)",
            redirect_uris=[config["redirect_uri"]],
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method=method,
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    try:
        with anyio.fail_after(FLOW_TIMEOUT):
            await call_tool(mcp_url, provider, run)
    except Exception as e:  # the report says what failed
        run["error"] = error_text(e)
    run["token"] = describe_token(storage.tokens)
    run["client_info_writes"] = storage.client_info_writes
    ctx = provider.context
    run["discovered_issuer"] = str(ctx.oauth_metadata.issuer) if ctx.oauth_metadata else None
    run["discovered_auth_server"] = ctx.auth_server_url
    return run


async def service_level(config, mcp_url):
    method = config["service_auth_method"]
    run = {
        "error": None,
        "way": "mcp.client.auth.extensions.client_credentials.ClientCredentialsOAuthProvider",
        "auth_method": method,
    }
    storage = PreRegistered(None)
    provider = ClientCredentialsOAuthProvider(
        server_url=mcp_url,
        storage=storage,
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        token_endpoint_auth_method=method,
        issuer=config["base_url"],
    )
    try:
        with anyio.fail_after(FLOW_TIMEOUT):
            await call_tool(mcp_url, provider, run)
    except Exception as e:  # the report says what failed
        run["error"] = error_text(e)
    run["token"] = describe_token(storage.tokens)
    return run


async def plain_checks(mcp_url, base_url):
    """What any client sees before it has a token."""
    out = {}
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "probe", "version": "0"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
        r = await http.post(mcp_url, json=initialize, headers=headers)
        out["unauthenticated"] = {
            "status": r.status_code,
            "www_authenticate": r.headers.get("WWW-Authenticate"),
        }
        made_up = {**headers, "Authorization": "Bearer lga_not-a-token"}
        r = await http.post(mcp_url, json=initialize, headers=made_up)
        out["made_up_token"] = {"status": r.status_code}
        parts = urlsplit(mcp_url)
        prm_url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
        r = await http.get(prm_url)
        out["protected_resource_metadata_url"] = prm_url
        out["protected_resource_metadata_status"] = r.status_code
        out["protected_resource_metadata"] = r.json() if r.status_code == 200 else r.text[:500]
        r = await http.get(base_url + "/.well-known/oauth-authorization-server")
        out["authorization_server_metadata"] = r.json() if r.status_code == 200 else r.text[:500]
    return out


async def plain_token(config, mcp_url, resource):
    """A client_credentials token from linkgate's /token (plain HTTP, not the SDK), with
    `resource` or without: the audience linkgate gives it, and whether the MCP server takes it."""
    out = {"resource": resource}
    auth = basic(config["client_id"], config["client_secret"])
    form = {"grant_type": "client_credentials"}
    if resource is not None:
        form["resource"] = resource
    async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
        r = await http.post(config["base_url"] + "/token", data=form, headers={"Authorization": auth})
        out["token_status"] = r.status_code
        if r.status_code != 200:
            out["token_answer"] = r.text[:500]
            return out
        token = r.json()["access_token"]
        r = await http.post(config["base_url"] + "/introspect", data={"token": token},
                            headers={"Authorization": auth})
        out["aud"] = r.json().get("aud")
        r = await http.post(mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                            headers={"Accept": "application/json, text/event-stream",
                                     "Authorization": f"Bearer {token}"})
        out["mcp_status"] = r.status_code
    return out


async def main_async(config):
    mcp_url = f"http://127.0.0.1:{config['mcp_port']}/mcp"
    REPORT["mcp_url"] = mcp_url
    verifier = IntrospectionVerifier(config, mcp_url)
    REPORT["introspections"] = verifier.seen
    server = ServerThread(make_mcp_app(config, mcp_url, verifier), config["mcp_port"])
    server.start()
    try:
        try:
            REPORT.update(await plain_checks(mcp_url, config["base_url"]))
        except Exception as e:
            REPORT["plain_checks_error"] = error_text(e)
        REPORT["user"] = await user_level(config, mcp_url)
        REPORT["service"] = await service_level(config, mcp_url)
        for key, resource in [("token_without_resource", None),
                              ("token_for_other_resource", config.get("other_resource"))]:
            try:
                REPORT[key] = await plain_token(config, mcp_url, resource)
            except Exception as e:
                REPORT[key] = {"error": error_text(e)}
    finally:
        server.stop()
    REPORT["server_error"] = server.error


def main():
    config = json.loads(sys.argv[1])
    REPORT.update({"mcp": version("mcp"), "python": sys.version.split()[0]})
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    warnings.simplefilter("default")

    def watchdog():
        REPORT["timed_out"] = f"the script did not end within {WATCHDOG} s"
        log(REPORT["timed_out"])
        emit_report()
        os._exit(2)

    timer = threading.Timer(WATCHDOG, watchdog)
    timer.daemon = True
    timer.start()
    asyncio.run(main_async(config))
    timer.cancel()
    emit_report()


if __name__ == "__main__":
    main()
