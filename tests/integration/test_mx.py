"""Direct delivery to the recipient domain's MX, in a test internet (netlab.py).

One lab for the module: NSD serving the zones below (sec.test and bogus.test
signed; bogus.test's MX signature spoiled), a validating Unbound on the
client's loopback, and SMTP servers on port 25 of their own namespaces.
bluearrow runs in the client namespace with an account that has no host.

  pref.test      MX 10 mx-down (refuses), MX 15 mx-busy (421 greeting),
                 MX 20 mx-a, MX 30 mx-b
  equal.test     MX 10 mx-a, MX 10 mx-b (both must be chosen over some runs)
  implicit.test  no MX, A -> server C (implicit MX, RFC 5321 §5.1)
  nullmx.test    MX 0 . and an A record pointing at server C (RFC 7505: no
                 connection may be made)
  nosuch.pref.test  does not exist (NXDOMAIN)
  servfail.test  the resolver answers SERVFAIL
  sec.test       signed: MX 10 mx -> server S (STARTTLS, test CA certificate)
  bogus.test     signed, its MX signature spoiled: the resolver says SERVFAIL
  tempfail.test  MX -> server T, which answers 451 to every RCPT
  brokentls.test MX -> a server whose STARTTLS handshake fails (then plaintext)
  slow.test      its DNS server never answers: the account's timeout decides
  bücher.test    (xn--bcher-kva.test) an IDN domain, implicit MX -> server C
"""
import os
import time

import pytest

import netlab
from servers import RawServer

HERE = os.path.dirname(os.path.abspath(__file__))
A, B, C, S, T, BUSY, DOWN, BROKEN = ("192.0.2.%d" % n for n in (11, 12, 13, 15, 16, 14, 20, 17))
MSG = (b"From: a@sender.test\nTo: x@pref.test\nDate: Sun, 06 Dec 2026 00:00:00 +0000\n"
       b"Message-ID: <mx@sender.test>\nSubject: mx\n\nbody\n")
SLOW = os.environ.get("BA_VALGRIND") == "1"


def temp_rcpt(addr):
    return "451 4.3.0 try again later"


class BrokenTLS(RawServer):
    """Offers STARTTLS, says 220, then answers the ClientHello with plain text: the
    handshake fails.  Mail in clear is accepted."""

    def cmd_STARTTLS(self, s, arg):
        s.reply("220 2.0.0 ready to start TLS")
        s.sock.sendall(b"this is not TLS\r\n")
        return "quit"


@pytest.fixture(scope="module")
def lab():
    netlab.skip_unless_available()
    from certs import make_certs
    lab = netlab.Lab()
    lab.certs = make_certs(os.path.join(lab.dir, "certs"))
    try:
        lab.zone("pref.test", """
            @ MX 10 mx-down
            @ MX 15 mx-busy
            @ MX 20 mx-a
            @ MX 30 mx-b
            mx-down A %s
            mx-busy A %s
            mx-a A %s
            mx-b A %s
        """ % (DOWN, BUSY, A, B))
        lab.zone("equal.test", """
            @ MX 10 mx-a
            @ MX 10 mx-b
            mx-a A %s
            mx-b A %s
        """ % (A, B))
        lab.zone("implicit.test", "@ A %s" % C)
        lab.zone("nullmx.test", """
            @ MX 0 .
            @ A %s
        """ % C)
        lab.zone("brokentls.test", "@ MX 10 mx\nmx A %s" % BROKEN)
        lab.zone("tempfail.test", """
            @ MX 10 mx
            mx A %s
        """ % T)
        lab.zone("sec.test", """
            @ MX 10 mx
            mx A %s
        """ % S, signed=True)
        lab.zone("bogus.test", """
            @ MX 10 mx
            mx A %s
        """ % A, signed=True, corrupt="MX")
        lab.zone_servfail("servfail.test")
        lab.zone_blackhole("slow.test")
        lab.zone("slowaddr.test", "@ MX 10 mx.slow.test.")   # its MX's address never comes
        lab.zone("xn--bcher-kva.test", "@ A %s" % C)     # bücher.test: implicit MX
        lab.host("down", DOWN)
        lab.a = lab.smtp(A, hostname="mx-a.pref.test")
        lab.b = lab.smtp(B, hostname="mx-b.pref.test")
        lab.c = lab.smtp(C, hostname="implicit.test")
        lab.s = lab.smtp(S, hostname="mx.sec.test", starttls=True)
        lab.t = lab.smtp(T, hostname="mx.tempfail.test", rcpt_rule=temp_rcpt)
        lab.broken = lab.smtp(BROKEN, cls=BrokenTLS, hostname="mx.brokentls.test",
                              starttls=True)
        lab.busy = lab.smtp(BUSY, cls=RawServer, hostname="mx-busy.pref.test",
                            replies={"GREETING": "421 4.3.2 too busy, try another"})
        lab.remote = lab.client_ns("remote", "192.0.2.3", netlab.DNS_ADDR)
        lab.start()
        yield lab
    finally:
        lab.close()


