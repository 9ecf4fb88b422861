"""Recording ESMTP server on aiosmtpd.

    srv = SMTPServer(certs, starttls=True, auth=["SCRAM-SHA-256"], users={"u": "p"})
    srv.start()            # listens on 127.0.0.1, an ephemeral port: srv.port
    ...client runs...
    txn = srv.wait_txn()   # the first completed transaction
    srv.stop()

Options (all keyword arguments, see SMTPServer.__init__) choose the extensions
advertised and enforced.  Everything received is recorded in srv.conns (see
record.py): raw chunks per read before and inside TLS, commands, transactions
with the message bytes after dot-unstuffing, AUTH attempts, pipelining
violations (a client sending ahead of replies).
"""
import asyncio
import base64
import binascii
import socket
import ssl
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, MISSING

from . import loop as _loop
from . import chanbind, sasl
from .record import AuthAttempt, Conn, ScramTrace, PipelineCheck, Rcpt, Results, Txn

DEFAULT_USERS = {"user": "password", "user@example.test": "secret"}
DEFAULT_TOKENS = {"user": "token-123", "user@example.test": "ya29.token"}
# OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (ssl.h); Python has no name for it
SSL_OP_NO_EXTENDED_MASTER_SECRET = 1 << 0


def default_rcpt_rule(addr):
    """Recipient refusal used unless rcpt_rule= is given: local parts starting
    with 'reject' get 550 5.1.1, 'temp' get 451 4.2.0, others 250."""
    local = addr.split("@")[0].lower()
    if local.startswith("reject"):
        return "550 5.1.1 <%s>: Recipient address rejected" % addr
    if local.startswith("temp"):
        return "451 4.2.0 <%s>: Recipient temporarily unavailable" % addr
    return None


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_DATA(self, smtp, session, envelope):
        return self.server.data_reply or "250 2.0.0 OK queued"

    async def handle_exception(self, error):
        return "500 Error: (%s) %s" % (error.__class__.__name__, error)


