"""SCRAM-*-PLUS channel binding end to end (RFC 5802 §6, RFC 5929 tls-unique,
RFC 9266 tls-exporter) and the other non-password mechanisms: EXTERNAL with a
client certificate, XOAUTH2 and OAUTHBEARER with a bearer token.

The server (servers/sasl.py ScramServer) computes its own binding data from its
side of the TLS session (servers/chanbind.py) and compares it with the c=
attribute the client sends, so a client binding the wrong thing, or naming the
wrong type, fails here.
"""
import base64

import pytest

MSG = (b"From: a@x.test\r\nTo: b@y.test\r\nDate: Sun, 29 Nov 2026 00:00:00 +0000\r\n"
       b"Message-ID: <1@x.test>\r\nSubject: t\r\n\r\nbody\r\n")

EX_NOPERM = 77


@pytest.fixture(autouse=True)
def _built(bluearrow):
    return bluearrow


def run(sendmail, cfg):
    return sendmail("-C", cfg, "-f", "a@x.test", "b@y.test", input=MSG, timeout=30)


def ok(r):
    assert r.returncode == 0, r.stderr.decode(errors="replace")


def client_first(conn):
    """The client-first-message as sent (initial response of AUTH SCRAM-*)."""
    for line in conn.client_lines():
        text = line.decode() if isinstance(line, bytes) else line
        if text.upper().startswith("AUTH SCRAM-"):
            parts = text.split()
            assert len(parts) == 3, "no initial response: %r" % text
            return base64.b64decode(parts[2]).decode()
    raise AssertionError("no AUTH SCRAM-* sent")


