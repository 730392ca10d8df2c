"""Drives a server for tools/profile.sh: links a user through the real browser flow (login and
consent forms), then sends N requests of one kind on a keep-alive connection. Standard library
only. Usage: profile_client.py PORT link|userinfo|introspect|refresh|baseline N [TOKENS_JSON]"""
import base64, http.client, json, re, sys, urllib.parse

CLIENT, SECRET = "alexa-skill", "profile-secret-0123456789"
REDIRECT = "https://pitangui.amazon.com/api/skill/link/M2PROFILE"
BASIC = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def send(conn, method, path, body=None, headers=None):
    conn.request(method, path, body, headers or {})
    response = conn.getresponse()
    return response, response.read().decode()


def link(conn):
    query = urllib.parse.urlencode(dict(response_type="code", client_id=CLIENT,
                                        redirect_uri=REDIRECT, state="profile"))
    response, page = send(conn, "GET", "/authorize?" + query)
    for fields in ({"username": "alice", "password": "profile-password"}, {"decision": "allow"}):
        cookie = response.getheader("Set-Cookie").split(";")[0]
        form = dict(re.findall(r'name="(request|csrf)" value="([^"]*)"', page), **fields)
        response, page = send(conn, "POST", "/authorize", urllib.parse.urlencode(form),
                              dict(FORM, Cookie=cookie))
    location = urllib.parse.urlparse(response.getheader("Location"))
    code = urllib.parse.parse_qs(location.query)["code"][0]
    body = urllib.parse.urlencode(dict(grant_type="authorization_code", code=code,
                                       redirect_uri=REDIRECT))
    _, tokens = send(conn, "POST", "/token", body, dict(FORM, Authorization=BASIC))
    return json.loads(tokens)


def main():
    port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    if kind == "link":
        print(json.dumps(link(conn)))
        return
    tokens = json.load(open(sys.argv[4])) if len(sys.argv) > 4 else {}
    requests = {
        "baseline": ("GET", "/", None, {}),
        "userinfo": ("GET", "/userinfo", None,
                     {"Authorization": "Bearer " + tokens.get("access_token", "")}),
        "introspect": ("POST", "/introspect",
                       urllib.parse.urlencode({"token": tokens.get("access_token", "")}),
                       dict(FORM, Authorization=BASIC)),
        "refresh": ("POST", "/token",
                    urllib.parse.urlencode({"grant_type": "refresh_token",
                                            "refresh_token": tokens.get("refresh_token", "")}),
                    dict(FORM, Authorization=BASIC)),
    }
    method, path, body, headers = requests[kind]
    for _ in range(n):
        response, text = send(conn, method, path, body, headers)
        if response.status != 200:
            sys.exit(f"{kind}: {response.status} {text}")


main()
