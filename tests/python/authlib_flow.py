"""Account linking against linkgate with authlib's OAuth2Session (requests integration).

A third-party Python OAuth client, not written for linkgate, does what Alexa and Google do:
builds the authorization URL (state + PKCE S256), exchanges the code (client_secret_basic or
client_secret_post), refreshes, and calls /userinfo. The sign-in and consent pages are filled in
with a plain requests session and html.parser, as a phone's web view would.

Usage: python authlib_flow.py CONFIG_JSON
  {"base_url": "http://127.0.0.1:PORT", "username": ..., "password": ...,
   "clients": [{"client_id": ..., "client_secret": ..., "redirect_uri": ...,
                "auth_method": "client_secret_basic" | "client_secret_post",
                "extra": {"user_locale": "en-US"}}]}
Prints one JSON object: {"authlib": VERSION, "requests": VERSION, "runs": [...]}, one run per
client with the raw token responses as linkgate sent them. The Rust test asserts on it.
"""

import json
import secrets
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import authlib
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

TIMEOUT = 10  # seconds, for every request


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


def submit_form(browser, response, fields):
    """Posts the page's form (its hidden fields plus `fields`) without following redirects."""
    if response.status_code != 200:
        raise SystemExit(f"{response.url}: status {response.status_code}: {response.text[:500]}")
    form = FormParser()
    form.feed(response.text)
    if form.action is None:
        raise SystemExit(f"{response.url}: no form in the page: {response.text[:500]}")
    data = dict(form.hidden)
    data.update(fields)
    return browser.post(
        urljoin(response.url, form.action), data=data, allow_redirects=False, timeout=TIMEOUT
    )


def link(config, client):
    base = config["base_url"]
    token_url = base + "/token"
    session = OAuth2Session(
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        scope="profile",
        redirect_uri=client["redirect_uri"],
        token_endpoint_auth_method=client["auth_method"],
        code_challenge_method="S256",
    )
    raw = {"code_exchange": None, "refresh": None}

    def keep(key):
        """Keeps the first answer of its kind exactly as linkgate sent it."""

        def hook(resp):
            if raw[key] is not None:
                return resp
            raw[key] = {
                "status": resp.status_code,
                "content_type": resp.headers.get("Content-Type"),
                "cache_control": resp.headers.get("Cache-Control"),
                "body": resp.json(),
                # How authlib authenticated: Basic header or client_secret in the form.
                "sent_basic": resp.request.headers.get("Authorization", "").startswith("Basic "),
                "sent_secret_in_body": "client_secret=" in (resp.request.body or ""),
            }
            return resp

        return hook

    session.register_compliance_hook("access_token_response", keep("code_exchange"))
    session.register_compliance_hook("refresh_token_response", keep("refresh"))

    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(
        base + "/authorize", code_verifier=verifier, **client.get("extra", {})
    )
    sent = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}

    # The web view: sign in, then Allow. Cookies stay in this requests session.
    browser = requests.Session()
    login = browser.get(url, timeout=TIMEOUT)
    consent = submit_form(browser, login, {"username": config["username"], "password": config["password"]})
    redirect = submit_form(browser, consent, {"decision": "allow"})
    location = redirect.headers.get("Location", "")
    back = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    # authlib takes the code from the redirect and checks the state itself.
    token = session.fetch_token(
        token_url,
        authorization_response=location,
        state=state,
        code_verifier=verifier,
        timeout=TIMEOUT,
    )
    first_access = token["access_token"]
    first_refresh = token["refresh_token"]
    me_before = session.get(base + "/userinfo", timeout=TIMEOUT)

    refreshed = session.refresh_token(token_url, refresh_token=first_refresh, timeout=TIMEOUT)
    me_after = session.get(base + "/userinfo", timeout=TIMEOUT)

    # The same code again, and a made-up one: authlib raises OAuthError("invalid_grant").
    dead_code_errors = []
    for dead in [back.get("code"), "lgc_not-a-code"]:
        try:
            session.fetch_token(token_url, grant_type="authorization_code", code=dead,
                                code_verifier=verifier, timeout=TIMEOUT)
            dead_code_errors.append(None)
        except OAuthError as e:
            dead_code_errors.append(e.error)

    return {
        "client_id": client["client_id"],
        "auth_method": client["auth_method"],
        "authorize_params": sent,
        "redirect_status": redirect.status_code,
        "location": location,
        "state_sent": state,
        "state_back": back.get("state"),
        "code_exchange": raw["code_exchange"],
        "refresh": raw["refresh"],
        "refresh_token_kept": refreshed["refresh_token"] == first_refresh,
        "access_token_changed": refreshed["access_token"] != first_access,
        "userinfo_before": {"status": me_before.status_code, "body": me_before.json()},
        "userinfo_after": {"status": me_after.status_code, "body": me_after.json()},
        "dead_code_errors": dead_code_errors,
    }


def main():
    config = json.loads(sys.argv[1])
    runs = [link(config, client) for client in config["clients"]]
    print(json.dumps({"authlib": authlib.__version__, "requests": requests.__version__, "runs": runs}))


if __name__ == "__main__":
    main()
