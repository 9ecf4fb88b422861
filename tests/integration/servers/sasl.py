"""Server side of CRAM-MD5 (RFC 2195) and SCRAM-SHA-1/-256 (RFC 5802, RFC 7677),
written from the RFCs so the client's implementation is checked against an
independent one.  Pure functions; the SMTP glue is in smtp.py and raw.py."""
import base64
import hashlib
import hmac
import os
import time


def cram_challenge(hostname="mx.test"):
    return "<%d.%d@%s>" % (os.getpid(), time.time_ns(), hostname)


def cram_verify(challenge, response, users):
    """response: 'user hexdigest'.  Returns the user name or None."""
    user, _, digest = response.rpartition(" ")
    pw = users.get(user)
    if pw is None:
        return None
    want = hmac.new(pw.encode(), challenge.encode(), hashlib.md5).hexdigest()
    return user if hmac.compare_digest(want, digest.lower()) else None


def _attrs(msg):
    out = {}
    for part in msg.split(","):
        k, eq, v = part.partition("=")
        if eq and len(k) == 1:
            out.setdefault(k, v)
    return out


def _saslname_decode(s):
    return s.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """One SCRAM exchange.  first(client_first) -> server_first or raises
    ValueError; final(client_final) -> (user, server_final) or (None, error).

    Channel binding (RFC 5802 §6): plus: the -PLUS mechanism was chosen;
    bindings: {cb-name: bytes} the server can verify on this connection;
    supports_cb: the server supports channel binding (it has -PLUS, advertised
    or not), so a client's "y" flag means someone removed -PLUS from the list;
    corrupt_cb: expect the binding of another channel (a man in the middle
    relaying between two TLS sessions sees different bindings).  After first()
    and final(), gs2_flag, cb_type, cb_data (what the client bound) and error
    tell the test what happened."""

    def __init__(self, users, algo="sha256", iterations=4096, salt=None, nonce=None,
                 bad_signature=False, plus=False, bindings=None, supports_cb=False,
                 corrupt_cb=False):
        self.users = users
        self.algo = algo
        self.iterations = iterations
        self.salt = salt or os.urandom(16)
        self.snonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.bad_signature = bad_signature
        self.plus = plus
        self.bindings = dict(bindings or {})
        self.supports_cb = supports_cb or plus
        self.corrupt_cb = corrupt_cb
        self.user = None
        self.gs2_flag = None
        self.cb_type = None
        self.cb_data = None
        self.error = None

    def _fail(self, error):
        self.error = error
        raise ValueError(error)

    def _check_flag(self, flag):
        """RFC 5802 §6 server rules for the gs2-cbind-flag."""
        if flag.startswith("p="):
            self.cb_type = flag[2:]
            if not self.plus:
                self._fail("p= flag with a non-PLUS mechanism")
            if self.cb_type not in self.bindings:
                # §7 server-error-value "unsupported-channel-binding-type"
                self._fail("unsupported-channel-binding-type " + self.cb_type)
        elif self.plus:
            self._fail("-PLUS mechanism without a p= flag")
        elif flag == "y" and self.supports_cb:
            self._fail("y flag but the server supports channel binding: downgrade")

    def _h(self, data):
        return hashlib.new(self.algo, data).digest()

    def _hmac(self, key, data):
        return hmac.new(key, data, self.algo).digest()

    def first(self, client_first):
        # gs2-header: "n,," / "y,," / "p=..." then client-first-message-bare
        parts = client_first.split(",", 2)
        if len(parts) != 3 or parts[0] not in ("n", "y") and not parts[0].startswith("p="):
            raise ValueError("bad gs2 header")
        self.gs2 = parts[0] + "," + parts[1] + ","
        self.gs2_flag = parts[0]
        self._check_flag(parts[0])
        self.client_first_bare = parts[2]
        a = _attrs(self.client_first_bare)
        if "n" not in a or "r" not in a:
            raise ValueError("missing n or r")
        self.user = _saslname_decode(a["n"])
        self.nonce = a["r"] + self.snonce
        self.server_first = "r=%s,s=%s,i=%d" % (
            self.nonce, base64.b64encode(self.salt).decode(), self.iterations)
        return self.server_first

    def final(self, client_final):
        a = _attrs(client_final)
        if a.get("r") != self.nonce:
            self.error = "nonce mismatch"
            return None, "e=other-error"
        try:
            cbind = base64.b64decode(a.get("c", ""), validate=True)
        except ValueError:
            cbind = b""
        want = self.gs2.encode()
        if self.cb_type is not None:
            # c= is base64(gs2-header cbind-data) with "p=" (§7)
            if cbind.startswith(want):
                self.cb_data = cbind[len(want):]
            expect = self.bindings[self.cb_type]
            if self.corrupt_cb:
                expect = hashlib.sha256(b"other channel" + expect).digest()[:len(expect)]
            want += expect
        if not hmac.compare_digest(cbind, want):
            self.error = "channel-bindings-dont-match"
            return None, "e=channel-bindings-dont-match"
        pw = self.users.get(self.user)
        if pw is None:
            return None, "e=unknown-user"
        without_proof = client_final[:client_final.rfind(",p=")]
        auth_msg = ",".join((self.client_first_bare, self.server_first, without_proof)).encode()
        salted = hashlib.pbkdf2_hmac(self.algo, pw.encode(), self.salt, self.iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored = self._h(client_key)
        sig = self._hmac(stored, auth_msg)
        try:
            proof = base64.b64decode(a.get("p", ""), validate=True)
        except ValueError:
            return None, "e=invalid-proof"
        if len(proof) != len(sig) or self._h(bytes(x ^ y for x, y in zip(proof, sig))) != stored:
            self.error = "invalid-proof"
            return None, "e=invalid-proof"
        server_sig = self._hmac(self._hmac(salted, b"Server Key"), auth_msg)
        if self.bad_signature:
            server_sig = bytes(b ^ 0x55 for b in server_sig)
        return self.user, "v=" + base64.b64encode(server_sig).decode()


def scram_client(user, password, algo="sha256", cnonce="fyko+d2lbbFgONRv9qkxdawL"):
    """A minimal SCRAM client (generator protocol) used to self-test ScramServer:
    c = scram_client(...); m1 = next(c); m2 = c.send(server_first); ok = c.send(server_final)."""
    bare = "n=%s,r=%s" % (user, cnonce)
    server_first = yield "n,," + bare
    a = _attrs(server_first)
    salt = base64.b64decode(a["s"])
    salted = hashlib.pbkdf2_hmac(algo, password.encode(), salt, int(a["i"]))
    without_proof = "c=biws,r=" + a["r"]
    auth_msg = ",".join((bare, server_first, without_proof)).encode()
    ck = hmac.new(salted, b"Client Key", algo).digest()
    sig = hmac.new(hashlib.new(algo, ck).digest(), auth_msg, algo).digest()
    proof = base64.b64encode(bytes(x ^ y for x, y in zip(ck, sig))).decode()
    server_final = yield without_proof + ",p=" + proof
    ssig = hmac.new(hmac.new(salted, b"Server Key", algo).digest(), auth_msg, algo).digest()
    yield server_final == "v=" + base64.b64encode(ssig).decode()
