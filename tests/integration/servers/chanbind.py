"""Server side channel binding data for SCRAM-*-PLUS (RFC 5802 §6).

tls-unique (RFC 5929 §3): Python's ssl gives it, for TLS 1.2 only (RFC 9266 §3:
undefined for TLS 1.3).  tls-exporter (RFC 9266 §2): 32 bytes of the TLS
exporter with label "EXPORTER-Channel-Binding" and an empty context.  Python
3.11's ssl has no exporter API, so it is read through ctypes from the same
libssl the _ssl module uses; the SSL* is taken from the _ssl object and checked
by comparing SSL_get_finished() with get_channel_binding("tls-unique") first,
so a wrong guess gives None (tls-exporter unverifiable) instead of bad data.
"""
import ctypes
import ctypes.util
import sys

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"   # RFC 9266 §2
EXPORTER_LEN = 32

_libssl = None


def _lib():
    global _libssl
    if _libssl is None:
        name = ctypes.util.find_library("ssl") or "libssl.so.3"
        lib = ctypes.CDLL(name)
        lib.SSL_export_keying_material.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
            ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        lib.SSL_export_keying_material.restype = ctypes.c_int
        lib.SSL_get_finished.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.SSL_get_finished.restype = ctypes.c_size_t
        lib.SSL_get_peer_finished.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.SSL_get_peer_finished.restype = ctypes.c_size_t
        _libssl = lib
    return _libssl


def _ssl_ptr(sslobj):
    """SSL* of an ssl.SSLObject / SSLSocket: PySSLSocket is PyObject_HEAD,
    PyObject *Socket, SSL *ssl (Modules/_ssl.c, CPython 3.8-3.12)."""
    inner = getattr(sslobj, "_sslobj", sslobj)
    if inner is None:
        return None
    off = sys.getsizeof(object()) + ctypes.sizeof(ctypes.c_void_p)
    ptr = ctypes.c_void_p.from_address(id(inner) + off).value
    if not ptr:
        return None
    # self-check with a value Python computes itself (TLS 1.2 only gives one
    # that is defined; on TLS 1.3 OpenSSL still returns the Finished bytes)
    want = sslobj.get_channel_binding("tls-unique")
    buf = ctypes.create_string_buffer(64)
    lib = _lib()
    got = []
    for f in (lib.SSL_get_finished, lib.SSL_get_peer_finished):
        n = f(ptr, buf, 64)
        got.append(buf.raw[:min(n, 64)])
    if not want or want not in got:
        return None
    return ptr


def tls_exporter(sslobj):
    """RFC 9266 tls-exporter bytes of the connection, or None if unavailable."""
    try:
        ptr = _ssl_ptr(sslobj)
        if ptr is None:
            return None
        out = ctypes.create_string_buffer(EXPORTER_LEN)
        # RFC 9266 §2: empty context (TLS 1.3 exporters treat absent == empty)
        if _lib().SSL_export_keying_material(ptr, out, EXPORTER_LEN, EXPORTER_LABEL,
                                             len(EXPORTER_LABEL), b"", 0, 1) != 1:
            return None
        return out.raw
    except (OSError, AttributeError, ValueError):
        return None


def bindings(sslobj):
    """{type: bytes} the server can verify on this connection (RFC 9266 §3:
    tls-unique only below TLS 1.3)."""
    if sslobj is None:
        return {}
    out = {}
    if sslobj.version() != "TLSv1.3":
        tu = sslobj.get_channel_binding("tls-unique")
        if tu:
            out["tls-unique"] = tu
    else:
        # RFC 9266 §4.2: on TLS 1.2 tls-exporter needs extended master secret
        # and its context rules differ; only TLS 1.3 is verified here
        ex = tls_exporter(sslobj)
        if ex:
            out["tls-exporter"] = ex
    return out
