"""Walks an Alexa-shaped link through a linkgate at BASE (the example config's client, user
alice): `link` prints "ACCESS REFRESH"; `refresh TOKEN` refreshes and prints the new access token.
For tools/package-test.sh. Standard library only."""
import base64
import http.cookiejar
import json
import re
import sys
import urllib.parse
import urllib.request

BASE = sys.argv[1]
CLIENT = "alexa-skill"
SECRET = "change-me-to-a-long-random-string"
REDIRECT = "https://pitangui.amazon.com/api/skill/link/M2XXXXXXXXXXXX"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)


def call(method, path, fields=None, headers=None):
    data = urllib.parse.urlencode(fields).encode() if fields is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, answer.headers, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def hidden(page):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def token(fields):
    basic = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    status, _, body = call("POST", "/token", fields, {"Authorization": "Basic " + basic})
    assert status == 200, (status, body)
    return json.loads(body)


if sys.argv[2] == "link":
    query = urllib.parse.urlencode({"response_type": "code", "client_id": CLIENT,
                                    "redirect_uri": REDIRECT, "state": "pkg", "scope": "profile"})
    status, _, page = call("GET", "/authorize?" + query)
    assert status == 200, (status, page)
    status, _, page = call("POST", "/authorize",
                           {**hidden(page), "username": "alice", "password": "a packaged password"})
    assert status == 200 and "decision" in page, (status, page)
    status, headers, page = call("POST", "/authorize", {**hidden(page), "decision": "allow"})
    assert status == 303, (status, page)
    location = headers.get("Location", "")
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    tokens = token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    status, _, body = call("GET", "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert status == 200 and json.loads(body)["preferred_username"] == "alice", (status, body)
    print(tokens["access_token"], tokens["refresh_token"])
else:
    print(token({"grant_type": "refresh_token", "refresh_token": sys.argv[3]})["access_token"])