def reset(lab):
    for s in lab.servers:
        s.conns.clear()
        if hasattr(s, "txns"):
            try:
                s.txns.clear()
            except AttributeError:
                pass


def config(tmp_path, extra=""):
    path = tmp_path / "config"
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("account default\nfrom a@sender.test\ntimeout %d\n%s" %
                (30 if SLOW else 10, extra))
    return str(path)


def bluearrow():
    b = os.path.join(os.environ.get("BA_BUILD_DIR") or os.path.join(HERE, "..", "..", "build"),
                     "bluearrow")
    if not os.path.exists(b):
        pytest.skip("bluearrow is not built")
    return b


def send(lab, cfg, *rcpts, extra=()):
    r = lab.run([bluearrow(), "sendmail", "-C", cfg] + list(extra) + list(rcpts), input=MSG,
                timeout=120 if SLOW else 60)
    return r.returncode, r.stderr.decode(errors="replace")


def delivered(srv, rcpt):
    return [t for t in srv.txns if t.data is not None and rcpt in t.accepted_rcpts]


def test_preference_order_and_fallback(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "x@pref.test")
    assert code == 0, err
    # mx-down refused the connection, mx-busy greeted with 421: mx-a (20) took it, not mx-b
    assert delivered(lab.a, "x@pref.test"), err
    assert not lab.b.conns
    assert len(lab.busy.conns) == 1
    txn = delivered(lab.a, "x@pref.test")[0]
    assert txn.mail_from == "a@sender.test"
    assert not lab.a.conns[-1].auth                  # never credentials on port 25
    assert lab.a.conns[-1].helo and "localhost" not in lab.a.conns[-1].helo[0]


def test_equal_preferences_both_chosen(lab, tmp_path):
    reset(lab)
    cfg = config(tmp_path)
    for i in range(20):
        code, err = send(lab, cfg, "e%d@equal.test" % i)
        assert code == 0, err
        if lab.a.conns and lab.b.conns:
            break
    assert lab.a.conns and lab.b.conns, "20 runs all went to one of two MX of preference 10"


def test_implicit_mx(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "i@implicit.test")
    assert code == 0, err
    assert delivered(lab.c, "i@implicit.test")


def test_null_mx_is_permanent_without_connection(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "n@nullmx.test")
    assert code == 69, err                            # EX_UNAVAILABLE
    assert "null MX" in err
    assert all(n == 0 for n in lab.connections().values()), lab.connections()


def test_nxdomain_is_permanent(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "n@nosuch.pref.test")
    assert code == 68, err                            # EX_NOHOST
    assert "does not exist" in err


def test_servfail_is_temporary(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "s@servfail.test")
    assert code == 75, err                            # EX_TEMPFAIL
    assert "SERVFAIL" in err or "resolver" in err


def test_bogus_signature_is_temporary_and_sends_nothing(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "b@bogus.test")
    assert code == 75, err
    assert all(n == 0 for n in lab.connections().values())


def test_dns_deadline(lab, tmp_path):
    reset(lab)
    cfg = config(tmp_path)
    with open(cfg, "a") as f:
        f.write("timeout 2\n")   # the deadline starts at the query: valgrind's start-up aside
    t0 = time.monotonic()
    code, err = send(lab, cfg, "d@slow.test")
    took = time.monotonic() - t0
    assert code == 75, err
    assert "no DNS answer in time" in err, err
    assert took < (25 if SLOW else 6), took


def test_address_lookup_deadline(lab, tmp_path):
    """The MX answers, the lookup of its host's address never does: the deadline ends the
    wait with a temporary failure, and nothing is connected to."""
    reset(lab)
    cfg = config(tmp_path)
    with open(cfg, "a") as f:
        f.write("timeout 2\n")
    t0 = time.monotonic()
    code, err = send(lab, cfg, "d@slowaddr.test")
    took = time.monotonic() - t0
    assert code == 75, err
    assert "no DNS answer in time" in err and "mx.slow.test" in err, err
    assert took < (25 if SLOW else 6), took
    assert all(n == 0 for n in lab.connections().values())


