"""An MTA-STS policy host over HTTPS (http.server + a certificate of the test CA).

    ps = PolicyServer(certs, "mtasts").start()      # leaf "mtasts" of make_certs(extra=...)
    ps.policies["a.test"] = "version: STSv1\\nmode: enforce\\nmx: mx.a.test\\nmax_age: 600\\n"
    ps.port, ps.hits["a.test"]

GET /.well-known/mta-sts.txt on Host mta-sts.DOMAIN answers the policy of
DOMAIN (text/plain), 404 when there is none.  Knobs per domain: status
(another status, e.g. 500), content_type, redirect (a 301 to that URL),
delay (seconds before answering).  hits counts the requests per domain.
"""
import http.server
import threading
import time


class PolicyServer:
    def __init__(self, certs, leaf="server", host="127.0.0.1", port=0):
        self.certs, self.leaf, self.host, self.bind_port = certs, leaf, host, port
        self.policies, self.status, self.content_type = {}, {}, {}
        self.redirect, self.delay, self.hits = {}, {}, {}

    def start(self):
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                dom = host[len("mta-sts."):] if host.startswith("mta-sts.") else host
                srv.hits[dom] = srv.hits.get(dom, 0) + 1
                time.sleep(srv.delay.get(dom, 0))
                if dom in srv.redirect:
                    self.send_response(301)
                    self.send_header("Location", srv.redirect[dom])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = srv.policies.get(dom)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = body.encode() if isinstance(body, str) else body
                self.send_response(srv.status.get(dom, 200))
                self.send_header("Content-Type", srv.content_type.get(dom, "text/plain"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer((self.host, self.bind_port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = self.certs.server_context(self.leaf).wrap_socket(
            self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
