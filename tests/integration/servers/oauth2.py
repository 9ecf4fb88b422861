"""A local OAuth2 token endpoint over HTTPS (http.server + the test CA).

    ep = TokenEndpoint(certs, refresh_tokens={"rt-1"}, on_token=lambda t: ...).start()
    ep.url("/token")  -> "https://127.0.0.1:PORT/token"

Paths: /token (grant_type refresh_token, authorization_code with PKCE S256
checked against the challenge registered by authorize(), and the RFC 8628
device_code grant), /device (device authorization).  Every request is
recorded (ep.requests: (path, form dict)).  Knobs: expires_in, rotate (a new
refresh token with each refresh), revoked (invalid_grant), delay (seconds
before answering), oversize (bytes of padding in the reply), device_script
(the answers to successive device polls: "pending", "slow_down", "ok",
"expired").  on_token(access_token) is called for every token issued (the
test adds it to the SMTP server's tokens).
"""
import base64
import hashlib
import http.server
import json
import threading
import time
import urllib.parse


def s256(verifier):
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
        b"=").decode()


class TokenEndpoint:
    def __init__(self, certs, refresh_tokens=(), client_id="cid", client_secret=None,
                 expires_in=3600, rotate=False, on_token=None):
        self.certs = certs
        self.refresh_tokens = set(refresh_tokens)
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.rotate = rotate
        self.on_token = on_token
        self.revoked = False
        self.delay = 0
        self.oversize = 0
        self.codes = {}            # code -> (challenge, redirect_uri)
        self.device_script = ["pending", "slow_down", "ok"]
        self.device_polls = []     # times of the polls
        self.requests = []
        self.issued = []
        self._n = 0
        self._lock = threading.Lock()

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def count(self, path="/token"):
        return sum(1 for p, _ in self.requests if p == path)

    def authorize(self, code, challenge, redirect_uri):
        self.codes[code] = (challenge, redirect_uri)

    def _issue(self, with_refresh):
        with self._lock:
            self._n += 1
            n = self._n
        at = "at-%d-secret" % n
        self.issued.append(at)
        if self.on_token:
            self.on_token(at)
        body = {"access_token": at, "token_type": "Bearer", "expires_in": self.expires_in}
        if with_refresh:
            rt = "rt-%d-rotated" % n
            self.refresh_tokens.add(rt)
            body["refresh_token"] = rt
        return 200, body

    def handle(self, path, form):
        self.requests.append((path, form))
        if self.delay:
            time.sleep(self.delay)
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        if path == "/device":
            return 200, {"device_code": "dev-code-secret", "user_code": "WDJB-MJHT",
                         "verification_uri": self.url("/activate"), "interval": 1,
                         "expires_in": 60}
        if path != "/token":
            return 404, {"error": "not_found"}
        g = form.get("grant_type")
        if g == "refresh_token":
            if self.revoked or form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            if self.rotate:
                self.refresh_tokens.discard(form.get("refresh_token"))
            return self._issue(self.rotate)
        if g == "authorization_code":
            c = self.codes.pop(form.get("code"), None)
            if (c is None or form.get("redirect_uri") != c[1] or
                    s256(form.get("code_verifier", "")) != c[0]):
                return 400, {"error": "invalid_grant"}
            return self._issue(True)
        if g == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") != "dev-code-secret":
                return 400, {"error": "invalid_grant"}
            self.device_polls.append(time.monotonic())
            step = self.device_script.pop(0) if self.device_script else "ok"
            if step == "pending":
                return 400, {"error": "authorization_pending"}
            if step == "slow_down":
                return 400, {"error": "slow_down"}
            if step == "expired":
                return 400, {"error": "expired_token"}
            return self._issue(True)
        return 400, {"error": "unsupported_grant_type"}

    def start(self):
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n).decode()
                form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
                status, body = ep.handle(urllib.parse.urlsplit(self.path).path, form)
                data = json.dumps(body).encode()
                if ep.oversize:
                    data = data[:-1] + b', "pad": "' + b"x" * ep.oversize + b'"}'
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = self.certs.server_context().wrap_socket(self.httpd.socket,
                                                                    server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