def test_idn_domain_as_a_label(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "i@b\u00fccher.test")
    assert code == 0, err
    # the server lacks SMTPUTF8: the address goes out with the A-label
    assert delivered(lab.c, "i@xn--bcher-kva.test"), [t.rcpts for t in lab.c.txns]


def test_starttls_opportunistic(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "t@sec.test")
    assert code == 0, err
    txn = delivered(lab.s, "t@sec.test")[0]
    assert txn.tls
    assert lab.s.conns[-1].plaintext_commands() == ["EHLO", "STARTTLS"]


def test_failed_handshake_falls_back_to_plaintext(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "p@brokentls.test")
    assert code == 0, err
    assert len(lab.broken.conns) == 2                 # the handshake, then in clear
    assert delivered(lab.broken, "p@brokentls.test")


def test_three_domains_each_recipients_fate(lab, tmp_path):
    reset(lab)
    code, err = send(lab, config(tmp_path), "one@pref.test", "two@implicit.test",
                     "three@nullmx.test", "four@tempfail.test")
    assert code == 75, err      # one recipient may still be reached: temporary
    assert delivered(lab.a, "one@pref.test")
    assert delivered(lab.c, "two@implicit.test")
    assert "recipient 'one@pref.test': delivered" in err
    assert "recipient 'two@implicit.test': delivered" in err
    assert "recipient 'three@nullmx.test': failed: 556 5.1.10" in err
    assert "recipient 'four@tempfail.test': deferred: 451" in err
    assert "2 of 4 recipients not delivered" in err


def test_partial_failure_queues_only_the_deferred(lab, tmp_path):
    reset(lab)
    outbox = tmp_path / "outbox"
    cfg = config(tmp_path, "queue on_failure\noutbox %s\n" % outbox)
    code, err = send(lab, cfg, "one@pref.test", "three@nullmx.test", "four@tempfail.test")
    assert code == 0, err
    assert "queued as" in err
    r = lab.run([bluearrow(), "outbox", "-C", cfg, "list"])
    out = r.stdout.decode() + r.stderr.decode()
    to = [ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("to ")]
    assert to == ["<four@tempfail.test>"], out


def test_flush_never_sends_twice_to_a_delivered_domain(lab, tmp_path):
    """A queued message for three domains: the flush delivers one, one fails for good, one
    is deferred; the next flush must try only the deferred one."""
    reset(lab)
    outbox = tmp_path / "outbox"
    cfg = config(tmp_path, "outbox %s\n" % outbox)
    code, err = send(lab, cfg, "q1@pref.test", "q2@tempfail.test", "q3@nullmx.test",
                     extra=["-odq"])
    assert code == 0, err
    for _ in range(2):
        r = lab.run([bluearrow(), "outbox", "-C", cfg, "flush"])
        assert r.returncode == 75, r.stderr.decode()
        out = lab.run([bluearrow(), "outbox", "-C", cfg, "list"]).stdout.decode()
        for ident in [ln.split()[0] for ln in out.splitlines() if ln and ln[0].isdigit()]:
            lab.run([bluearrow(), "outbox", "-C", cfg, "retry", ident])   # due again now
    assert len(delivered(lab.a, "q1@pref.test")) == 1
    assert len(lab.c.conns) == 0                     # the null MX domain: never connected
    assert len(lab.t.conns) == 2
    out = lab.run([bluearrow(), "outbox", "-C", cfg, "list"]).stdout.decode()
    to = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("to ")]
    # each recipient not delivered shows the reply that refused it
    assert to == ["to <q1@pref.test> (sent)",
                  "to <q2@tempfail.test>: 451 4.3.0 try again later",
                  "to <q3@nullmx.test> (failed): 556 domain 'nullmx.test' accepts no mail "
                  "(null MX)"], out


def test_mx_command_dnssec_status(lab, tmp_path):
    r = lab.run([bluearrow(), "mx", "sec.test", "pref.test"])
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "sec.test" in out and "secure" in out
    assert "mx.sec.test" in out and S in out
    assert "pref.test" in out and "insecure" in out
    lines = [ln for ln in out.splitlines() if "pref.test" in ln and " MX " in ln or "mx-" in ln]
    assert lines, out


def test_mx_command_probe(lab, tmp_path):
    r = lab.run([bluearrow(), "mx", "--probe", "sec.test", "equal.test"])
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    # mx.sec.test offers STARTTLS with the test CA's "localhost" certificate: not verified
    probe = [ln for ln in out.splitlines() if "probe" in ln]
    assert any("mx.sec.test:25: STARTTLS" in ln and "NOT verified" in ln for ln in probe), out
    # the hosts of equal.test do not offer STARTTLS
    assert any("mx-a.equal.test:25" in ln and "STARTTLS" in ln for ln in probe), out
    assert len(lab.s.conns) >= 1


