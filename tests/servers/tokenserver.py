#!/usr/bin/env python3
"""tokenserver: a scriptable OAuth 2.0 authorization server over HTTPS for
postbote's tests.  Python 3 standard library only.

    tokenserver.py --cert PEM --key PEM --port-file FILE
                   [--host 127.0.0.1] [--port 0]
                   [--script SCRIPT.json] [--record RECORD.jsonl] [-v]

Listens (port 0 picks a free port), writes the port and a newline to FILE
through a rename, and serves until SIGTERM or SIGINT.  Endpoints:

  GET  /authorize  RFC 6749 4.1.1 with PKCE (RFC 7636): checks client_id,
                   response_type=code, code_challenge_method=S256 and a
                   loopback http://127.0.0.1:PORT/ redirect_uri, then answers
                   302 to redirect_uri?code=...&state=... (the test plays the
                   browser by following it).
  POST /device     RFC 8628 3.1: device_code, user_code, verification URI.
  POST /token      grant_type refresh_token (RFC 6749 6), authorization_code
                   (4.1.3, the code_verifier checked against the S256
                   challenge) and urn:ietf:params:oauth:grant-type:device_code
                   (RFC 8628 3.4).

Correct wherever the script says nothing.  The script is a JSON object; it is
read again whenever the file changes (a test replaces it between runs of the
client), and each new version starts its canned answers from the beginning.
Every key is optional:

  client_id       "test-client"   the only client accepted
  client_secret   null            when set, /token requires it
  refresh_tokens  []              refresh tokens accepted (those the server
                                  issued are accepted too, until rotated)
  rotate          false           each refresh grant returns a new refresh
                                  token and revokes the one used
  expires_in      3600            number, string, or null (left out)
  token_type      "Bearer"
  responses       {"token": [...], "device": [...], "authorize": [...]}
                  canned answers, one per request to that endpoint, in
                  order; each {"status": N, "json": {...}} or
                  {"status": N, "body": "text"}, optionally with "delay"
                  (seconds before answering); an entry without "status"
                  only delays, then the request is handled normally
  device          {"style": "microsoft" | "google" (verification_url),
                   "interval": 1, "expires_in": 600, "complete": true,
                   "sequence": ["authorization_pending", "slow_down", ...]}
                  the first polls of each device code answer the errors of
                  the sequence; after it the grant succeeds (unless the last
                  entry is access_denied or expired_token, which then stays)
  authorize       {"error": "access_denied", "state": "other"} make /authorize
                  redirect with that error, or with another state

The record (JSON Lines) has one object per request: n, time, method, path,
query, form, status, user_agent, content_type, accept.
"""

import argparse
import base64
import hashlib
import http.server
import json
import os
import signal
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

MAX_BODY = 65536
STYLES = ("microsoft", "google")


def s256(verifier):
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Script:
    """The script file, re-read when it changes."""

    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.data = {}
        self.used = {}

    def current(self):
        if self.path:
            try:
                st = os.stat(self.path)
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self.stamp:
                self.stamp = stamp
                self.used = {}
                self.data = {}
                if stamp:
                    with open(self.path, encoding="utf-8") as handle:
                        self.data = json.load(handle)
        return self.data

    def get(self, key, default=None):
        return self.current().get(key, default)

    def next_canned(self, endpoint):
        queue = self.current().get("responses", {}).get(endpoint, [])
        i = self.used.get(endpoint, 0)
        if i >= len(queue):
            return None
        self.used[endpoint] = i + 1
        return queue[i]