class RecordingSMTP(SMTP):
    """aiosmtpd.SMTP with recording, configurable EHLO keywords, DSN/8BITMIME/
    SMTPUTF8 parameter handling, CRAM-MD5, SCRAM-SHA-1/256 and EXTERNAL."""

    def __init__(self, server, **kw):
        self.srv = server
        self.conn = None
        self.pipe = PipelineCheck(server.pipelining)
        self._cur = None        # current Txn
        super().__init__(_Handler(server), **kw)

    # -- recording hooks -----------------------------------------------------
    def connection_made(self, transport):
        first = self.conn is None
        if first:
            self.conn = Conn(transport.get_extra_info("peername"))
            self.srv._add_conn(self.conn)
            if self.srv.implicit_tls:
                self._note_tls(transport.get_extra_info("ssl_object"))
        super().connection_made(transport)
        if not first and self._tls_protocol is not None:
            self._note_tls(self._tls_protocol._extra.get("ssl_object"))

    def _note_tls(self, sslobj):
        if sslobj is not None:
            self.conn.tls_version = sslobj.version()
            self.conn.client_cert = sslobj.getpeercert() or None
            self.conn.sni = getattr(sslobj, "sni_name", None)

    @property
    def _in_tls(self):
        return self.srv.implicit_tls or self._tls_protocol is not None

    def data_received(self, data):
        self.conn.add("C", self._in_tls, data)
        self.pipe.client_chunk(data)
        self.conn.pipelining_violations = self.pipe.violations
        self.conn.sent_ahead = self.pipe.sent_ahead
        super().data_received(data)

    def connection_lost(self, exc):
        if self.conn is not None:
            self.conn.closed.set()
        super().connection_lost(exc)

    async def push(self, status):
        raw = status.encode("utf-8") if isinstance(status, str) else status
        self.conn.add("S", self._in_tls, raw + b"\r\n")
        self.pipe.server_line(raw)
        await super().push(status)

    # -- EHLO ----------------------------------------------------------------
    async def smtp_EHLO(self, hostname):
        if not hostname:
            return await self.push("501 Syntax: EHLO hostname")
        self.conn.helo.append("EHLO " + hostname)
        self.conn.commands.append(("EHLO " + hostname, self._in_tls))
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        s = self.srv
        kw = []
        # RFC 5321 4.5.3.1.4 allows 512 octets, extensions add to it (RFC 1869 4.1.2)
        self.command_size_limits["MAIL"] = self.command_size_limits["RCPT"] = 2048
        if s.size is not None:
            kw.append("SIZE %d" % s.size if s.size else "SIZE")
        if s.eightbitmime:
            kw.append("8BITMIME")
        if s.smtputf8:
            kw.append("SMTPUTF8")
        if s.pipelining:
            kw.append("PIPELINING")
        if s.dsn:
            kw.append("DSN")
        if s.enhancedstatuscodes:
            kw.append("ENHANCEDSTATUSCODES")
        if self.tls_context and not self._tls_protocol and not s.implicit_tls \
                and s.advertise_starttls:
            kw.append("STARTTLS")
        if self._auth_methods and (not self._auth_require_tls or self._in_tls):
            kw.append("AUTH " + " ".join(m for m in s.auth if m in self._auth_methods))
        kw.extend(s.extra_ehlo)
        lines = ["250-" + self.hostname] + ["250-" + k for k in kw]
        lines[-1] = "250 " + lines[-1][4:]
        for l in lines:
            await self.push(l)

    async def smtp_HELO(self, hostname):
        if hostname:
            self.conn.helo.append("HELO " + hostname)
        return await super().smtp_HELO(hostname)

    # -- envelope --------------------------------------------------------------
    async def smtp_MAIL(self, arg):
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("MAIL"):
            return
        self.conn.commands.append(("MAIL " + (arg or ""), self._in_tls))
        syntaxerr = "501 5.5.4 Syntax: MAIL FROM:<address> [SP <mail-parameters>]"
        arg = self._strip_command_keyword("FROM:", arg or "")
        if arg is None:
            return await self.push(syntaxerr)
        if arg.lstrip().startswith("<>"):
            address, rest = "", arg.lstrip()[2:]
        else:
            address, rest = self._getaddr(arg)
            if not address:
                return await self.push("553 5.1.3 Error: malformed address")
        params = rest.split()
        if params and not self.session.extended_smtp:
            return await self.push(syntaxerr)
        if self.envelope.mail_from is not None:
            return await self.push("503 5.5.1 Error: nested MAIL command")
        err = self.srv.check_mail_params(params, self._in_tls) or \
            self.srv.check_utf8(address, params)
        if err:
            return await self.push(err)
        if self.srv.mail_reply:
            return await self.push(self.srv.mail_reply)
        self.envelope.mail_from = address
        self.envelope.mail_options = params
        self._cur = Txn(address, params, tls=self._in_tls,
                        authenticated=_text(self.session.auth_data))
        self.conn.txns.append(self._cur)
        await self.push("250 2.1.0 OK")

    async def smtp_RCPT(self, arg):
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("RCPT"):
            return
        self.conn.commands.append(("RCPT " + (arg or ""), self._in_tls))
        if self.envelope.mail_from is None:
            return await self.push("503 5.5.1 Error: need MAIL command")
        syntaxerr = "501 5.5.4 Syntax: RCPT TO:<address> [SP <parameters>]"
        arg = self._strip_command_keyword("TO:", arg or "")
        if arg is None:
            return await self.push(syntaxerr)
        address, rest = self._getaddr(arg)
        if not address:
            return await self.push("553 5.1.3 Error: malformed address")
        params = rest.split()
        err = self.srv.check_rcpt_params(params) or \
            self.srv.check_utf8(address, self.envelope.mail_options)
        if err:
            reply = err
        else:
            reply = (self.srv.rcpt_rule(address) if self.srv.rcpt_rule else None) \
                or "250 2.1.5 OK"
        self._cur.rcpts.append(Rcpt(address, params, reply))
        if reply.startswith("2"):
            self.envelope.rcpt_tos.append(address)
            self.envelope.rcpt_options.extend(params)
        await self.push(reply)

    async def smtp_RSET(self, arg):
        self.conn.commands.append(("RSET", self._in_tls))
        self._cur = None
        return await super().smtp_RSET(arg)

    async def smtp_DATA(self, arg):
        self.conn.commands.append(("DATA", self._in_tls))
        cur = self._cur
        self._last_content = None
        before = len(self.conn.chunks)
        await super().smtp_DATA(arg)
        if cur is not None and self.envelope.mail_from is None and cur.data is None:
            # aiosmtpd reset the envelope: the data phase ended (or was refused)
            replies = [c.data for c in self.conn.chunks[before:] if c.dir == "S"]
            last = replies[-1].decode("utf-8", "replace").rstrip("\r\n") if replies else ""
            cur.reply = last
            if last.startswith("2"):
                cur.data = self._last_content
                self.srv._txn_done.set()
            self._cur = None

    async def smtp_QUIT(self, arg):
        self.conn.commands.append(("QUIT", self._in_tls))
        return await super().smtp_QUIT(arg)

    async def smtp_STARTTLS(self, arg):
        self.conn.commands.append(("STARTTLS", self._in_tls))
        return await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        self.conn.commands.append(("AUTH " + (arg or "").split(" ")[0], self._in_tls))
        self._auth_mech = (arg or "").split(" ")[0].upper()
        n = len(self.conn.auth)
        await super().smtp_AUTH(arg)
        if len(self.conn.auth) == n:   # built-in mechanism or early refusal
            self.conn.auth.append(AuthAttempt(self._auth_mech, _text(self.session.auth_data),
                                              bool(self.session.authenticated), self._in_tls))

    def _set_post_data_state(self):
        env = getattr(self, "envelope", None)
        if env is not None and env.original_content is not None:
            self._last_content = env.original_content
        super()._set_post_data_state()

    # -- extra SASL mechanisms ---------------------------------------------------
    def _record_auth(self, mech, user, ok):
        self.conn.auth.append(AuthAttempt(mech, user, ok, self._in_tls))

    async def _b64_line(self, challenge):
        """Send a 334 challenge (already text), return the decoded answer or None
        when the client cancelled or sent bad base64 (reply already sent)."""
        r = await self.challenge_auth(challenge, encode_to_b64=True)
        if r is MISSING:
            return None
        return r.decode("utf-8", "replace")

    async def auth_CRAM__MD5(self, _, args):
        ch = sasl.cram_challenge(self.hostname)
        resp = await self._b64_line(ch)
        if resp is None:
            return AuthResult(success=False, handled=True)
        user = sasl.cram_verify(ch, resp, self.srv.users)
        self._record_auth("CRAM-MD5", user or resp.rpartition(" ")[0], user is not None)
        if user is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))

    def _sslobj(self):
        if self.srv.implicit_tls:
            return self.transport.get_extra_info("ssl_object")
        if self._tls_protocol is not None:
            return self._tls_protocol._extra.get("ssl_object")
        return None

    async def _scram(self, args, algo, mech):
        s = self.srv
        plus = mech.endswith("-PLUS")
        bindings = chanbind.bindings(self._sslobj())
        # RFC 5802 §6: a server that supports channel binding (advertises
        # -PLUS, or has it but an attacker stripped it: scram_cb_supported)
        supports = s.scram_cb_supported
        if supports is None:
            supports = any(m.endswith("-PLUS") for m in s.auth)
        srv = sasl.ScramServer(s.users, algo, iterations=s.scram_iterations,
                               bad_signature=s.scram_bad_signature, plus=plus,
                               bindings=bindings, supports_cb=supports and bool(bindings),
                               corrupt_cb=s.scram_cb_corrupt)
        trace = ScramTrace(mech, cb_server=bindings)
        self.conn.scram.append(trace)
        try:
            return await self._scram_run(srv, args, mech)
        finally:
            trace.gs2_flag, trace.cb_type = srv.gs2_flag, srv.cb_type
            trace.cb_data, trace.error = srv.cb_data, srv.error

    async def _scram_run(self, srv, args, mech):
        if len(args) > 1:
            try:
                first = base64.b64decode(args[1], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            first = await self._b64_line("")
            if first is None:
                return AuthResult(success=False, handled=True)
        try:
            server_first = srv.first(first)
        except ValueError:
            self._record_auth(mech, None, False)
            return AuthResult(success=False, handled=False)
        final = await self._b64_line(server_first)
        if final is None:
            self._record_auth(mech, srv.user, False)
            return AuthResult(success=False, handled=True)
        user, server_final = srv.final(final)
        if user is None:
            self._record_auth(mech, srv.user, False)
            return AuthResult(success=False, handled=False)
        # RFC 4954 4: additional data with success goes in a 334, answered empty
        last = await self.challenge_auth(server_final, encode_to_b64=True)
        ok = last is not MISSING and last == b""
        self._record_auth(mech, user, ok)
        if not ok:
            return AuthResult(success=False, handled=last is MISSING)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))

    async def auth_SCRAM__SHA__256(self, _, args):
        return await self._scram(args, "sha256", "SCRAM-SHA-256")

    async def auth_SCRAM__SHA__1(self, _, args):
        return await self._scram(args, "sha1", "SCRAM-SHA-1")

    async def auth_SCRAM__SHA__256__PLUS(self, _, args):
        return await self._scram(args, "sha256", "SCRAM-SHA-256-PLUS")

    async def auth_SCRAM__SHA__1__PLUS(self, _, args):
        return await self._scram(args, "sha1", "SCRAM-SHA-1-PLUS")

    async def _bearer(self, args, mech, parse):
        """XOAUTH2 (Google's) and OAUTHBEARER (RFC 7628): the token is checked
        against server.tokens; on failure a 334 with a JSON error is sent first
        and the client must answer it (empty line, or ^A for OAUTHBEARER)."""
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True).decode("utf-8", "replace")
            except binascii.Error:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await self._b64_line("")
            if blob is None:
                return AuthResult(success=False, handled=True)
        user, token = parse(blob)
        ok = user is not None and self.srv.tokens.get(user) == token
        self._record_auth(mech, user, ok)
        if ok:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        err = '{"status":"invalid_token","schemes":"bearer","scope":"mail"}'
        answer = await self.challenge_auth(err, encode_to_b64=True)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, _, args):
        def parse(blob):
            kv = dict(p.split("=", 1) for p in blob.split("\x01") if "=" in p)
            tok = kv.get("auth", "")
            return kv.get("user"), tok[7:] if tok.startswith("Bearer ") else None
        return await self._bearer(args, "XOAUTH2", parse)

    async def auth_OAUTHBEARER(self, _, args):
        def parse(blob):
            gs2, _, rest = blob.partition("\x01")
            user = None
            for part in gs2.split(","):
                if part.startswith("a="):
                    user = part[2:].replace("=2C", ",").replace("=3D", "=")
            kv = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
            tok = kv.get("auth", "")
            return user, tok[7:] if tok.startswith("Bearer ") else None
        return await self._bearer(args, "OAUTHBEARER", parse)

    async def auth_EXTERNAL(self, _, args):
        cert = self.conn.client_cert
        authz = ""
        if len(args) > 1:
            authz = base64.b64decode(args[1]).decode() if args[1] != "=" else ""
        else:
            r = await self._b64_line("")
            if r is None:
                return AuthResult(success=False, handled=True)
            authz = r
        cn = None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
        self._record_auth("EXTERNAL", authz or cn, cn is not None)
        if cn is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword((authz or cn).encode(), b""))