def test_mx_command_failures(lab, tmp_path):
    r = lab.run([bluearrow(), "mx", "nullmx.test"])
    assert r.returncode == 69 and "null MX" in r.stdout.decode() + r.stderr.decode()
    r = lab.run([bluearrow(), "mx", "bogus.test"])
    assert r.returncode == 75


def test_trust_anchor_with_libunbound(lab, tmp_path):
    cfg = config(tmp_path, "dnssec_trust_anchor %s\n" % lab.anchor("sec.test"))
    r = lab.run([bluearrow(), "mx", "-C", cfg, "sec.test"])
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "secure" in out and "libunbound" in out
    r = lab.run([bluearrow(), "mx", "-C", cfg, "bogus.test"])
    assert r.returncode == 75, r.stdout.decode()


# The reference: the same cases through Postfix set up for direct delivery with DANE
# (netlab.Postfix).  Each row: recipient, bluearrow's outcome (tested above), Postfix's.
POSTFIX_CASES = [
    ("preference order and fallback", "pf1@pref.test", "sent", A),
    ("implicit MX", "pf2@implicit.test", "sent", C),
    ("null MX: no connection", "pf3@nullmx.test", "bounced", None),
    ("NXDOMAIN", "pf4@nosuch.pref.test", "bounced", None),
    ("SERVFAIL", "pf5@servfail.test", "deferred", None),
    ("bogus signature", "pf6@bogus.test", "deferred", None),
    ("4xx to RCPT", "pf7@tempfail.test", "deferred", T),
    ("STARTTLS offered (DANE level, no TLSA)", "pf8@sec.test", "sent", S),
    ("failed STARTTLS handshake", "pf9@brokentls.test", "deferred", None),
]


@pytest.fixture
def postfix(lab):
    """Per test: a Postfix left running would retry its deferred recipients (server T)
    while later tests count connections."""
    yield from netlab.postfix_for_one_test(lab, SLOW)


def test_postfix_reference(lab, postfix):
    reset(lab)
    netlab.assert_postfix_fates(lab, postfix, POSTFIX_CASES, MSG, delivered)
    # Postfix never connected for the null MX domain (its A record points at server C,
    # which saw only pf2's connection)
    assert len(lab.c.conns) == 1
    # after a failed handshake Postfix defers (4.7.5) and, on the retry, goes in plaintext
    # (a "TLS is not working here" note in its connection cache, smtp_tls_security_level
    # may); bluearrow retries at once on a new connection
    import re
    import time as _t
    deadline = _t.monotonic() + 15
    while _t.monotonic() < deadline:
        log = open(postfix.log).read()
        if re.search(r"to=<pf9@brokentls.test>,.* status=sent", log):
            break
        _t.sleep(0.2)
    assert re.search(r"to=<pf9@brokentls.test>,.* status=sent", open(postfix.log).read())
    assert delivered(lab.broken, "pf9@brokentls.test")


def test_resolver_elsewhere_is_indeterminate_and_libunbound_validates(lab, tmp_path):
    """A client whose resolver is not on loopback (NSD itself, answering for its zones):
    its AD bit is not believed; with the trust anchor libunbound validates, so a spoiled
    signature is reported as bogus by bluearrow itself, not as the resolver's SERVFAIL."""
    r = lab.run([bluearrow(), "mx", "sec.test"], ns=lab.remote)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "not on loopback" in out and "indeterminate" in out and " secure" not in out, out
    anchors = tmp_path / "anchors"
    anchors.write_text(open(lab.anchor("sec.test")).read() + open(lab.anchor("bogus.test")).read())
    cfg = config(tmp_path, "dnssec_trust_anchor %s\n" % anchors)
    r = lab.run([bluearrow(), "mx", "-C", cfg, "sec.test", "pref.test"], ns=lab.remote)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "dnssec    secure" in out and "dnssec    insecure" in out, out
    r = lab.run([bluearrow(), "mx", "-C", cfg, "bogus.test"], ns=lab.remote)
    out = r.stdout.decode()
    assert r.returncode == 75, out
    assert "DNSSEC validation of 'bogus.test' MX failed (bogus)" in out, out
    # and a send to it: temporary, nothing sent
    reset(lab)
    rr = lab.run([bluearrow(), "sendmail", "-C", cfg, "b@bogus.test"], input=MSG, ns=lab.remote)
    assert rr.returncode == 75, rr.stderr.decode()
    assert "bogus" in rr.stderr.decode()
    assert all(n == 0 for n in lab.connections().values())
