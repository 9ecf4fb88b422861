"""Run a test server by hand, for debugging a client:

    cd tests/integration && /usr/bin/python3 -m servers smtp --starttls --auth PLAIN SCRAM-SHA-256
    cd tests/integration && /usr/bin/python3 -m servers lmtp
    cd tests/integration && /usr/bin/python3 -m servers fault stall_after_mail

Prints the port, the CA file and a ready msmtprc; on Ctrl-C prints the
transcript of every connection and the received messages.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from certs import make_certs  # noqa: E402
from servers import FAULT_KINDS, FaultServer, RawServer, SMTPServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(prog="python3 -m servers")
    ap.add_argument("kind", choices=["smtp", "raw", "lmtp", "fault"])
    ap.add_argument("fault", nargs="?", choices=FAULT_KINDS)
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--cert", default="server")
    ap.add_argument("--auth", nargs="*", default=[])
    ap.add_argument("--no-pipelining", action="store_true")
    ap.add_argument("--dsn", action="store_true")
    ap.add_argument("--size", type=int)
    ap.add_argument("--tls-max", choices=["1.2", "1.3"], help="smtp only (SCRAM-*-PLUS tests)")
    a = ap.parse_args()
    certs = make_certs(tempfile.mkdtemp(prefix="ba-certs-"))
    opts = dict(starttls=a.starttls, implicit_tls=a.implicit_tls, cert=a.cert, auth=a.auth,
                pipelining=not a.no_pipelining, dsn=a.dsn, size=a.size)
    if a.kind == "smtp":
        srv = SMTPServer(certs, tls_max=a.tls_max, **opts)
    elif a.kind == "fault":
        if not a.fault:
            ap.error("fault needs a kind: " + " ".join(FAULT_KINDS))
        srv = FaultServer(a.fault, certs, **{k: v for k, v in opts.items() if k != "size"})
    else:
        srv = RawServer(certs, lmtp=a.kind == "lmtp", **opts)
    srv.start()
    tls = a.starttls or a.implicit_tls
    print("listening on 127.0.0.1:%s  CA %s" % (srv.port, certs.ca))
    print("msmtprc:\n  account default\n  host localhost\n  port %s\n  tls %s\n"
          "  tls_starttls %s\n  tls_trust_file %s%s%s" % (
              srv.port, "on" if tls else "off", "off" if a.implicit_tls else "on", certs.ca,
              "\n  protocol lmtp" if a.kind == "lmtp" else "",
              "\n  auth on\n  user user\n  password password" if a.auth else ""))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    print(srv.transcript())
    for t in srv.messages:
        print("message from %s to %s, %d octets" % (t.mail_from, t.accepted_rcpts, len(t.data)))
    srv.stop()


if __name__ == "__main__":
    main()