def _text(v):
    if v is None:
        return None
    if isinstance(v, LoginPassword):
        v = v.login
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class SMTPServer(Results):
    """A recording ESMTP server in the background loop; see module doc."""

    def __init__(self, certs=None, *, host="127.0.0.1", hostname="mx.test",
                 starttls=False, implicit_tls=False, require_starttls=False,
                 advertise_starttls=True, cert="server", client_ca=False,
                 auth=None, users=None, tokens=None, auth_required=False,
                 auth_require_tls=False,
                 size=None, dsn=False, eightbitmime=True, smtputf8=False,
                 pipelining=True, enhancedstatuscodes=True, extra_ehlo=(),
                 rcpt_rule=default_rcpt_rule, mail_reply=None, data_reply=None,
                 scram_iterations=4096, scram_bad_signature=False,
                 scram_cb_supported=None, scram_cb_corrupt=False, tls_max=None, tls_ems=True,
                 line_length_limit=1001, timeout=30, greeting=None):
        """
        certs: certs.Certs (needed for any TLS); cert: leaf name to present.
        starttls / implicit_tls / require_starttls (530 before STARTTLS);
        advertise_starttls=False: STARTTLS works but is not in the EHLO reply.
        client_ca: request a client certificate (for EXTERNAL).
        auth: list of mechanisms to offer, from PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1
          SCRAM-SHA-256 EXTERNAL XOAUTH2 OAUTHBEARER; users: {user: password}
          (default DEFAULT_USERS); tokens: {user: bearer token} (DEFAULT_TOKENS);
          auth_require_tls: offer/accept AUTH only inside TLS (default: offered in
          clear too, so a test sees a client that would send it).
        size: None = no SIZE; 0 = "SIZE" without a limit; n = "SIZE n" enforced.
        dsn, eightbitmime, smtputf8, pipelining, enhancedstatuscodes: advertise
          and accept the related parameters (BODY=, SMTPUTF8, RET/ENVID/NOTIFY/ORCPT).
        rcpt_rule(addr) -> reply or None (accept); mail_reply / data_reply force a
          reply to every MAIL / end of data.
        SCRAM channel binding (RFC 5802 §6): put SCRAM-SHA-256-PLUS /
          SCRAM-SHA-1-PLUS in auth to offer them; the server verifies tls-unique
          (TLS 1.2) and tls-exporter (TLS 1.3, RFC 9266).  tls_max="1.2" limits
          the server to TLS 1.2; tls_ems=False refuses the extended master
          secret (RFC 7627), which leaves tls-unique unsafe.  scram_cb_supported: the server supports
          binding (None: when a -PLUS is offered); True without -PLUS in auth
          simulates an attacker who removed -PLUS from the EHLO reply, so a
          client's "y" flag fails.  scram_cb_corrupt: the server expects the
          binding of a different channel (a man in the middle).
        """
        self.certs = certs
        self.host = host
        self.hostname = hostname
        self.implicit_tls = implicit_tls
        self.starttls = starttls or require_starttls
        self.require_starttls = require_starttls
        self.advertise_starttls = advertise_starttls
        self.cert = cert
        self.client_ca = client_ca
        self.auth = list(auth or [])
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.auth_required = auth_required
        self.auth_require_tls = auth_require_tls
        self.size = size
        self.dsn = dsn
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.pipelining = pipelining
        self.enhancedstatuscodes = enhancedstatuscodes
        self.extra_ehlo = list(extra_ehlo)
        self.rcpt_rule = rcpt_rule
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.scram_iterations = scram_iterations
        self.scram_bad_signature = scram_bad_signature
        self.scram_cb_supported = scram_cb_supported
        self.scram_cb_corrupt = scram_cb_corrupt
        self.tls_max = tls_max
        self.tls_ems = tls_ems
        self.line_length_limit = line_length_limit
        self.timeout = timeout
        self.greeting = greeting
        self.conns = []
        self._lock = threading.Lock()
        self._txn_done = threading.Event()
        self._server = None
        self._protocols = []
        self.port = None

    # -- parameters ------------------------------------------------------------
    def check_mail_params(self, params, tls):
        for p in params:
            k, eq, v = p.partition("=")
            k = k.upper()
            if k == "SIZE" and self.size is not None:
                if not v.isdigit():
                    return "501 5.5.4 Bad SIZE parameter"
                if self.size and int(v) > self.size:
                    return "552 5.3.4 Message size exceeds fixed maximum message size"
            elif k == "BODY" and self.eightbitmime and v.upper() in ("7BIT", "8BITMIME"):
                pass
            elif k == "SMTPUTF8" and self.smtputf8 and not eq:
                pass
            elif k in ("RET", "ENVID") and self.dsn:
                if k == "RET" and v.upper() not in ("FULL", "HDRS"):
                    return "501 5.5.4 Bad RET parameter"
            elif k == "AUTH" and self.auth:
                pass
            else:
                return "555 5.5.4 MAIL FROM parameter %s not recognized" % k
        return None

    def check_utf8(self, address, mail_params):
        """RFC 6531 3.4: a non-ASCII address needs SMTPUTF8 offered and used."""
        if address.isascii():
            return None
        if not self.smtputf8:
            return "553 5.6.7 non-ASCII address and no SMTPUTF8 offered"
        if not any(p.upper() == "SMTPUTF8" for p in mail_params):
            return "553 5.6.7 non-ASCII address without the SMTPUTF8 parameter"
        return None

    def check_rcpt_params(self, params):
        for p in params:
            k, eq, v = p.partition("=")
            k = k.upper()
            if k == "NOTIFY" and self.dsn:
                vals = v.upper().split(",")
                if not all(x in ("NEVER", "SUCCESS", "FAILURE", "DELAY") for x in vals) or \
                        ("NEVER" in vals and len(vals) > 1):
                    return "501 5.5.4 Bad NOTIFY parameter"
            elif k == "ORCPT" and self.dsn:
                if ";" not in v:
                    return "501 5.5.4 Bad ORCPT parameter"
            else:
                return "555 5.5.4 RCPT TO parameter %s not recognized" % k
        return None

    # -- life cycle ------------------------------------------------------------
    def _ssl_context(self):
        ctx = self.certs.server_context(self.cert, client_ca=self.client_ca)
        if self.tls_max:
            ctx.maximum_version = {"1.2": ssl.TLSVersion.TLSv1_2,
                                   "1.3": ssl.TLSVersion.TLSv1_3}[self.tls_max]
        if not self.tls_ems:
            ctx.options |= SSL_OP_NO_EXTENDED_MASTER_SECRET
        return ctx

    def _factory(self):
        tls_ctx = self._ssl_context() if self.starttls else None
        names = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
                 "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "EXTERNAL", "XOAUTH2",
                 "OAUTHBEARER"}
        smtp = RecordingSMTP(
            self, hostname=self.hostname, tls_context=tls_ctx,
            require_starttls=self.require_starttls, timeout=self.timeout,
            data_size_limit=self.size or None, enable_SMTPUTF8=True,
            auth_required=self.auth_required, auth_require_tls=self.auth_require_tls,
            auth_exclude_mechanism=[m for m in names if m not in self.auth],
            authenticator=self._authenticator, loop=_loop.get_loop(),
            ident=self.greeting or "ESMTP bluearrow-test")
        smtp.line_length_limit = self.line_length_limit
        self._protocols.append(smtp)
        return smtp

    def _authenticator(self, smtp, session, envelope, mechanism, data):
        ok = False
        if isinstance(data, LoginPassword):
            user = data.login.decode("utf-8", "replace")
            ok = self.users.get(user) == data.password.decode("utf-8", "replace")
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def start(self, sock=None):
        """sock: a bound socket to listen on instead of host and an ephemeral port
        (netlab.py makes one inside another network namespace)."""
        async def _start():
            ssl_ctx = self._ssl_context() if self.implicit_tls else None
            if sock is not None:
                return await _loop.get_loop().create_server(self._factory, sock=sock,
                                                            ssl=ssl_ctx)
            return await _loop.get_loop().create_server(
                self._factory, host=self.host, port=0, ssl=ssl_ctx,
                family=socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        self._server = _loop.run(_start())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self):
        if self._server is None:
            return

        async def _stop():
            self._server.close()
            for p in self._protocols:
                if p.transport is not None:
                    p.transport.close()
            await asyncio.sleep(0)
        try:
            _loop.run(_stop())
        finally:
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _add_conn(self, conn):
        with self._lock:
            self.conns.append(conn)
