"""Test certificates, generated at run time (python3-cryptography).

make_certs(dir) writes a private CA, a second "other" CA and a set of leaf
certificates into dir and returns a Certs object with their paths.  Every
leaf is signed by the test CA unless its name says otherwise:

  server        localhost, 127.0.0.1, ::1; serverAuth; valid now
  expired       same names; notAfter in the past
  notyet        same names; notBefore in the future
  wronghost     only wrong.example.invalid
  untrusted     localhost..., but signed by the other CA
  clientonly    localhost...; extendedKeyUsage clientAuth only
  client        a client certificate (CN=client.test, user@example.test) for EXTERNAL
  dnsonly       only the DNS name localhost (no address): not valid for 127.0.0.1
  ipasdns       127.0.0.1 and ::1 written as DNS names, not iPAddress entries (misissued)
  ipcnonly      CN=127.0.0.1 and no subjectAltName at all

Each leaf X has X.crt (leaf only), X.key and X.chain (leaf + issuer).  ca.crt is
the trust file to give a client; other-ca.crt the untrusted CA.  Keys are ECDSA
P-256 so generation takes milliseconds.
"""
import datetime
import ipaddress
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LEAVES = ("server", "expired", "notyet", "wronghost", "untrusted",
          "clientonly", "client", "dnsonly", "ipasdns", "ipcnonly")
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bluearrow tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(names):
    out = []
    for n in names:
        if n.startswith("dns:"):        # an address written as a DNS name (misissued)
            out.append(x509.DNSName(n[4:]))
            continue
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def _ca(cn, now):
    key = _key()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key, ca_cert, cn, names, eku, not_before, not_after, email=None):
    key = _key()
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn)).issuer_name(ca_cert.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                      crl_sign=False, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=True, encipher_only=False,
                                      decipher_only=False), critical=True)
         .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    sans = list(_san(names)) if names else []
    if email:
        sans.append(x509.RFC822Name(email))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM)


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


class Certs:
    """Paths of the generated files; attributes named after the leaves."""

    def __init__(self, directory):
        self.dir = str(directory)
        self.ca = os.path.join(self.dir, "ca.crt")
        self.other_ca = os.path.join(self.dir, "other-ca.crt")

    def crt(self, name):
        return os.path.join(self.dir, name + ".crt")

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def chain(self, name):
        return os.path.join(self.dir, name + ".chain")

    def server_context(self, name="server", client_ca=False):
        """An ssl.SSLContext for a server presenting leaf `name`.  With client_ca a
        client certificate signed by the test CA is requested (optional)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.chain(name), self.key(name))
        if client_ca:
            ctx.load_verify_locations(self.ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL

        def note_sni(sslobj, server_name, _ctx):
            # remembered on the connection's ssl object: conn.sni in the servers
            try:
                sslobj.sni_name = server_name
            except AttributeError:
                pass
            return None
        ctx.sni_callback = note_sni
        return ctx

    def client_context(self):
        """An ssl.SSLContext that trusts the test CA (for smtplib checks)."""
        return ssl.create_default_context(cafile=self.ca)

    def fingerprint(self, name="server", algo="sha256"):
        """Colon-separated uppercase hex fingerprint (msmtp tls_fingerprint syntax)."""
        with open(self.crt(name), "rb") as f:
            c = x509.load_pem_x509_certificate(f.read())
        h = hashes.SHA256() if algo == "sha256" else hashes.SHA1()
        return ":".join("%02X" % b for b in c.fingerprint(h))


def make_certs(directory, extra=None):
    """extra: {leaf name: (DNS names...)} of more server leaves signed by the test CA."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    day = datetime.timedelta(days=1)
    ca_key, ca = _ca("bluearrow test CA", now)
    oca_key, oca = _ca("bluearrow other CA", now)
    srv = [ExtendedKeyUsageOID.SERVER_AUTH]
    spec = {
        "server": (ca_key, ca, "localhost", LOCAL_NAMES, srv, now - day, now + 365 * day),
        "expired": (ca_key, ca, "localhost", LOCAL_NAMES, srv, now - 30 * day, now - 2 * day),
        "notyet": (ca_key, ca, "localhost", LOCAL_NAMES, srv, now + 30 * day, now + 60 * day),
        "wronghost": (ca_key, ca, "wrong.example.invalid", ("wrong.example.invalid",), srv,
                      now - day, now + 365 * day),
        "untrusted": (oca_key, oca, "localhost", LOCAL_NAMES, srv, now - day, now + 365 * day),
        "clientonly": (ca_key, ca, "localhost", LOCAL_NAMES, [ExtendedKeyUsageOID.CLIENT_AUTH],
                       now - day, now + 365 * day),
        "client": (ca_key, ca, "client.test", (), [ExtendedKeyUsageOID.CLIENT_AUTH],
                   now - day, now + 365 * day),
        "dnsonly": (ca_key, ca, "localhost", ("localhost",), srv, now - day, now + 365 * day),
        "ipasdns": (ca_key, ca, "127.0.0.1", ("dns:127.0.0.1", "dns:::1"), srv, now - day,
                    now + 365 * day),
        "ipcnonly": (ca_key, ca, "127.0.0.1", (), srv, now - day, now + 365 * day),
    }
    for name, names in (extra or {}).items():
        spec[name] = (ca_key, ca, names[0], tuple(names), srv, now - day, now + 365 * day)
    certs = Certs(directory)
    with open(certs.ca, "wb") as f:
        f.write(_pem_cert(ca))
    with open(certs.other_ca, "wb") as f:
        f.write(_pem_cert(oca))
    for name, (ik, ic, cn, names, eku, nb, na) in spec.items():
        email = "user@example.test" if name == "client" else None
        k, c = _leaf(ik, ic, cn, names, eku, nb, na, email)
        with open(certs.crt(name), "wb") as f:
            f.write(_pem_cert(c))
        with open(certs.chain(name), "wb") as f:
            f.write(_pem_cert(c) + _pem_cert(ic))
        fd = os.open(certs.key(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_pem_key(k))
    return certs


if __name__ == "__main__":
    import sys
    print(make_certs(sys.argv[1] if len(sys.argv) > 1 else "certs").dir)