class State:
    """What the server remembers: issued tokens, codes, device codes."""

    def __init__(self, script, record_path):
        self.lock = threading.Lock()
        self.script = script
        self.record_path = record_path
        self.counter = 0
        self.requests = 0
        self.issued_refresh = set()
        self.revoked = set()
        self.codes = {}
        self.devices = {}

    def new_id(self, prefix):
        self.counter += 1
        return "%s-%d" % (prefix, self.counter)

    def record(self, entry):
        if not self.record_path:
            return
        with open(self.record_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


def oauth_error(status, error, description):
    return status, {"error": error, "error_description": description}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "tokenserver/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("tokenserver: " + (fmt % args) + "\n")

    # --- plumbing ---

    def read_form(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))

    def send(self, status, payload=None, body=None, headers=None):
        if payload is not None:
            body = json.dumps(payload)
            ctype = "application/json"
        else:
            ctype = "text/plain; charset=utf-8"
        data = (body or "").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        return status

    def canned(self, endpoint):
        """Send the next canned answer: its status, or None when the
        request is to be handled normally."""
        with self.server.state.lock:
            entry = self.server.state.script.next_canned(endpoint)
        if not entry:
            return None
        time.sleep(entry.get("delay", 0))
        if "status" not in entry:
            return None
        if "json" in entry:
            return self.send(entry["status"], payload=entry["json"])
        return self.send(entry["status"], body=entry.get("body", ""))

    def log_request_entry(self, query, form, status):
        state = self.server.state
        with state.lock:
            state.requests += 1
            state.record({
                "n": state.requests, "time": time.time(),
                "method": self.command,
                "path": urllib.parse.urlsplit(self.path).path,
                "query": query, "form": form, "status": status,
                "user_agent": self.headers.get("User-Agent"),
                "content_type": self.headers.get("Content-Type"),
                "accept": self.headers.get("Accept"),
            })

    # --- HTTP methods ---

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        status = self.canned("authorize") if url.path == "/authorize" else None
        if status is None:
            if url.path == "/authorize":
                status = self.authorize(query)
            else:
                status = self.send(404, body="not found")
        self.log_request_entry(query, None, status)

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        form = self.read_form()
        endpoint = {"/token": "token", "/device": "device"}.get(path)
        status = None
        if form is None:
            status = self.send(413, body="too large")
        elif endpoint:
            status = self.canned(endpoint)
        if status is None and endpoint:
            code, payload = (self.token if endpoint == "token"
                             else self.device)(form)
            status = self.send(code, payload=payload)
        elif status is None:
            status = self.send(404, body="not found")
        self.log_request_entry(None, form, status)

    # --- endpoints ---

    def authorize(self, q):
        script = self.server.state.script
        redirect = q.get("redirect_uri", "")
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        if q.get("client_id") != script.get("client_id", "test-client"):
            problems.append("unknown client_id")
        if q.get("code_challenge_method") != "S256":
            problems.append("code_challenge_method must be S256")
        if not q.get("code_challenge") or not q.get("state"):
            problems.append("code_challenge and state are required")
        if not redirect.startswith("http://127.0.0.1:"):
            problems.append("redirect_uri must be a loopback address")
        if problems:
            return self.send(400, body="; ".join(problems))
        plan = script.get("authorize", {})
        params = {"state": plan.get("state", q["state"])}
        if plan.get("error"):
            params["error"] = plan["error"]
            params["error_description"] = "The user said no."
        else:
            with self.server.state.lock:
                code = self.server.state.new_id("code")
                self.server.state.codes[code] = {
                    "challenge": q["code_challenge"], "redirect": redirect,
                    "scope": q.get("scope"), "used": False}
            params["code"] = code
        location = redirect + "?" + urllib.parse.urlencode(params)
        return self.send(302, body="", headers={"Location": location})

    def check_client(self, form, need_secret=True):
        script = self.server.state.script
        if form.get("client_id") != script.get("client_id", "test-client"):
            return oauth_error(401, "invalid_client", "Unknown client.")
        secret = script.get("client_secret")
        if need_secret and secret is not None and \
                form.get("client_secret") != secret:
            return oauth_error(401, "invalid_client", "Bad client secret.")
        return None

    def issue(self, with_refresh, scope=None):
        script = self.server.state.script
        state = self.server.state
        payload = {"access_token": state.new_id("at"),
                   "token_type": script.get("token_type", "Bearer")}
        expires = script.get("expires_in", 3600)
        if expires is not None:
            payload["expires_in"] = expires
        if scope:
            payload["scope"] = scope
        if with_refresh:
            refresh = state.new_id("rt-issued")
            state.issued_refresh.add(refresh)
            payload["refresh_token"] = refresh
        return 200, payload

    def token(self, form):
        with self.server.state.lock:
            return self.check_client(form) or self.grant(form)

    def grant(self, form):
        kind = form.get("grant_type")
        if kind == "refresh_token":
            return self.refresh_grant(form)
        if kind == "authorization_code":
            return self.code_grant(form)
        if kind == "urn:ietf:params:oauth:grant-type:device_code":
            return self.device_grant(form)
        return oauth_error(400, "unsupported_grant_type", "Unknown grant.")

    def refresh_grant(self, form):
        state = self.server.state
        token = form.get("refresh_token", "")
        known = set(state.script.get("refresh_tokens", [])) | state.issued_refresh
        if token not in known or token in state.revoked:
            return oauth_error(400, "invalid_grant",
                               "Token has been expired or revoked.")
        rotate = bool(state.script.get("rotate", False))
        if rotate:
            state.revoked.add(token)
        return self.issue(rotate, form.get("scope"))

    def code_grant(self, form):
        entry = self.server.state.codes.get(form.get("code", ""))
        if not entry or entry["used"]:
            return oauth_error(400, "invalid_grant", "Unknown or used code.")
        entry["used"] = True
        if form.get("redirect_uri") != entry["redirect"]:
            return oauth_error(400, "invalid_grant", "redirect_uri differs.")
        if s256(form.get("code_verifier", "")) != entry["challenge"]:
            return oauth_error(400, "invalid_grant",
                               "PKCE verification failed.")
        return self.issue(True, entry["scope"])

    def device_grant(self, form):
        entry = self.server.state.devices.get(form.get("device_code", ""))
        if not entry:
            return oauth_error(400, "invalid_grant", "Unknown device code.")
        sequence = entry["sequence"]
        if entry["polls"] < len(sequence):
            error = sequence[entry["polls"]]
            entry["polls"] += 1
            return oauth_error(400, error, "Device flow: " + error + ".")
        if sequence and sequence[-1] in ("access_denied", "expired_token"):
            return oauth_error(400, sequence[-1], "Device flow ended.")
        if entry["done"]:
            return oauth_error(400, "invalid_grant", "Code already used.")
        entry["done"] = True
        return self.issue(True, entry["scope"])

    def device(self, form):
        state = self.server.state
        with state.lock:
            problem = self.check_client(form, need_secret=False)
            if problem:
                return problem
            plan = state.script.get("device", {})
            style = plan.get("style", "microsoft")
            if style not in STYLES:
                raise ValueError("device style must be one of %s" % (STYLES,))
            code = state.new_id("dc")
            user_code = "WDJB-MJHT"
            state.devices[code] = {"sequence": list(plan.get("sequence", [])),
                                   "polls": 0, "done": False,
                                   "scope": form.get("scope")}
            base = "https://127.0.0.1:%d/activate" % self.server.server_address[1]
            key = "verification_uri" if style == "microsoft" else "verification_url"
            payload = {"device_code": code, "user_code": user_code, key: base,
                       "expires_in": plan.get("expires_in", 600),
                       "interval": plan.get("interval", 1)}
            if plan.get("complete", True):
                payload["verification_uri_complete"] = base + "?code=" + user_code
        return 200, payload


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, context, state, verbose):
        self.context = context
        self.state = state
        self.verbose = verbose
        super().__init__(address, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # The handshake happens in the request's thread, so a client that
        # never finishes it blocks nobody else.
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.settimeout(30)
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script")
    parser.add_argument("--record")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key or args.cert)
    state = State(Script(args.script), args.record)
    server = Server((args.host, args.port), context, state, args.verbose)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_port_file(args.port_file, server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