def plus_server(smtp_server, **kw):
    kw.setdefault("auth", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    return smtp_server(starttls=True, auth_require_tls=True, **kw)


def scram_cfg(write_config, srv, auth=True):
    return write_config(srv, tls=True, tls_starttls=True, auth=auth, user="user",
                        password="password")


# ---- (a) TLS 1.2: -PLUS chosen, tls-unique verified ---------------------------------

@pytest.mark.parametrize("mech", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
def test_plus_tls12_tls_unique(mech, smtp_server, write_config, sendmail):
    plain = mech[:-len("-PLUS")]
    srv = plus_server(smtp_server, tls_max="1.2", auth=[mech, plain])
    r = run(sendmail, scram_cfg(write_config, srv))
    ok(r)
    conn = srv.conn
    assert conn.tls_version == "TLSv1.2"
    tr = conn.scram[0]
    assert tr.mechanism == mech and tr.error is None
    # RFC 9266 §3 / tls.h: on TLS 1.2 the binding type is tls-unique
    assert tr.gs2_flag == "p=tls-unique"
    assert client_first(conn).startswith("p=tls-unique,,n=user,r=")
    # what the client bound is the server's own tls-unique (12-byte Finished)
    assert tr.cb_data == tr.cb_server["tls-unique"] and len(tr.cb_data) == 12
    assert conn.auth[0].mechanism == mech and conn.auth[0].success
    assert srv.wait_txn().data == MSG


def test_plus_explicit_method(smtp_server, write_config, sendmail):
    srv = plus_server(smtp_server, tls_max="1.2")
    ok(run(sendmail, scram_cfg(write_config, srv, auth="scram-sha-256-plus")))
    assert srv.conn.scram[0].gs2_flag == "p=tls-unique"
    assert srv.conn.auth[0].success


# ---- TLS 1.2 without the extended master secret: tls-unique is unsafe ------------------

def test_no_ems_plus_not_chosen(smtp_server, write_config, sendmail):
    # RFC 7627 §1 (triple handshake): without EMS a man in the middle can give
    # two connections one tls-unique, so the client binds nothing and takes
    # plain SCRAM with "n" (it cannot bind this connection)
    srv = plus_server(smtp_server, tls_max="1.2", tls_ems=False)
    ok(run(sendmail, scram_cfg(write_config, srv)))
    conn = srv.conn
    assert conn.tls_version == "TLSv1.2"
    # the server did compute a tls-unique: only the client's refusal keeps it unused
    tr = conn.scram[0]
    assert "tls-unique" in tr.cb_server
    assert tr.mechanism == "SCRAM-SHA-256" and tr.gs2_flag == "n" and tr.error is None
    assert conn.auth[0].success
    assert srv.wait_txn().data == MSG


def test_no_ems_plus_configured_refused(smtp_server, write_config, sendmail):
    srv = plus_server(smtp_server, tls_max="1.2", tls_ems=False)
    r = run(sendmail, scram_cfg(write_config, srv, auth="scram-sha-256-plus"))
    assert r.returncode == EX_NOPERM, r.stderr
    assert b"channel binding" in r.stderr
    assert srv.conn.auth == [] and srv.messages == []


# ---- TLS 1.3: tls-exporter (RFC 9266), never tls-unique ------------------------------

def test_plus_tls13_tls_exporter(smtp_server, write_config, sendmail):
    srv = plus_server(smtp_server)
    r = run(sendmail, scram_cfg(write_config, srv))
    conn = srv.conn
    assert conn.tls_version == "TLSv1.3"
    tr = conn.scram[0]
    # RFC 9266 §3: tls-unique is undefined for TLS 1.3; the client must bind
    # with tls-exporter (or not use -PLUS at all, which it has no reason to)
    assert tr.mechanism == "SCRAM-SHA-256-PLUS"
    assert tr.gs2_flag == "p=tls-exporter"
    if "tls-exporter" not in tr.cb_server:
        pytest.skip("this Python/OpenSSL cannot compute tls-exporter on the server side")
    ok(r)
    assert tr.cb_data == tr.cb_server["tls-exporter"] and len(tr.cb_data) == 32
    assert tr.error is None and conn.auth[0].success
    assert srv.wait_txn().data == MSG


# ---- (b) man in the middle: the bindings differ ---------------------------------------

@pytest.mark.parametrize("tls_max", ["1.2", None])
def test_plus_binding_mismatch_fails(tls_max, smtp_server, write_config, sendmail):
    srv = plus_server(smtp_server, tls_max=tls_max, scram_cb_corrupt=True)
    r = run(sendmail, scram_cfg(write_config, srv))
    assert r.returncode == EX_NOPERM, r.stderr
    tr = srv.conn.scram[0]
    if tr.gs2_flag == "p=tls-exporter" and "tls-exporter" not in tr.cb_server:
        pytest.skip("this Python/OpenSSL cannot compute tls-exporter on the server side")
    assert tr.gs2_flag.startswith("p=") and tr.error == "channel-bindings-dont-match"
    assert not srv.conn.auth[0].success
    assert srv.txns == [] and srv.messages == []
    # one attempt only: no fallback to the non-PLUS mechanism after a failure
    assert len(srv.conn.auth) == 1


# ---- (c) the server has no -PLUS: "y" (client could bind) ---------------------------

@pytest.mark.parametrize("tls_max", ["1.2", None])
def test_no_plus_offered_sends_y(tls_max, smtp_server, write_config, sendmail):
    srv = plus_server(smtp_server, tls_max=tls_max, auth=["SCRAM-SHA-256"])
    ok(run(sendmail, scram_cfg(write_config, srv)))
    tr = srv.conn.scram[0]
    assert tr.mechanism == "SCRAM-SHA-256" and tr.error is None
    # RFC 5802 §6: supports binding, thinks the server does not: "y"
    assert tr.gs2_flag == "y"
    assert client_first(srv.conn).startswith("y,,n=user,r=")
    assert srv.conn.auth[0].success
    assert srv.wait_txn().data == MSG


def test_plus_offered_but_plain_scram_configured_sends_n(smtp_server, write_config, sendmail):
    # the user forces SCRAM-SHA-256 although -PLUS is offered: "y" would be a
    # lie (the client saw -PLUS) and fail at this server; "n" is right
    srv = plus_server(smtp_server, tls_max="1.2")
    ok(run(sendmail, scram_cfg(write_config, srv, auth="scram-sha-256")))
    assert srv.conn.scram[0].gs2_flag == "n"
    assert srv.conn.auth[0].success


def test_no_tls_sends_n(smtp_server, write_config, sendmail):
    # without TLS there is nothing to bind to: "n" (RFC 5802 §6)
    srv = smtp_server(auth=["SCRAM-SHA-256"])
    cfg = write_config(srv, auth="scram-sha-256", user="user", password="password")
    ok(run(sendmail, cfg))
    assert srv.conn.scram[0].gs2_flag == "n" and srv.conn.tls_version is None


# ---- (d) -PLUS stripped from the list by an attacker: "y" fails -------------------------

@pytest.mark.parametrize("tls_max", ["1.2", None])
def test_stripped_plus_downgrade_detected(tls_max, smtp_server, write_config, sendmail):
    srv = plus_server(smtp_server, tls_max=tls_max, auth=["SCRAM-SHA-256"],
                      scram_cb_supported=True)
    r = run(sendmail, scram_cfg(write_config, srv))
    assert r.returncode == EX_NOPERM, r.stderr
    tr = srv.conn.scram[0]
    assert tr.gs2_flag == "y" and "downgrade" in tr.error
    assert not srv.conn.auth[0].success
    assert srv.txns == [] and srv.messages == []


# ---- the server's own RFC 5802 §6 rules (so the failures above are not vacuous) --------

@pytest.mark.parametrize("plus,flag,supports,ok_", [
    (True, "p=tls-unique", True, True),
    (True, "p=tls-exporter", True, False),    # type the server cannot bind
    (True, "n", True, False),                 # -PLUS needs "p="
    (True, "y", True, False),
    (False, "p=tls-unique", True, False),     # "p=" with a non-PLUS mechanism
    (False, "y", True, False),                # downgrade
    (False, "y", False, True),
    (False, "n", True, True),
])
def test_scram_server_flag_rules(plus, flag, supports, ok_):
    import base64 as b64
    import hashlib
    import hmac
    from servers.sasl import ScramServer
    binding = b"0123456789ab"
    srv = ScramServer({"user": "pencil"}, plus=plus, bindings={"tls-unique": binding},
                      supports_cb=supports)
    gs2 = flag + ",,"
    try:
        first = srv.first(gs2 + "n=user,r=abc")
    except ValueError:
        assert not ok_ and srv.error
        return
    a = dict(p.split("=", 1) for p in first.split(","))
    cbind = gs2.encode() + (binding if flag.startswith("p=") else b"")
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", b64.b64decode(a["s"]), int(a["i"]))
    without = "c=%s,r=%s" % (b64.b64encode(cbind).decode(), a["r"])
    msg = ",".join(("n=user,r=abc", first, without)).encode()
    ck = hmac.new(salted, b"Client Key", "sha256").digest()
    sig = hmac.new(hashlib.sha256(ck).digest(), msg, "sha256").digest()
    proof = b64.b64encode(bytes(x ^ y for x, y in zip(ck, sig))).decode()
    user, final = srv.final(without + ",p=" + proof)
    assert ok_ and user == "user" and final.startswith("v="), (srv.error, final)


# ---- EXTERNAL: the TLS client certificate is the credential (RFC 4422 App. A) ----------

def cert_cfg(write_config, srv, tls_certs, **kw):
    return write_config(srv, tls=True, tls_starttls=True, tls_cert_file=tls_certs.crt("client"),
                        tls_key_file=tls_certs.key("client"), **kw)


def test_external_explicit(smtp_server, write_config, sendmail, tls_certs):
    srv = smtp_server(starttls=True, client_ca=True, auth=["EXTERNAL", "PLAIN"],
                      auth_require_tls=True)
    cfg = cert_cfg(write_config, srv, tls_certs, auth="external", user="user@example.test")
    r = run(sendmail, cfg)
    ok(r)
    conn = srv.conn
    assert conn.client_cert is not None             # presented in the handshake
    assert conn.auth[0].mechanism == "EXTERNAL" and conn.auth[0].success
    assert conn.auth[0].user == "user@example.test"  # the authorization identity
    assert b"password" not in conn.client_bytes()
    assert srv.wait_txn().data == MSG


def test_external_preferred_with_cert(smtp_server, write_config, sendmail, tls_certs):
    # auth on, a certificate configured and EXTERNAL offered: no password sent
    srv = smtp_server(starttls=True, client_ca=True,
                      auth=["SCRAM-SHA-256", "PLAIN", "EXTERNAL"], auth_require_tls=True)
    cfg = cert_cfg(write_config, srv, tls_certs, auth=True, user="user", password="password")
    ok(run(sendmail, cfg))
    assert [a.mechanism for a in srv.conn.auth] == ["EXTERNAL"]
    assert srv.conn.auth[0].success and srv.conn.scram == []


def test_external_without_cert_fails(smtp_server, write_config, sendmail):
    # EXTERNAL requested but no certificate: the server sees none and refuses
    srv = smtp_server(starttls=True, client_ca=True, auth=["EXTERNAL"], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth="external",
                       user="user@example.test", password="x")
    r = run(sendmail, cfg)
    assert r.returncode == EX_NOPERM, r.stderr
    assert srv.txns == []
    assert all(not a.success for a in srv.conn.auth)


# ---- bearer tokens: XOAUTH2 and OAUTHBEARER (RFC 7628) -------------------------------------

@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
@pytest.mark.parametrize("how", ["password", "passwordeval"])
def test_bearer_token(mech, how, smtp_server, write_config, sendmail):
    srv = smtp_server(starttls=True, auth=[mech, "PLAIN"], auth_require_tls=True)
    secret = {"password": "ya29.token"} if how == "password" else \
        {"passwordeval": "printf '%s\\n' ya29.token"}
    cfg = write_config(srv, tls=True, tls_starttls=True, auth=mech.lower(),
                       user="user@example.test", **secret)
    ok(run(sendmail, cfg))
    conn = srv.conn
    assert conn.auth[0].mechanism == mech and conn.auth[0].success
    assert conn.auth[0].user == "user@example.test"
    assert conn.plaintext_commands() == ["EHLO", "STARTTLS"]
    assert srv.wait_txn().authenticated == "user@example.test"


@pytest.mark.parametrize("mech", ["OAUTHBEARER", "XOAUTH2"])
def test_bearer_bad_token(mech, smtp_server, write_config, sendmail):
    # the server answers with the RFC 7628 §3.2.2 JSON error in a 334 that the
    # client must answer (not hang, not resend), then 535: exit 77
    srv = smtp_server(starttls=True, auth=[mech], auth_require_tls=True)
    cfg = write_config(srv, tls=True, tls_starttls=True, auth=mech.lower(),
                       user="user@example.test", password="expired-token")
    r = run(sendmail, cfg)
    assert r.returncode == EX_NOPERM, r.stderr
    conn = srv.conn
    assert len(conn.auth) == 1 and not conn.auth[0].success
    assert srv.txns == []
    assert b"expired-token" not in r.stderr


def test_bearer_never_in_clear(smtp_server, write_config, sendmail):
    # RFC 7628 §5 / RFC 6750 §5.3: a bearer token is never sent without TLS
    srv = smtp_server(auth=["OAUTHBEARER", "XOAUTH2"])
    cfg = write_config(srv, auth="oauthbearer", user="user@example.test",
                       password="ya29.token")
    r = run(sendmail, cfg)
    assert r.returncode == EX_NOPERM, r.stderr
    assert b"ya29.token" not in srv.conn.client_bytes()
    assert srv.conn.auth == [] and srv.txns == []
