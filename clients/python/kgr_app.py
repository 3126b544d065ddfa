"""kgr_app: the Python client of a kgr node's application API (docs/api.md).

Standard library only; runs under Debian's /usr/bin/python3 (3.11).

    import kgr_app
    with kgr_app.connect("/var/lib/kgr/app.sock", name="collector") as app:
        app.subscribe()
        for ev in app.events():
            if ev["event"] == "message":
                print(ev["peer"], ev["data"])
                if ev["request"]:
                    app.answer(ev["token"], b"thanks")

A connection is not thread-safe: use one per thread (a subscriber and a
sender in two threads: two connections). Events that arrive while a call
waits for its answer are kept, in order, for events()/next_event().
"""

import base64
import collections
import json
import socket
import struct

API_VERSION = 1
MAX_FRAME = 128 * 1024


class KgrError(Exception):
    """A request the daemon refused or could not carry out."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Connection:
    def __init__(self, path, name="", timeout=None):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._buf = b""
        self._next_id = 1
        self._events = collections.deque()
        hello = self._call({"op": "hello", "version": API_VERSION, "name": name})
        self.n_id = hello["n_id"]
        self.max_data = hello["max_data"]
        self.peers = hello["peers"]

    # ---- operations ----

    def send(self, peer, data, timeout_ms=0):
        """One-way: returns once the peer's daemon queued `data` for at
        least one of its applications."""
        self._call(self._send_req(peer, data, False, timeout_ms))

    def request(self, peer, data, timeout_ms=0):
        """Request/response: returns the peer application's answer (bytes)."""
        r = self._call(self._send_req(peer, data, True, timeout_ms))
        return base64.b64decode(r.get("reply", ""))

    def subscribe(self, peers=None):
        """Receive messages and events (from `peers`, N_ID strings; None:
        every peer this user may use)."""
        req = {"op": "subscribe"}
        if peers is not None:
            req["peers"] = list(peers)
        self._call(req)

    def group_send(self, group, data):
        """Publishes `data` to `group` (8 hex digits) under its group key."""
        self._call({"op": "group_send", "group": group, "data": _b64(data)})

    def group_subscribe(self, groups=None):
        """Receive group_message and group_key_ready events (of `groups`;
        None: every group this user may use). Returns the groups held."""
        req = {"op": "group_subscribe"}
        if groups is not None:
            req["groups"] = list(groups)
        return self._call(req).get("groups", [])

    def answer(self, token, data):
        """Answers the request delivered with `token`."""
        self._call({"op": "answer", "token": token, "data": _b64(data)})

    def status(self):
        return self._call({"op": "status"})

    def next_event(self, timeout=None):
        """The next event (a dict; a message's "data" as bytes), or None
        after `timeout` seconds (None: wait)."""
        if self._events:
            return self._events.popleft()
        old = self._sock.gettimeout()
        self._sock.settimeout(timeout)
        try:
            m = self._read()
        except socket.timeout:
            return None
        finally:
            self._sock.settimeout(old)
        if "event" not in m:
            raise KgrError("INTERNAL", f"an answer nobody asked for: {m}")
        return _decoded(m)

    def events(self):
        while True:
            yield self.next_event()

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- wire ----

    def _send_req(self, peer, data, request, timeout_ms):
        return {"op": "send", "peer": peer, "data": _b64(data),
                "request": request, "timeout_ms": timeout_ms}

    def _call(self, req):
        req["id"] = self._next_id
        self._next_id += 1
        text = json.dumps(req, separators=(",", ":")).encode()
        self._sock.sendall(struct.pack(">I", len(text)) + text)
        while True:
            m = self._read()
            if "event" in m:
                self._events.append(_decoded(m))
                continue
            if m.get("id") not in (req["id"], None):
                raise KgrError("INTERNAL", f"answer to another request: {m}")
            if not m.get("ok"):
                raise KgrError(m.get("code", "INTERNAL"), m.get("error", "failed"))
            return m

    def _read(self):
        while True:
            if len(self._buf) >= 4:
                (n,) = struct.unpack(">I", self._buf[:4])
                if n == 0 or n > MAX_FRAME:
                    raise KgrError("INVALID_ARGUMENT", f"frame length {n}")
                if len(self._buf) >= 4 + n:
                    frame, self._buf = self._buf[4:4 + n], self._buf[4 + n:]
                    return json.loads(frame)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise KgrError("UNAVAILABLE", "the daemon closed the connection")
            self._buf += chunk


def connect(path, name="", timeout=None):
    return Connection(path, name, timeout)


def _b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def _decoded(m):
    if m.get("event") in ("message", "group_message"):
        m["data"] = base64.b64decode(m["data"])
    return m
