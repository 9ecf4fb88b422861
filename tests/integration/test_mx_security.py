"""Transport security of direct delivery in the test internet (netlab.py): MTA-STS
(RFC 8461) with a policy host on port 443 reached by name through the lab's DNS,
and DANE (RFC 7672) with TLSA records in DNSSEC-signed zones.

  enforce.test   MTA-STS enforce; its one MX presents a certificate for another name
  skip.test      MTA-STS enforce; MX 10 outside.elsewhere.test (not in the policy),
                 MX 20 mx.skip.test (in it, a certificate of the test CA)
  elsewhere.test no MX: its address (and outside.elsewhere.test) is a server without STARTTLS
  testing.test   MTA-STS testing; its MX presents a certificate for another name
  dane.test      signed; TLSA 3 1 1 of its MX's key (a certificate no CA here trusts)
  danebad.test   signed; TLSA 3 1 1 of another key
  danenotls.test signed; TLSA 3 1 1, the MX offers no STARTTLS
  danebogus.test signed, its TLSA signature spoiled: bogus
  daneta.test    signed; TLSA 2 0 1 of the test CA, the MX sends leaf and CA
  insecaddr.test signed; its MX host is a CNAME into unsigned plain.test (insecure
                 addresses), a TLSA record that matches nothing at the MX host name
  cnamebad.test  signed; its MX host is a CNAME to mx.target.test (signed), whose TLSA
                 record matches nothing
  tacname.test   signed; its MX host is a CNAME to mx.tatarget.test (signed, TLSA 2 0 1
                 of the test CA); the certificate names only mx.tacname.test
  ta2cname.test  signed; its MX host is a CNAME to mx.daneta.test (its TLSA 2 0 1 and
                 certificate for that name)
  noaddr.test    MX 10 gone.noaddr.test (no such name), MX 20 -> server X;
                 single.noaddr.test: only MX 10 gone.noaddr.test
  hosts.test     MX -> server X; the client's /etc/hosts says mx.hosts.test is server G
"""
import hashlib
import os

import pytest

import netlab
from servers.mtasts import PolicyServer

HERE = os.path.dirname(os.path.abspath(__file__))
STS, W, G, X, TT, D, N, TA, TA2 = ("192.0.2.%d" % n
                                    for n in (30, 31, 32, 33, 34, 40, 42, 43, 44))
MSG = (b"From: a@sender.test\nTo: x@sec.test\nDate: Sun, 06 Dec 2026 00:00:00 +0000\n"
       b"Message-ID: <sec@sender.test>\nSubject: sec\n\nbody\n")
SLOW = os.environ.get("BA_VALGRIND") == "1"
STS_DOMAINS = ("enforce.test", "skip.test", "testing.test")


