"""A minimal SMTP sink whose read rate, replies and silence the test controls.

    sink = Sink(rate=400_000).start()     # reads the data at 400 KB/s
    sink.data_read                        # bytes of the data read so far (after DATA)
    sink.messages                         # complete messages accepted
    Sink(port=p).start()                  # on a given port (a server that comes up later)
    Sink(replies={"DOT": "451 4.3.0 try again later"})
    Sink(greet=False)                     # accepts, never says a word (a hung server)

The listening socket has a small receive buffer, so what the kernel holds for the sink
(acknowledged to the client, not yet read) stays small next to the data.
"""
import socket
import threading
import time


class Sink:
    def __init__(self, port=0, rate=0, replies=None, greet=True, rcvbuf=32768,
                 refuse=(), size=100000000, drop_after=None):
        self.port = port
        self.rate = rate
        self.replies = dict(replies or {})
        self.greet = greet
        self.rcvbuf = rcvbuf
        self.refuse = set(refuse)
        self.size = size
        self.drop_after = drop_after     # close the connection after this many data bytes
        self.verbs = []
        self.lock = threading.Lock()
        self.data_read = 0
        self.messages = []
        self.connections = 0
        self.rcpts = []
        self._stop = False
        self._threads = []

    def start(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        s.bind(("127.0.0.1", self.port))
        s.listen(8)
        s.settimeout(0.2)
        self.sock = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop = True
        self.sock.close()

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    def _serve(self, c):
        try:
            self._dialogue(c)
        except OSError:
            pass
        finally:
            c.close()

    def _reply(self, c, verb, default):
        c.sendall((self.replies.get(verb, default) + "\r\n").encode())

    def _dialogue(self, c):
        if not self.greet:
            while not self._stop:
                time.sleep(0.1)
            return
        self._reply(c, "GREETING", "220 sink.test ESMTP")
        buf = b""
        while not self._stop:
            while b"\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            line, buf = buf.split(b"\r\n", 1)
            verb = line.split(b" ", 1)[0].upper().decode(errors="replace")
            with self.lock:
                self.verbs.append(verb)
            if verb in ("EHLO", "HELO"):
                c.sendall(b"250-sink.test\r\n250-8BITMIME\r\n250 SIZE %d\r\n" % self.size)
            elif verb == "MAIL":
                self._reply(c, "MAIL", "250 2.1.0 ok")
            elif verb == "RCPT":
                addr = line.split(b"<", 1)[-1].split(b">", 1)[0].decode()
                if addr in self.refuse:
                    c.sendall(b"550 5.1.1 no such user here\r\n")
                else:
                    self.rcpts.append(addr)
                    self._reply(c, "RCPT", "250 2.1.5 ok")
            elif verb == "DATA":
                self._reply(c, "DATA", "354 go ahead")
                data, buf = self._read_data(c, buf)
                if data is None:
                    return
                reply = self.replies.get("DOT", "250 2.0.0 queued as x")
                if reply.startswith("2"):
                    with self.lock:
                        self.messages.append(data)
                c.sendall((reply + "\r\n").encode())
            elif verb == "QUIT":
                c.sendall(b"221 bye\r\n")
                return
            elif verb == "RSET" or verb == "NOOP":
                c.sendall(b"250 ok\r\n")
            else:
                c.sendall(b"502 5.5.1 unknown\r\n")

    def _read_data(self, c, buf):
        data = bytearray(buf)
        with self.lock:
            self.data_read = len(data)
        t0 = time.monotonic()
        while b"\r\n.\r\n" not in data[-8192:] and not data.startswith(b".\r\n"):
            if self.rate:
                due = t0 + len(data) / self.rate
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, 0.05))
                    continue
            d = c.recv(4096 if self.rate else 65536)
            if not d:
                return None, b""
            if self.drop_after is not None and len(data) + len(d) >= self.drop_after:
                return None, b""
            data += d
            with self.lock:
                self.data_read = len(data)
        end = data.find(b"\r\n.\r\n")
        return bytes(data[:end + 2]), bytes(data[end + 5:])
