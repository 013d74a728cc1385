# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""HTTP helpers for the API tests: plain requests, an SSE reader, a Prometheus text parser."""
import http.client
import json
import re
import socket
import ssl
import time
import urllib.parse


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def _conn(url, timeout):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx), u
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout), u


def request(url, method="GET", body=None, headers=None, token=None, timeout=10):
    """One request; body may be bytes, str or a JSON-able object."""
    conn, u = _conn(url, timeout)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    path = u.path + (f"?{u.query}" if u.query else "")
    try:
        conn.request(method, path or "/", body=body, headers=hdrs)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


class SSE:
    """A Server-Sent Events stream read line by line."""

    def __init__(self, url, headers=None, timeout=10, method="GET", body=None):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        path = u.path + (f"?{u.query}" if u.query else "")
        hdrs = dict({"Accept": "text/event-stream"}, **(headers or {}))
        if body is not None:
            body = body.encode() if isinstance(body, str) else body
            hdrs["Content-Length"] = str(len(body))
        lines = [f"{method} {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}"]
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        self.buf = b""
        status = self._line()
        self.status = int(status.split()[1])
        self.headers = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def _line(self, deadline=None):
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("no SSE data")
                self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().rstrip("\r")

    def next(self, timeout=5.0):
        """The next event as (id, data dict); comments and retry lines are skipped."""
        deadline = time.time() + timeout
        ev_id, data = None, []
        while True:
            line = self._line(deadline)
            if line == "":
                if data:
                    return ev_id, json.loads("\n".join(data))
                continue
            if line.startswith(":") or line.startswith("retry:"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "id":
                ev_id = value
            elif field == "data":
                data.append(value)

    def until(self, pred, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            ev_id, ev = self.next(max(0.01, deadline - time.time()))
            if pred(ev):
                return ev_id, ev

    def close(self):
        self.sock.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    """Strict parse of the text format 0.0.4: {(name, frozenset(labels)): value}.
    Raises ValueError naming the line on anything malformed."""
    samples, types = {}, {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary",
                                                     "untyped"):
                raise ValueError(f"line {n}: bad TYPE: {line}")
            if parts[2] in types:
                raise ValueError(f"line {n}: TYPE given twice for {parts[2]}")
            types[parts[2]] = parts[3]
            continue
        if line.startswith("#"):
            raise ValueError(f"line {n}: unknown comment: {line}")
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {n}: not a sample: {line}")
        name, labels = m.group(1), {}
        rest = m.group(3) or ""
        while rest:
            lm = _LABEL.match(rest)
            if not lm:
                raise ValueError(f"line {n}: bad labels: {line}")
            labels[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        if name not in types:
            raise ValueError(f"line {n}: sample {name} before its TYPE")
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise ValueError(f"line {n}: duplicate sample {line}")
        samples[key] = float(m.group(4))
    return samples


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def mcp_tool(url, token, tool, args, timeout=30):
    """One MCP tools/call over Streamable HTTP (a session of its own): the result object."""
    hdrs = {"Accept": "application/json, text/event-stream"}
    r = request(url, "POST", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                         "clientInfo": {"name": "t", "version": "1"}}},
                headers=hdrs, token=token, timeout=timeout)
    hdrs["Mcp-Session-Id"] = r.header("Mcp-Session-Id")
    r = request(url, "POST", {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                              "params": {"name": tool, "arguments": args}},
                headers=hdrs, token=token, timeout=timeout)
    return r.json["result"]