def spki_sha256(path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def cert_sha256(path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    netlab.skip_unless_available()
    from certs import make_certs
    d = tmp_path_factory.mktemp("netlab-sec")
    certs = make_certs(str(d / "certs"), extra={
        "mtasts": ["mta-sts." + x for x in STS_DOMAINS],
        "mxskip": ["mx.skip.test"], "mxta": ["mx.daneta.test"],
        "mxtacname": ["mx.tacname.test"]})
    lab = netlab.Lab(d, certs)
    try:
        sts = "_mta-sts TXT \"v=STSv1; id=1\"\nmta-sts A %s\n" % STS
        lab.zone("enforce.test", "@ MX 10 mx\nmx A %s\n" % W + sts)
        lab.zone("skip.test", "@ MX 10 outside.elsewhere.test.\n@ MX 20 mx\nmx A %s\n" % G + sts)
        lab.zone("elsewhere.test", "outside A %s\n@ A %s\n" % (X, X))
        lab.zone("testing.test", "@ MX 10 mx\nmx A %s\n" % TT + sts)
        good = spki_sha256(certs.crt("untrusted"))
        tlsa = "_25._tcp.mx TLSA 3 1 1 %s\n"
        lab.zone("dane.test", "@ MX 10 mx\nmx A %s\n" % D + tlsa % good, signed=True)
        lab.zone("danebad.test", "@ MX 10 mx\nmx A %s\n" % D + tlsa % ("00" * 32), signed=True)
        lab.zone("danenotls.test", "@ MX 10 mx\nmx A %s\n" % N + tlsa % good, signed=True)
        lab.zone("danebogus.test", "@ MX 10 mx\nmx A %s\n" % D + tlsa % good, signed=True,
                 corrupt="TLSA")
        lab.zone("daneta.test", "@ MX 10 mx\nmx A %s\n_25._tcp.mx TLSA 2 0 1 %s\n" %
                 (TA, cert_sha256(certs.ca)), signed=True)
        # RFC 7672 §2.2.1 and §2.2.2: the addresses and CNAME expansion of MX hosts
        nomatch = "_25._tcp.mx TLSA 3 1 1 %s\n" % ("00" * 32)
        lab.zone("insecaddr.test", "@ MX 10 mx\nmx CNAME mx.plain.test.\n" + nomatch,
                 signed=True)
        lab.zone("plain.test", "mx A %s\n" % D)
        lab.zone("cnamebad.test", "@ MX 10 mx\nmx CNAME mx.target.test.\n", signed=True)
        lab.zone("target.test", "mx A %s\n" % D + nomatch, signed=True)
        lab.zone("tacname.test", "@ MX 10 mx\nmx CNAME mx.tatarget.test.\n", signed=True)
        lab.zone("tatarget.test", "mx A %s\n_25._tcp.mx TLSA 2 0 1 %s\n" %
                 (TA2, cert_sha256(certs.ca)), signed=True)
        lab.zone("ta2cname.test", "@ MX 10 mx\nmx CNAME mx.daneta.test.\n", signed=True)
        lab.zone("noaddr.test", "@ MX 10 gone\n@ MX 20 mx\nmx A %s\nsingle MX 10 gone\n" % X)
        lab.zone("hosts.test", "@ MX 10 mx\nmx A %s\n" % X)
        os.makedirs(lab.etc, exist_ok=True)
        with open("/etc/hosts") as f, open(os.path.join(lab.etc, "hosts"), "w") as h:
            h.write(f.read() + "\n%s mx.hosts.test\n" % G)
        lab.ta2 = lab.smtp(TA2, hostname="mx.tacname.test", starttls=True, cert="mxtacname")
        lab.w = lab.smtp(W, hostname="mx.enforce.test", starttls=True, cert="wronghost")
        lab.g = lab.smtp(G, hostname="mx.skip.test", starttls=True, cert="mxskip")
        lab.x = lab.smtp(X, hostname="outside.elsewhere.test")
        lab.tt = lab.smtp(TT, hostname="mx.testing.test", starttls=True, cert="wronghost")
        lab.d = lab.smtp(D, hostname="mx.dane.test", starttls=True, cert="untrusted")
        lab.n = lab.smtp(N, hostname="mx.danenotls.test")
        lab.ta = lab.smtp(TA, hostname="mx.daneta.test", starttls=True, cert="mxta")
        lab.host("sts", STS)
        with netlab._InNetns(lab.hosts[STS]):
            lab.sts = PolicyServer(certs, "mtasts", host=STS, port=443).start()
        for dom, mode, mx in (("enforce.test", "enforce", "mx.enforce.test"),
                              ("skip.test", "enforce", "mx.skip.test"),
                              ("testing.test", "testing", "mx.testing.test")):
            lab.sts.policies[dom] = ("version: STSv1\r\nmode: %s\r\nmx: %s\r\n"
                                     "max_age: 86400\r\n" % (mode, mx))
        lab.start()
        yield lab
    finally:
        if getattr(lab, "sts", None):
            lab.sts.stop()
        lab.close()


def bluearrow():
    b = os.path.join(os.environ.get("BA_BUILD_DIR") or os.path.join(HERE, "..", "..", "build"),
                     "bluearrow")
    if not os.path.exists(b):
        pytest.skip("bluearrow is not built")
    return b


def send(lab, tmp_path, rcpt, extra="", args=()):
    reset(lab)
    cfg = tmp_path / "config"
    fd = os.open(str(cfg), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("account default\nfrom a@sender.test\ntimeout %d\ntls_trust_file %s\n%s" %
                (30 if SLOW else 10, lab.certs.ca, extra))
    r = lab.run([bluearrow(), "sendmail", "-C", str(cfg)] + list(args) + [rcpt], input=MSG,
                timeout=120 if SLOW else 60, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    return r.returncode, r.stderr.decode(errors="replace")


def reset(lab):
    for s in lab.servers:
        s.conns.clear()
        s.txns.clear()


def delivered(srv, rcpt):
    return [t for t in srv.txns if t.data is not None and rcpt in t.accepted_rcpts]


def test_mta_sts_enforce_refuses_a_wrong_certificate(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@enforce.test")
    assert code == 75, err
    assert "MTA-STS requires TLS with a verified certificate" in err, err
    assert "not valid for host 'mx.enforce.test'" in err, err
    assert not delivered(lab.w, "r@enforce.test")
    assert lab.w.conns and all(c.plaintext_commands() == ["EHLO", "STARTTLS"]
                               for c in lab.w.conns)
    assert lab.sts.hits.get("enforce.test") == 1
    assert (tmp_path / "cache" / "bluearrow" / "mta-sts" / "enforce.test").exists()


def test_mta_sts_enforce_skips_an_mx_outside_the_policy(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@skip.test", args=["-v"])
    assert code == 0, err
    assert not lab.x.conns                       # MX 10, not in the policy: never contacted
    txn = delivered(lab.g, "r@skip.test")[0]
    assert txn.tls
    assert "outside.elsewhere.test: not an MX host of the MTA-STS policy" in err, err


def test_mta_sts_testing_delivers_and_logs(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@testing.test", args=["-v"])
    assert code == 0, err
    assert delivered(lab.tt, "r@testing.test")[0].tls
    assert "would not be accepted" in err and "mx.testing.test" in err, err
    # without -v: silent, as any successful delivery
    code, err = send(lab, tmp_path, "r@testing.test")
    assert code == 0 and err == "", err


def test_mta_sts_testing_findings_in_the_log_line(lab, tmp_path):
    log = tmp_path / "log"
    code, err = send(lab, tmp_path, "r@testing.test", extra="logfile %s\n" % log)
    assert code == 0 and err == "", err
    line = log.read_text()
    assert "exitcode=EX_OK mtasts_testing='mx.testing.test:25: certificate would not be " \
           "accepted: certificate is not valid for host \"mx.testing.test\"" in line, line
    # a domain without a policy in mode testing: no such field
    code, err = send(lab, tmp_path, "r@enforce.test", extra="logfile %s\n" % log)
    assert "mtasts_testing" not in log.read_text().splitlines()[-1]


def test_dane_match(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@dane.test", args=["-v"])
    assert code == 0, err
    assert delivered(lab.d, "r@dane.test")[0].tls
    assert "DANE-EE match" in err, err


def test_dane_ta_match(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@daneta.test")
    assert code == 0, err
    assert delivered(lab.ta, "r@daneta.test")[0].tls


def test_dane_mismatch(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@danebad.test")
    assert code == 75, err
    assert "matches none of the DANE TLSA records" in err, err
    assert not delivered(lab.d, "r@danebad.test")
    assert lab.d.conns and all(c.plaintext_commands() == ["EHLO", "STARTTLS"]
                               for c in lab.d.conns)


def test_dane_without_starttls_sends_nothing_in_clear(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@danenotls.test")
    assert code == 75, err
    assert "DANE requires TLS" in err and "STARTTLS" in err, err
    assert lab.n.conns
    assert all(c.plaintext_commands() in (["EHLO"], ["EHLO", "QUIT"]) for c in lab.n.conns), \
        [c.plaintext_commands() for c in lab.n.conns]
    assert not lab.n.txns


def test_dane_bogus_tlsa_is_temporary_and_connects_nowhere(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@danebogus.test")
    assert code == 75, err
    assert "TLSA" in err, err
    assert all(n == 0 for n in lab.connections().values()), lab.connections()


def test_dane_only_refuses_a_domain_without_dane(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@skip.test", extra="mx_tls_policy dane-only\n")
    assert code == 75, err
    assert "dane-only" in err
    assert all(n == 0 for n in lab.connections().values()), lab.connections()


def test_may_ignores_the_policies(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@danebad.test", extra="mx_tls_policy may\n")
    assert code == 0, err
    assert delivered(lab.d, "r@danebad.test")


def test_mx_command_shows_the_policy(lab, tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("account default\nfrom a@sender.test\ntls_trust_file %s\n" % lab.certs.ca)
    os.chmod(str(cfg), 0o600)
    r = lab.run([bluearrow(), "mx", "-C", str(cfg), "dane.test", "skip.test", "testing.test"],
                env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert "tlsa    3 1 1" in out and "[secure]" in out
    assert "requires  dane: mx.dane.test: 1 usable secure TLSA record" in out, out
    assert "mta-sts   mode enforce, id 1, max_age 86400, fetched" in out, out
    assert "requires  skip: outside.elsewhere.test" in out, out
    assert "requires  verify: mx.skip.test" in out, out
    assert "mta-sts   mode testing" in out, out
    assert not (tmp_path / "cache" / "bluearrow").exists()   # `mx` writes no cache


def test_mx_command_shows_aliases_and_insecure_addresses(lab, tmp_path):
    r = lab.run([bluearrow(), "mx", "tacname.test", "insecaddr.test"])
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert "alias   of mx.tatarget.test (CNAME)" in out, out
    assert "requires  dane: mx.tacname.test: 1 usable secure TLSA record at its CNAME target " \
           "mx.tatarget.test: DANE" in out, out
    assert "requires  may: mx.insecaddr.test: opportunistic STARTTLS (no DANE: its addresses " \
           "are not DNSSEC-secure" in out, out


def test_verify_requires_a_verified_certificate(lab, tmp_path):
    # elsewhere.test has no MX and no policy: its implicit MX offers no STARTTLS
    code, err = send(lab, tmp_path, "r@elsewhere.test", extra="mx_tls_policy verify\n")
    assert code == 75, err
    assert "mx_tls_policy requires TLS with a verified certificate" in err, err
    assert not lab.x.txns
    assert all(c.plaintext_commands() in (["EHLO"], ["EHLO", "QUIT"]) for c in lab.x.conns)
    # the same host without the setting: opportunistic, delivered in clear
    code, err = send(lab, tmp_path, "r@elsewhere.test")
    assert code == 0, err
    assert delivered(lab.x, "r@elsewhere.test")


def test_mx_probe_checks_dane(lab, tmp_path):
    r = lab.run([bluearrow(), "mx", "--probe", "dane.test", "danebad.test"])
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode() + out
    assert "probe   mx.dane.test:25: STARTTLS TLS1.3, certificate matches its TLSA records " \
           "(DANE-EE" in out, out
    assert "probe   mx.danebad.test:25: STARTTLS, certificate NOT verified" in out, out
    assert "matches none of the DANE TLSA records" in out, out


def test_mx_probe_without_starttls_where_dane_requires_it(lab, tmp_path):
    r = lab.run([bluearrow(), "mx", "--probe", "danenotls.test"])
    out = r.stdout.decode()
    assert "probe   mx.danenotls.test:25: no STARTTLS offered: delivery would fail (DANE " \
           "requires TLS)" in out, out


def test_dane_needs_secure_addresses(lab, tmp_path):
    # the MX RRset and the TLSA record are secure, the host's address is not (a CNAME into
    # an unsigned zone): no DANE for it (RFC 7672 §2.2.1), so the record that matches
    # nothing does not stop an opportunistic delivery
    code, err = send(lab, tmp_path, "r@insecaddr.test", args=["-v"])
    assert code == 0, err
    assert delivered(lab.d, "r@insecaddr.test")[0].tls
    assert "its addresses are not DNSSEC-secure" in err, err


def test_dane_tlsa_at_the_cname_expansion(lab, tmp_path):
    # RFC 7672 §2.2.2: the TLSA base domain of an alias is its expansion
    code, err = send(lab, tmp_path, "r@cnamebad.test")
    assert code == 75, err
    assert "matches none of the DANE TLSA records" in err, err
    assert not delivered(lab.d, "r@cnamebad.test")


def test_dane_ta_accepts_the_mx_host_name_of_an_alias(lab, tmp_path):
    # §3.2.2: the certificate names the MX host name, the records are at its expansion
    code, err = send(lab, tmp_path, "r@tacname.test", args=["-v"])
    assert code == 0, err
    assert "DANE-TA match" in err, err
    assert delivered(lab.ta2, "r@tacname.test")[0].tls


def test_dane_ta_accepts_the_expansion_of_an_alias(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@ta2cname.test", args=["-v"])
    assert code == 0, err
    assert "DANE-TA match" in err, err
    assert delivered(lab.ta, "r@ta2cname.test")[0].tls


def test_an_mx_host_without_address_is_skipped(lab, tmp_path):
    code, err = send(lab, tmp_path, "r@noaddr.test", args=["-v"])
    assert code == 0, err
    assert "MX host 'gone.noaddr.test' does not exist" in err, err
    assert delivered(lab.x, "r@noaddr.test")
    # the only MX without an address: a permanent failure, as an unresolvable name was
    code, err = send(lab, tmp_path, "r@single.noaddr.test")
    assert code == 68, err
    assert "MX host 'gone.noaddr.test' does not exist" in err, err


def test_connects_to_the_address_of_the_dns_answer(lab, tmp_path):
    # /etc/hosts (the system resolver's first source) says otherwise: not asked
    code, err = send(lab, tmp_path, "r@hosts.test")
    assert code == 0, err
    assert delivered(lab.x, "r@hosts.test")
    assert not lab.g.conns


# The reference: the DANE cases (and the MTA-STS domains, which Postfix alone does not
# evaluate) through Postfix with smtp_tls_security_level = dane (netlab.Postfix).  Each row:
# case, recipient, Postfix's status, the server that must have the message.
POSTFIX_CASES = [
    ("DANE-EE match", "pf1@dane.test", "sent", D),
    ("DANE-TA match", "pf2@daneta.test", "sent", TA),
    ("DANE mismatch", "pf3@danebad.test", "deferred", None),
    ("DANE, no STARTTLS offered", "pf4@danenotls.test", "deferred", None),
    ("DANE, bogus TLSA signature", "pf5@danebogus.test", "deferred", None),
    ("MTA-STS enforce, wrong certificate (no MTA-STS in Postfix)", "pf6@enforce.test", "sent", W),
    ("MTA-STS enforce, MX outside the policy (no MTA-STS in Postfix)", "pf7@skip.test", "sent",
     X),
    # Postfix 3.7 falls back to the TLSA records of the MX host name when its CNAME
    # expansion is insecure; RFC 7672 §2.2.1 (and bluearrow) apply no DANE then
    ("DANE, insecure addresses of the MX host", "pf8@insecaddr.test", "deferred", None),
    ("DANE, TLSA at the CNAME expansion, mismatch", "pf9@cnamebad.test", "deferred", None),
    # Postfix 3.7 checks a DANE-TA certificate against the expansion only; RFC 7672 §3.2.2
    # (and bluearrow) accept the MX host name too
    ("DANE-TA, certificate for the MX host name of an alias", "pf10@tacname.test", "deferred",
     None),
    ("/etc/hosts disagrees with the DNS", "pf11@hosts.test", "sent", X),
    ("DANE-TA, certificate for the expansion of an alias", "pf12@ta2cname.test", "sent", TA),
]


@pytest.fixture
def postfix(lab):
    """Postfix for its own test only: it retries deferred mail in the background."""
    yield from netlab.postfix_for_one_test(lab, SLOW)


def test_postfix_reference(lab, postfix):
    reset(lab)
    netlab.assert_postfix_fates(lab, postfix, POSTFIX_CASES, MSG, delivered)
    for rcpt in ("pf3@danebad.test", "pf4@danenotls.test", "pf5@danebogus.test",
                 "pf9@cnamebad.test"):
        assert not any(delivered(s, rcpt) for s in lab.servers if hasattr(s, "txns")), rcpt
