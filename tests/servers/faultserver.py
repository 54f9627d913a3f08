#!/usr/bin/env python3
"""faultserver: a scriptable ESMTP server for fault-injection tests.

Correct (and permissive) wherever the script says nothing, and precisely
wrong wherever it does.  Python 3 standard library only.

Server mode
    faultserver.py --port-file FILE [--host 127.0.0.1] [--port 0]
                   [--tls none|starttls|implicit] [--cert PEM [--key PEM]]
                   [--tls-max 1.2|1.3] [--client-ca PEM] [--cb-corrupt]
                   [--script SCRIPT.json]
                   [--record RECORD.jsonl] [--user U --password P]
                   [--hostname fault.test] [--timeout SECONDS] [-v]

    Listens (port 0 picks a free port), writes the port number and a newline
    to FILE through a rename (a reader never sees a partial file), then
    serves every connection in its own thread until SIGTERM or SIGINT.
    --tls defaults to starttls when --cert is given, otherwise none.
    --key defaults to the --cert file.  --timeout (default 300, RFC 5321
    4.5.3.2.7) is the idle time after which the server says 421 and closes.
    --client-ca asks TLS clients for a certificate signed by that CA (the
    identity EXTERNAL uses).  SCRAM-*-PLUS check the client's channel
    binding (tls-unique on TLS 1.2, tls-exporter on TLS 1.3);
    --cb-corrupt makes the server's side of it wrong, as a
    man-in-the-middle who terminates TLS would see it.

Helper modes
    faultserver.py --dump RECORD.jsonl --message K --out FILE [--raw]
        writes the data of the K-th (0-based) accepted message to FILE
        (--raw: the bytes exactly as received, dot-stuffing and final dot
        included).  Exit status 1 when there is no such message.
    faultserver.py --summary RECORD.jsonl
        prints one line per recorded event, for grep, e.g.
        "conn 1 command MAIL FROM:<a@b>".

`faultserver.py --help-script` prints the script format (SCRIPT_HELP
below).  The record is JSON Lines, one event per line, each with "conn"
(1, 2, ... in accept order) and "event":
  connect     peer
  command     line (latin-1, no CRLF) [bare_lf] [bare_cr] [pipelined: data
              had arrived before the previous reply went out] [too_long,
              length] [unterminated]
  reply       text (every reply as sent)
  sasl        line: a client response inside an AUTH exchange
  auth        mechanism authcid authzid credentials_ok success reply
  tls         version cipher sni;   tls_error: error
  discarded   plaintext sent after STARTTLS before its reply (bytes, data_b64)
  message     accepted complete reply mail_from rcpt_to mail_params
              rcpt_params size eightbit data_b64 raw_b64 method (DATA|BDAT)
              and for DATA early_body bare_lf longest_line, for BDAT chunks
  hang        a scripted hang began;  ignored: a line that came in after
  error       an internal error (a bug in this server)
  disconnect  reason: quit, client closed, dropped by script, timeout,
              tls failed, server error
"""

import argparse
import base64
import binascii
import ctypes
import ctypes.util
import hashlib
import hmac
import itertools
import json
import os
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time

# RFC 5321 4.5.3.1.6 caps a text line at 1000 octets including CRLF; the
# brief asks for that (more generous than the 512 of 4.5.3.1.4) as the
# command line limit.
COMMAND_LINE_MAX = 1000
# RFC 4954 4: an AUTH command or SASL response line may be 12288 octets.
SASL_LINE_MAX = 12288
DEFAULT_SIZE_LIMIT = 52428800
# RFC 5321 4.5.3.2.7: a server should wait at least 5 minutes for a command.
DEFAULT_IDLE_TIMEOUT = 300
RECV_CHUNK = 65536
SCRAM_ITERATIONS = 4096

SCRIPT_HELP = """\
Script: a JSON object; every key optional.

Stage keys (value: an action object, or a list of action objects used in
turn for the 1st, 2nd, ... occurrence of the stage in one connection; the
last one repeats):
  greeting   the 220 banner
  ehlo helo  replies to EHLO / HELO
  starttls   reply to STARTTLS
  auth       final reply to AUTH, after the SASL exchange
  mail rcpt  replies to MAIL / RCPT (every such command counts)
  data       reply to the DATA command
  body       while message data (DATA or BDAT) arrives; see after_bytes
  bdat       reply to a BDAT chunk that is not the LAST one
  dot        reply to the final dot, or to BDAT ... LAST
  rset noop quit
Other keys:
  capabilities      list of EHLO keyword lines replacing the default list
  capabilities_tls  list used instead once the connection is under TLS
                    (without it, "capabilities" is used verbatim throughout)

Action object fields:
  reply       "451 4.3.0 Try again" or ["250-a", "250 b"]: lines + CRLF
  raw         text sent exactly as given (UTF-8 encoded)
  raw_b64     bytes sent exactly as given (base64)
  action      "drop" (close at once, no reply), "hang" (never reply, never
              close until the client does), "default" (default behaviour)
  delay       seconds to sleep first (also before drop/hang/default)
  then        "drop": close right after sending the reply; "hang": say
              nothing more (e.g. no TLS handshake after a STARTTLS 220)
  after_bytes (body only) fire the action once this many octets of message
              data have been received (default 0: before any is read;
              never, if the message is shorter)
The server state follows the code of whatever reply is sent: a scripted
2xx/3xx has the effect of success, anything else (including raw text that
does not start with a code) the effect of a refusal.
A "body" reply is sent in the middle of the data; reading then goes on
(unless "then": "drop") and "dot" answers the end as usual.
"""

STAGES = ("greeting", "ehlo", "helo", "starttls", "auth", "mail", "rcpt",
          "data", "body", "bdat", "dot", "rset", "noop", "quit")
ACTION_FIELDS = {"reply", "raw", "raw_b64", "action", "delay", "then",
                 "after_bytes"}
ENHANCED_CODE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} ")
REPLY_CODE = re.compile(rb"^([2-5][0-9][0-9])")
ESMTP_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class ScriptError(Exception):
    """The script file is not what SCRIPT_HELP describes."""


class Closed(Exception):
    """The connection is over; reason goes into the disconnect record."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class SaslAbort(Exception):
    """The SASL exchange ended early with this (code, text) reply."""

    def __init__(self, code, text):
        super().__init__(text)
        self.reply = (code, text)


# --------------------------------------------------------------------------
# Script


class Action:
    """One scripted (or default) behaviour for one occurrence of a stage."""

    def __init__(self, kind="default", delay=0.0, payload=None,
                 then_drop=False, after_bytes=0, then_hang=False):
        self.kind = kind            # default | drop | hang | reply
        self.delay = delay
        self.payload = payload      # bytes to send when kind == "reply"
        self.then_drop = then_drop
        self.then_hang = then_hang
        self.after_bytes = after_bytes

    @property
    def code(self):
        match = REPLY_CODE.match(self.payload or b"")
        return int(match.group(1)) if match else None


DEFAULT_ACTION = Action()


def parse_action(where, stage, obj):
    if not isinstance(obj, dict):
        raise ScriptError(f"{where}: an action must be a JSON object")
    unknown = set(obj) - ACTION_FIELDS
    if unknown:
        raise ScriptError(f"{where}: unknown field(s) {sorted(unknown)}")
    texts = [k for k in ("reply", "raw", "raw_b64") if k in obj]
    if len(texts) > 1:
        raise ScriptError(f"{where}: use only one of {texts}")
    kind = obj.get("action", "reply" if texts else "default")
    if kind not in ("drop", "hang", "default", "reply"):
        raise ScriptError(f"{where}: action must be drop, hang or default")
    if kind != "reply" and texts:
        raise ScriptError(f"{where}: action {kind!r} cannot carry {texts[0]}")
    action = Action(kind=kind)
    if "delay" in obj:
        delay = obj["delay"]
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
                or delay < 0:
            raise ScriptError(f"{where}: delay must be a number >= 0")
        action.delay = float(delay)
    if "then" in obj:
        if obj["then"] not in ("drop", "hang"):
            raise ScriptError(f"{where}: then must be \"drop\" or \"hang\"")
        if kind in ("drop", "hang"):
            raise ScriptError(f"{where}: then cannot follow {kind}")
        action.then_drop = obj["then"] == "drop"
        action.then_hang = obj["then"] == "hang"
    if "after_bytes" in obj:
        count = obj["after_bytes"]
        if stage != "body":
            raise ScriptError(f"{where}: after_bytes is for body only")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ScriptError(f"{where}: after_bytes must be an integer >= 0")
        action.after_bytes = count
    if "reply" in obj:
        lines = obj["reply"]
        if isinstance(lines, str):
            lines = [lines]
        if not isinstance(lines, list) or not lines or \
                not all(isinstance(line, str) for line in lines):
            raise ScriptError(f"{where}: reply must be a string or a "
                              "non-empty list of strings")
        action.payload = b"".join(line.encode("utf-8") + b"\r\n"
                                  for line in lines)
    elif "raw" in obj:
        if not isinstance(obj["raw"], str):
            raise ScriptError(f"{where}: raw must be a string")
        action.payload = obj["raw"].encode("utf-8")
    elif "raw_b64" in obj:
        try:
            action.payload = base64.b64decode(obj["raw_b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ScriptError(f"{where}: raw_b64 is not valid base64")
    return action


class Script:
    def __init__(self, obj):
        if not isinstance(obj, dict):
            raise ScriptError("the script must be a JSON object")
        self.stages = {}
        self.capabilities = None
        self.capabilities_tls = None
        for key, value in obj.items():
            if key in ("capabilities", "capabilities_tls"):
                if not isinstance(value, list) or \
                        not all(isinstance(v, str) and v.strip()
                                for v in value):
                    raise ScriptError(f"{key}: must be a list of keyword "
                                      "lines")
                setattr(self, key, list(value))
            elif key in STAGES:
                items = value if isinstance(value, list) else [value]
                if not items:
                    raise ScriptError(f"{key}: empty list")
                self.stages[key] = [
                    parse_action(f"{key}[{i}]" if isinstance(value, list)
                                 else key, key, item)
                    for i, item in enumerate(items)]
            else:
                raise ScriptError(f"unknown key {key!r} (stages: "
                                  f"{', '.join(STAGES)})")

    @classmethod
    def load(cls, path):
        with open(path, "r", encoding="utf-8") as handle:
            try:
                obj = json.load(handle)
            except json.JSONDecodeError as err:
                raise ScriptError(f"{path}: {err}")
        return cls(obj)

    def action(self, stage, occurrence):
        actions = self.stages.get(stage)
        if not actions:
            return DEFAULT_ACTION
        return actions[min(occurrence, len(actions) - 1)]


# --------------------------------------------------------------------------
# Record


def summary_line(event):
    """One grep-friendly line (or several, for multi-line replies)."""
    head = f"conn {event.get('conn')} {event.get('event')}"
    kind = event.get("event")
    if kind in ("command", "ignored", "sasl"):
        text = head + " " + event.get("line", "")
        if event.get("bare_lf"):
            text += " (bare LF)"
        if event.get("too_long"):
            text += f" (too long: {event.get('length')} octets)"
        if event.get("unterminated"):
            text += " (unterminated)"
        return [text]
    if kind == "reply":
        lines = event.get("text", "").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [head + " " + line.rstrip("\r").replace("\r", "\\r")
                for line in lines] or [head]
    if kind == "tls":
        return [f"{head} {event.get('version')} {event.get('cipher')} "
                f"sni={event.get('sni') or '-'}"]
    if kind == "message":
        if not event.get("complete"):
            state = "incomplete"
        else:
            state = "accepted" if event.get("accepted") else "rejected"
        rcpts = ",".join(f"<{r}>" for r in event.get("rcpt_to", []))
        return [f"{head} {state} from=<{event.get('mail_from') or ''}> "
                f"to={rcpts} size={event.get('size')} "
                f"reply={event.get('reply') or '-'}"]
    if kind == "auth":
        return [f"{head} {event.get('mechanism')} "
                f"user={event.get('authcid') or '-'} "
                f"{'success' if event.get('success') else 'failure'}"]
    if kind == "disconnect":
        return [f"{head} {event.get('reason')}"]
    rest = " ".join(f"{k}={v}" for k, v in event.items()
                    if k not in ("conn", "event"))
    return [f"{head} {rest}".rstrip()]


class Recorder:
    """Appends JSON lines; each event is written and flushed at once."""

    def __init__(self, path, verbose):
        self.lock = threading.Lock()
        self.fd = None
        if path:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                              0o644)
        self.verbose = verbose

    def event(self, conn, name, **fields):
        obj = {"conn": conn, "event": name}
        obj.update(fields)
        data = (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")
        with self.lock:
            if self.fd is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view):]
            if self.verbose:
                for line in summary_line(obj):
                    sys.stderr.write(line + "\n")
                sys.stderr.flush()


# --------------------------------------------------------------------------
# Input


class LineResult:
    def __init__(self, line, too_long=False, length=None, terminated=True):
        self.line = line            # bytes, terminator included if any
        self.too_long = too_long    # line was cut to the limit
        self.length = len(line) if length is None else length
        self.terminated = terminated


class Reader:
    """Buffered input that keeps pipelined data in order."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _recv(self, size=RECV_CHUNK):
        try:
            return self.sock.recv(size)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError,
                ConnectionResetError, BrokenPipeError):
            return b""
        except ssl.SSLError as err:
            raise Closed(f"tls error: {err}")

    def readline(self, limit):
        """A line up to LF.  Longer than limit: the head, rest discarded."""
        while True:
            index = self.buf.find(b"\n")
            if index >= 0:
                line = bytes(self.buf[:index + 1])
                del self.buf[:index + 1]
                if len(line) > limit:
                    return LineResult(line[:limit], True, len(line))
                return LineResult(line)
            if len(self.buf) > limit:
                return self._discard_long_line(limit)
            data = self._recv()
            if not data:
                if self.buf:
                    line = bytes(self.buf)
                    self.buf.clear()
                    return LineResult(line, terminated=False)
                raise Closed("client closed")
            self.buf += data

    def _discard_long_line(self, limit):
        head = bytes(self.buf[:limit])
        total = len(self.buf)
        self.buf.clear()
        while True:
            data = self._recv()
            if not data:
                return LineResult(head, True, total, terminated=False)
            index = data.find(b"\n")
            if index >= 0:
                total += index + 1
                self.buf += data[index + 1:]
                return LineResult(head, True, total)
            total += len(data)

    def read_some(self, size):
        """Up to size bytes (at least one), b"" at end of stream."""
        if not self.buf:
            data = self._recv(min(size, RECV_CHUNK))
            if not data:
                return b""
            self.buf += data
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def unread(self, data):
        self.buf[:0] = data

    def pull_available(self):
        """Move whatever the kernel already holds into the buffer, without
        waiting (plaintext sockets only)."""
        while self._readable_now():
            try:
                more = self.sock.recv(RECV_CHUNK, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not more:
                break
            self.buf += more

    def discard(self):
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def _readable_now(self):
        try:
            ready, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def has_pending(self):
        """True when client data has arrived that we have not used yet."""
        if self.buf:
            return True
        if isinstance(self.sock, ssl.SSLSocket):
            try:
                if self.sock.pending():
                    return True
            except (OSError, ValueError):
                return False
        return self._readable_now()


class DotParser:
    """DATA content up to CRLF.CRLF, with dot-stuffing removed (RFC 5321
    4.5.2).  The end is only a "." line that follows a CRLF (or starts the
    data): a "." after a bare LF is content, as RFC 5321 2.3.8 wants."""

    def __init__(self):
        self.data = bytearray()
        self.raw = bytearray()
        self.partial = bytearray()
        self.after_crlf = True
        self.done = False
        self.bare_lf = False
        self.longest_line = 0

    def feed(self, chunk):
        """Consume chunk up to the end marker; return the count used."""
        pos = 0
        while pos < len(chunk):
            index = chunk.find(b"\n", pos)
            if index < 0:
                self.partial += chunk[pos:]
                self.raw += chunk[pos:]
                return len(chunk)
            piece = chunk[pos:index + 1]
            self.raw += piece
            line = bytes(self.partial) + piece
            self.partial.clear()
            pos = index + 1
            if line == b".\r\n" and self.after_crlf:
                self.done = True
                return pos
            self._add_line(line)
        return len(chunk)

    def _add_line(self, line):
        ends_crlf = line.endswith(b"\r\n")
        if not ends_crlf:
            self.bare_lf = True
        self.longest_line = max(self.longest_line, len(line))
        self.data += line[1:] if line.startswith(b".") else line
        self.after_crlf = ends_crlf

    def partial_data(self):
        return bytes(self.data) + bytes(self.partial)


# --------------------------------------------------------------------------
# SMTP syntax helpers


def parse_extensions(reply_text):
    """EHLO keywords (upper case) -> parameter text, from a reply."""
    extensions = {}
    lines = [line.rstrip("\r") for line in reply_text.split("\n")]
    for line in lines[1:]:
        if len(line) >= 4 and line[:3].isdigit() and line[3] in " -":
            line = line[4:]
        line = line.strip()
        if not line:
            continue
        keyword, _, params = line.partition(" ")
        if keyword.upper().startswith("AUTH="):
            params = (keyword[5:] + " " + params).strip()
            keyword = "AUTH"
        extensions[keyword.upper()] = params.strip()
    return extensions


def scan_path(text):
    """Split "<path> rest" into (path, rest); None on bad brackets."""
    if not text.startswith("<"):
        return None
    index, quoted = 1, False
    while index < len(text):
        char = text[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            return None
        elif char == ">":
            return text[1:index], text[index + 1:]
        index += 1
    return None


def mailbox_error(path, null_ok):
    """None if path is an acceptable RFC 5321 path, else why not."""
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "control character in address"
    if path == "":
        return None if null_ok else "empty address"
    if ":" in path and path.startswith("@"):
        path = path.split(":", 1)[1]      # a source route, RFC 5321 C
    if path.lower() == "postmaster" and not null_ok:
        return None
    quoted, at = False, -1
    for index, char in enumerate(path):
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            return "space in address"
        elif char == "@" and not quoted:
            at = index
    if quoted:
        return "unbalanced quote in address"
    if at <= 0 or at == len(path) - 1:
        return "address needs local-part@domain"
    return None


def parse_path_argument(arg, keyword, null_ok):
    """MAIL FROM:<x> params / RCPT TO:<x> params.
    Returns (path, [(KEYWORD, value or None)], error)."""
    match = re.match(keyword + r":[ ]*", arg, re.IGNORECASE)
    if not match:
        return None, [], f"Syntax: {keyword}:<address>"
    scanned = scan_path(arg[match.end():])
    if scanned is None:
        return None, [], f"Syntax: {keyword}:<address> (angle brackets)"
    path, rest = scanned
    if rest and not rest.startswith(" "):
        return None, [], "Syntax: space needed before parameters"
    problem = mailbox_error(path, null_ok)
    if problem:
        return None, [], f"Bad address syntax: {problem}"
    params = []
    for word in rest.split(" "):
        if not word:
            continue
        key, equals, value = word.partition("=")
        if not ESMTP_KEYWORD.match(key):
            return None, [], f"Bad parameter syntax: {word}"
        if equals and (value == "" or "=" in value or
                       any(ord(c) < 33 or ord(c) == 127 for c in value)):
            return None, [], f"Bad parameter value: {word}"
        params.append((key.upper(), value if equals else None))
    return path, params, None


def xtext_ok(value):
    """RFC 3461 4: xtext."""
    index = 0
    while index < len(value):
        char = value[index]
        if char == "+":
            if not re.fullmatch(r"[0-9A-F]{2}", value[index + 1:index + 3]):
                return False
            index += 3
            continue
        if not 33 <= ord(char) <= 126 or char == "=":
            return False
        index += 1
    return True


def has_non_ascii(text):
    return any(ord(c) > 127 for c in text)


def b64(data):
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------
# One connection


class BodyTrigger:
    """Counts message octets and fires the "body" action at after_bytes."""

    def __init__(self, conn, action):
        self.conn = conn
        self.action = action
        self.received = 0
        self.fired = action.kind == "default" and not action.delay \
            and not action.then_drop

    def room(self, want):
        if self.fired:
            return want
        return min(want, self.action.after_bytes - self.received)

    def advance(self, count):
        self.received += count

    def check(self, partial):
        """Fire if due; partial() gives (data, raw) so far for the record."""
        if self.fired or self.received < self.action.after_bytes:
            return
        self.fired = True
        self.conn.body_action(self.action, partial)


class Connection:
    def __init__(self, server, sock, number, peer):
        self.srv = server
        self.sock = sock
        self.number = number
        self.peer = peer
        self.reader = Reader(sock)
        self.tls_active = False
        self.occurrences = {}
        self.greeting_ok = True
        self.greeted = False
        self.esmtp = False
        self.extensions = {}
        self.authenticated = False
        self.drop_after = False
        self.input_before_reply = False
        self.reset_transaction()

    # ---- bookkeeping

    def record(self, name, **fields):
        self.srv.recorder.event(self.number, name, **fields)

    def reset_transaction(self):
        self.mail_from = None           # None: no transaction; "" is <>
        self.mail_params = []
        self.mail_param_text = ""
        self.rcpts = []
        self.rcpt_params = []
        self.bdat = None                # per-message BDAT state
        self.body_trigger = None

    def take(self, stage):
        count = self.occurrences.get(stage, 0)
        self.occurrences[stage] = count + 1
        return self.srv.script.action(stage, count)

    @property
    def enhanced(self):
        return self.esmtp and "ENHANCEDSTATUSCODES" in self.extensions

    def active_extensions(self):
        return self.extensions if self.esmtp else {}

    def size_limit(self):
        value = self.active_extensions().get("SIZE", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    # ---- output

    def format_reply(self, code, texts):
        if isinstance(texts, str):
            texts = [texts]
        lines = []
        for index, text in enumerate(texts):
            if not self.enhanced:
                text = ENHANCED_CODE.sub("", text)
            sep = "-" if index < len(texts) - 1 else " "
            lines.append(f"{code}{sep}{text}\r\n")
        return "".join(lines).encode("utf-8")

    def send(self, payload):
        # Record first: whatever the client sees is already on record.
        self.input_before_reply = self.reader.has_pending()
        self.record("reply", text=payload.decode("utf-8", "replace"))
        try:
            self.sock.sendall(payload)
        except OSError:
            raise Closed("client closed")

    def respond(self, stage, default, on_abort=None, before_send=None):
        return self.perform(self.take(stage), default, on_abort, before_send)

    def perform(self, action, default, on_abort=None, before_send=None):
        """Run action; default is (code, texts) or a callable giving it.
        on_abort() runs before a scripted drop or hang, before_send(code,
        text) before the reply goes out.  Returns (code or None, text)."""
        if action.delay:
            time.sleep(action.delay)
        if action.kind in ("drop", "hang"):
            if on_abort:
                on_abort()
            if action.kind == "drop":
                raise Closed("dropped by script")
            self.hang()
        if action.kind == "reply":
            payload, code = action.payload, action.code
        else:
            code, texts = default() if callable(default) else default
            payload = self.format_reply(code, texts)
        if before_send:
            before_send(code, payload.decode("utf-8", "replace"))
        self.send(payload)
        if action.then_drop:
            self.drop_after = True
        if action.then_hang:
            self.hang()
        return code, payload.decode("utf-8", "replace")

    def hang(self):
        """Never reply, never close; log what still arrives."""
        self.record("hang")
        self.sock.settimeout(None)
        pending = bytearray()
        while True:
            data = self.reader.read_some(RECV_CHUNK)
            if not data:
                break
            pending += data
            while True:
                index = pending.find(b"\n")
                if index < 0:
                    break
                line = bytes(pending[:index + 1])
                del pending[:index + 1]
                self.record("ignored", **self.line_fields(line))
        if pending:
            self.record("ignored", unterminated=True,
                        **self.line_fields(bytes(pending)))
        raise Closed("client closed")

    @staticmethod
    def line_fields(line):
        fields = {}
        if line.endswith(b"\r\n"):
            body = line[:-2]
        elif line.endswith(b"\n"):
            body = line[:-1]
            fields["bare_lf"] = True
        else:
            body = line
        fields = {"line": body.decode("latin-1"), **fields}
        if b"\r" in body:
            fields["bare_cr"] = True
        return fields

    # ---- life cycle

    def run(self):
        reason = "client closed"
        self.disconnect_recorded = False
        self.record("connect", peer=self.peer)
        try:
            self.sock.settimeout(self.srv.timeout)
            if self.srv.tls_mode == "implicit":
                self.handshake()
            self.greet()
            self.check_drop()
            while True:
                self.serve_command()
                self.check_drop()
        except Closed as end:
            reason = end.reason
        except TimeoutError:
            reason = "timeout"
            try:
                self.send(self.format_reply(
                    421, f"4.4.2 {self.srv.hostname} Error: timeout exceeded"))
            except (Closed, OSError):
                pass
        except Exception as err:   # keep serving others; say what broke
            reason = "server error"
            self.record("error", error=repr(err))
        finally:
            if not self.disconnect_recorded:
                self.record("disconnect", reason=reason)
            try:
                self.sock.close()
            except OSError:
                pass

    def check_drop(self):
        if self.drop_after:
            raise Closed("dropped by script")

    def greet(self):
        default = (220, f"{self.srv.hostname} ESMTP faultserver")
        code, _ = self.respond("greeting", default)
        # RFC 5321 3.1: after a refusing greeting, only QUIT is served.
        self.greeting_ok = code is not None and code // 100 == 2

    def handshake(self):
        tls = self.srv.ssl_context.wrap_socket(
            self.sock, server_side=True, do_handshake_on_connect=False)
        self.sock = tls
        self.reader.sock = tls
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as err:
            self.record("tls_error", error=str(err))
            raise Closed("tls failed")
        self.tls_active = True
        self.record("tls", version=tls.version(), cipher=tls.cipher()[0],
                    sni=self.srv.take_sni(tls))

    def serve_command(self):
        result = self.reader.readline(SASL_LINE_MAX)
        fields = self.line_fields(result.line)
        if self.input_before_reply:
            fields["pipelined"] = True
        if not result.terminated:
            self.record("command", unterminated=True, **fields)
            raise Closed("client closed")
        text = fields["line"]
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if result.too_long or (result.length > COMMAND_LINE_MAX and
                               verb != "AUTH"):
            fields["line"] = fields["line"][:COMMAND_LINE_MAX]
            self.record("command", too_long=True, length=result.length,
                        **fields)
            self.send(self.format_reply(500, "5.5.6 Error: line too long"))
            return
        self.record("command", **fields)
        handler = getattr(self, "do_" + verb.lower(), None) \
            if verb in self.srv.verbs else None
        if handler is None:
            self.send(self.format_reply(
                500, "5.5.2 Error: command not recognized"))
            return
        handler(arg)

    def no_service(self):
        return 503, "5.5.1 Error: no service (greeting refused)"

    # ---- commands

    def do_ehlo(self, arg):
        if not arg.strip():
            default = (501, "5.5.4 Syntax: EHLO hostname")
        elif not self.greeting_ok:
            default = self.no_service()
        else:
            default = (250, [self.srv.hostname] + self.capabilities())
        code, text = self.respond("ehlo", default)
        if code is not None and code // 100 == 2:
            self.greeted = True
            self.esmtp = True
            self.extensions = parse_extensions(text)
            self.reset_transaction()

    def do_helo(self, arg):
        if not arg.strip():
            default = (501, "5.5.4 Syntax: HELO hostname")
        elif not self.greeting_ok:
            default = self.no_service()
        else:
            default = (250, self.srv.hostname)
        code, _ = self.respond("helo", default)
        if code is not None and code // 100 == 2:
            self.greeted = True
            self.esmtp = False
            self.extensions = {}
            self.reset_transaction()

    def capabilities(self):
        script = self.srv.script
        if self.tls_active and script.capabilities_tls is not None:
            return list(script.capabilities_tls)
        if script.capabilities is not None:
            return list(script.capabilities)
        caps = ["PIPELINING", "8BITMIME", f"SIZE {DEFAULT_SIZE_LIMIT}",
                "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING"]
        if self.srv.tls_mode == "starttls" and not self.tls_active:
            caps.append("STARTTLS")
        if self.srv.tls_mode == "none" or self.tls_active:
            caps.append("AUTH PLAIN LOGIN")
        return caps

    def do_starttls(self, arg):
        if arg.strip():
            default = (501, "5.5.4 Syntax: STARTTLS")
        elif not self.greeting_ok:
            default = self.no_service()
        elif self.tls_active:
            default = (503, "5.5.1 Error: TLS already active")
        elif "STARTTLS" not in self.active_extensions():
            default = (502, "5.5.1 Error: command not implemented")
        elif self.srv.ssl_context is None:
            default = (454, "4.7.0 TLS not available")
        else:
            default = (220, "2.0.0 Ready to start TLS")
        if not self.tls_active:
            # Anything sent after STARTTLS but before our reply is injected
            # plaintext (RFC 3207 5, CVE-2011-0411).  Collect it now: once
            # the 220 is out, the client's ClientHello may follow at once.
            self.reader.pull_available()
        code, _ = self.respond("starttls", default)
        if code is None or code // 100 != 2 or self.drop_after:
            return
        if self.tls_active or self.srv.ssl_context is None:
            return          # a scripted 220 we cannot honour: stay plain
        injected = self.reader.discard()
        self.input_before_reply = False
        if injected:
            self.record("discarded", reason="plaintext after STARTTLS",
                        bytes=len(injected), data_b64=b64(injected))
        self.handshake()
        # RFC 3207 4.2: forget everything learnt before TLS.
        self.greeted = False
        self.esmtp = False
        self.extensions = {}
        self.authenticated = False
        self.reset_transaction()

    def do_mail(self, arg):
        path, params, error = parse_path_argument(arg, "FROM", True)
        if not self.greeting_ok:
            default = self.no_service()
        elif not self.greeted:
            default = (503, "5.5.1 Error: send HELO/EHLO first")
        elif self.mail_from is not None:
            default = (503, "5.5.1 Error: nested MAIL command")
        elif error:
            default = (501, f"5.5.4 {error}")
        elif self.srv.user is not None and not self.authenticated:
            default = (530, "5.7.0 Authentication required")
        else:
            default = self.check_mail_params(path, params) or \
                (250, "2.1.0 Ok")
        code, _ = self.respond("mail", default)
        if code is not None and code // 100 == 2:
            self.reset_transaction()
            self.mail_from = path if path is not None else arg
            self.mail_params = params
            self.mail_param_text = " ".join(
                k if v is None else f"{k}={v}" for k, v in params)

    def check_mail_params(self, path, params):
        ext = self.active_extensions()
        seen = set()
        for key, value in params:
            if key in seen:
                return 501, f"5.5.4 Duplicate parameter {key}"
            seen.add(key)
            problem = self.check_mail_param(ext, key, value)
            if problem:
                return problem
        if has_non_ascii(path) and "SMTPUTF8" not in seen:
            return 553, "5.6.7 Error: SMTPUTF8 required for this address"
        return None

    def check_mail_param(self, ext, key, value):
        needs = {"SIZE": "SIZE", "SMTPUTF8": "SMTPUTF8", "RET": "DSN",
                 "ENVID": "DSN", "AUTH": "AUTH"}
        if key == "BODY":
            allowed = {"7BIT": None, "8BITMIME": "8BITMIME",
                       "BINARYMIME": "BINARYMIME"}
            word = (value or "").upper()
            if word not in allowed:
                return 501, f"5.5.4 Bad BODY value {value}"
            if allowed[word] and allowed[word] not in ext:
                return 555, f"5.5.4 Unsupported option: BODY={word}"
            return None
        if key not in needs or needs[key] not in ext:
            return 555, f"5.5.4 Unsupported option: {key}"
        if key == "SIZE":
            if value is None or not value.isdigit():
                return 501, "5.5.4 Bad SIZE value"
            limit = self.size_limit()
            if limit and int(value) > limit:
                return 552, "5.3.4 Message size exceeds fixed limit"
        elif key == "SMTPUTF8" and value is not None:
            return 501, "5.5.4 SMTPUTF8 takes no value"
        elif key == "RET" and (value or "").upper() not in ("FULL", "HDRS"):
            return 501, "5.5.4 Bad RET value"
        elif key == "ENVID" and (value is None or len(value) > 100 or
                                 not xtext_ok(value)):
            return 501, "5.5.4 Bad ENVID value"
        elif key == "AUTH" and (value is None or not xtext_ok(value)):
            return 501, "5.5.4 Bad AUTH value"
        return None

    def do_rcpt(self, arg):
        path, params, error = parse_path_argument(arg, "TO", False)
        if not self.greeting_ok:
            default = self.no_service()
        elif self.mail_from is None:
            default = (503, "5.5.1 Error: need MAIL command")
        elif self.bdat is not None:
            default = (503, "5.5.1 Error: BDAT transfer in progress")
        elif error:
            default = (501, f"5.5.4 {error}")
        else:
            default = self.check_rcpt_params(path, params) or \
                (250, "2.1.5 Ok")
        code, _ = self.respond("rcpt", default)
        if code is not None and code // 100 == 2:
            self.rcpts.append(path if path is not None else arg)
            self.rcpt_params.append(" ".join(
                k if v is None else f"{k}={v}" for k, v in params))

    def check_rcpt_params(self, path, params):
        ext = self.active_extensions()
        seen = set()
        for key, value in params:
            if key in seen:
                return 501, f"5.5.4 Duplicate parameter {key}"
            seen.add(key)
            if key not in ("NOTIFY", "ORCPT") or "DSN" not in ext:
                return 555, f"5.5.4 Unsupported option: {key}"
            if key == "NOTIFY":
                words = (value or "").upper().split(",")
                if words != ["NEVER"] and not (
                        words and set(words) <=
                        {"SUCCESS", "FAILURE", "DELAY"} and
                        len(set(words)) == len(words)):
                    return 501, "5.5.4 Bad NOTIFY value"
            else:
                addr_type, semi, address = (value or "").partition(";")
                if not semi or not ESMTP_KEYWORD.match(addr_type) or \
                        not address:
                    return 501, "5.5.4 Bad ORCPT value"
        utf8 = any(k == "SMTPUTF8" for k, _ in self.mail_params)
        if has_non_ascii(path) and not utf8:
            return 553, "5.6.7 Error: SMTPUTF8 required for this address"
        return None

    def do_data(self, arg):
        body = dict(self.mail_params).get("BODY", "")
        if arg.strip():
            default = (501, "5.5.4 Syntax: DATA")
        elif not self.greeting_ok:
            default = self.no_service()
        elif self.mail_from is None:
            default = (503, "5.5.1 Error: need MAIL command")
        elif not self.rcpts:
            default = (503, "5.5.1 Error: need RCPT command")
        elif self.bdat is not None:
            default = (503, "5.5.1 Error: BDAT transfer in progress")
        elif (body or "").upper() == "BINARYMIME":
            # RFC 3030 3: BINARYMIME content goes by BDAT only.
            default = (503, "5.5.1 Error: BINARYMIME needs BDAT")
        else:
            default = (354, "End data with <CR><LF>.<CR><LF>")
        code, _ = self.respond("data", default)
        if code is None or code // 100 != 3 or self.drop_after:
            return
        self.receive_data()

    def receive_data(self):
        early = self.input_before_reply
        parser = DotParser()
        trigger = BodyTrigger(self, self.take("body"))

        def partial():
            return parser.partial_data(), bytes(parser.raw)

        while not parser.done:
            trigger.check(partial)
            chunk = self.reader.read_some(trigger.room(RECV_CHUNK))
            if not chunk:
                self.record_incomplete("DATA", *partial())
                raise Closed("client closed")
            used = parser.feed(chunk)
            if used < len(chunk):
                self.reader.unread(chunk[used:])
            trigger.advance(used)
        trigger.check(partial)
        details = {"method": "DATA", "early_body": early,
                   "bare_lf": parser.bare_lf,
                   "longest_line": parser.longest_line}
        self.finish_message(bytes(parser.data), bytes(parser.raw), details)

    def body_action(self, action, partial):
        """The scripted "body" behaviour, at its point in the data."""
        if action.delay:
            time.sleep(action.delay)
        if action.kind in ("drop", "hang"):
            self.record_incomplete(self.message_method(), *partial())
            if action.kind == "drop":
                raise Closed("dropped by script")
            self.hang()
        if action.kind == "reply":
            self.send(action.payload)
        if action.then_drop:
            self.record_incomplete(self.message_method(), *partial())
            raise Closed("dropped by script")

    def message_method(self):
        return "BDAT" if self.bdat is not None else "DATA"

    def record_incomplete(self, method, data, raw):
        self.record("message", accepted=False, complete=False, reply=None,
                    method=method, mail_from=self.mail_from,
                    rcpt_to=list(self.rcpts), size=len(data),
                    data_b64=b64(data), raw_b64=b64(raw))

    def finish_message(self, data, raw, details, refusal=None):
        """The "dot" stage: answer the end of a message and record it."""
        def default():
            if refusal:
                return refusal
            if self.mail_from is None or not self.rcpts:
                return 554, "5.5.1 Error: no valid recipients"
            limit = self.size_limit()
            if limit and len(data) > limit:
                return 552, "5.3.4 Error: message file too big"
            return 250, f"2.0.0 Ok: queued as {self.srv.next_queue_id()}"

        def write(accepted, reply):
            self.record(
                "message", accepted=accepted, complete=True, reply=reply,
                mail_from=self.mail_from, rcpt_to=list(self.rcpts),
                mail_params=self.mail_param_text,
                rcpt_params=list(self.rcpt_params), size=len(data),
                eightbit=any(b > 127 for b in data),
                data_b64=b64(data), raw_b64=b64(raw), **details)

        def before_send(code, text):
            write(code is not None and code // 100 == 2,
                  text.rstrip("\r\n"))

        self.respond("dot", default, on_abort=lambda: write(False, None),
                     before_send=before_send)
        self.reset_transaction()

    def do_bdat(self, arg):
        if "CHUNKING" not in self.active_extensions():
            self.send(self.format_reply(
                500, "5.5.2 Error: command not recognized"))
            return
        match = re.fullmatch(r"(\d+)(?: +(LAST))? *", arg, re.IGNORECASE)
        if not match:
            self.send(self.format_reply(
                501, "5.5.4 Syntax: BDAT size [LAST]"))
            return
        size, last = int(match.group(1)), bool(match.group(2))
        refusal = self.bdat_refusal()
        if refusal is None and self.bdat is None:
            self.bdat = {"chunks": [], "data": bytearray(), "failed": False}
            self.body_trigger = BodyTrigger(self, self.take("body"))
        chunk = self.read_chunk(size, refusal is None)
        if refusal is None:
            self.bdat["chunks"].append(size)
            self.bdat["data"] += chunk
        if last:
            self.finish_bdat(refusal)
            return
        default = refusal or (250, f"2.0.0 Ok: {size} octets received")
        code, _ = self.respond("bdat", default)
        if self.bdat is not None and (code is None or code // 100 != 2):
            self.bdat["failed"] = True

    def bdat_refusal(self):
        if not self.greeting_ok:
            return self.no_service()
        if self.mail_from is None:
            return 503, "5.5.1 Error: need MAIL command"
        if not self.rcpts:
            return 503, "5.5.1 Error: need RCPT command"
        if self.bdat is not None and self.bdat["failed"]:
            # RFC 3030 2: after a failed chunk the rest is discarded.
            return 503, "5.5.1 Error: an earlier BDAT chunk failed"
        return None

    def read_chunk(self, size, counted):
        """Exactly size octets; counted ones drive the "body" action."""
        out = bytearray()
        trigger = self.body_trigger if counted else None

        def partial():
            data = bytes(self.bdat["data"]) + bytes(out)
            return data, data

        while len(out) < size:
            want = size - len(out)
            if trigger:
                trigger.check(partial)
                want = trigger.room(want)
            data = self.reader.read_some(want)
            if not data:
                if counted:
                    self.record_incomplete("BDAT", *partial())
                raise Closed("client closed")
            out += data
            if trigger:
                trigger.advance(len(data))
        if trigger:
            trigger.check(partial)
        return bytes(out)

    def finish_bdat(self, refusal):
        if self.bdat is None:
            # Nothing was collected: just answer LAST, as "dot".
            self.respond("dot", refusal or self.no_service())
            self.reset_transaction()
            return
        data = bytes(self.bdat["data"])
        details = {"method": "BDAT", "chunks": self.bdat["chunks"]}
        self.finish_message(data, data, details, refusal)

    def do_rset(self, arg):
        default = (501, "5.5.4 Syntax: RSET") if arg.strip() \
            else (250, "2.0.0 Ok")
        code, _ = self.respond("rset", default)
        if code is not None and code // 100 == 2:
            self.reset_transaction()

    def do_noop(self, arg):
        self.respond("noop", (250, "2.0.0 Ok"))

    def do_vrfy(self, arg):
        self.send(self.format_reply(252, "2.0.0 Cannot VRFY user"))

    def do_help(self, arg):
        self.send(self.format_reply(214, "2.0.0 See RFC 5321"))

    def do_quit(self, arg):
        def before_send(code, text):
            if code is not None and code // 100 == 2:
                self.record("disconnect", reason="quit")
                self.disconnect_recorded = True

        code, _ = self.respond("quit", (221, "2.0.0 Bye"),
                               before_send=before_send)
        if code is not None and code // 100 == 2:
            if isinstance(self.sock, ssl.SSLSocket):
                self.sock.settimeout(0.5)
                try:
                    self.sock = self.sock.unwrap()
                except (OSError, ValueError):
                    pass
            raise Closed("quit")

    # ---- AUTH (RFC 4954)

    def do_auth(self, arg):
        action = self.take("auth")
        words = arg.split()
        mechanism = words[0].upper() if words else ""
        refusal = self.auth_refusal(words, mechanism)
        info = {"mechanism": mechanism, "authcid": None, "authzid": None,
                "credentials_ok": False}
        if refusal:
            default = refusal
        else:
            forced = None
            if action.kind == "reply":
                code = action.code
                forced = code is not None and code // 100 == 2
            try:
                ok = self.sasl_exchange(mechanism, words[1]
                                        if len(words) > 1 else None,
                                        info, forced)
                info["credentials_ok"] = ok
                default = (235, "2.7.0 Authentication successful") if ok \
                    else (535, "5.7.8 Error: authentication failed")
            except SaslAbort as abort:
                default = abort.reply
        def before_send(code, text):
            self.record("auth", success=code is not None and
                        code // 100 == 2, reply=text.rstrip("\r\n"), **info)

        def on_abort():
            self.record("auth", success=False, reply=None, **info)

        code, _ = self.perform(action, default, on_abort, before_send)
        if code is not None and code // 100 == 2:
            self.authenticated = True

    def auth_refusal(self, words, mechanism):
        ext = self.active_extensions()
        if not words or len(words) > 2:
            return 501, "5.5.4 Syntax: AUTH mechanism [initial-response]"
        if not self.greeting_ok:
            return self.no_service()
        if not self.esmtp:
            return 503, "5.5.1 Error: send EHLO first"
        if "AUTH" not in ext:
            if self.srv.tls_mode == "starttls" and not self.tls_active:
                return 530, "5.7.0 Must issue a STARTTLS command first"
            return 503, "5.5.1 Error: authentication not enabled"
        if self.authenticated:
            return 503, "5.5.1 Error: already authenticated"
        if self.mail_from is not None:
            return 503, "5.5.1 Error: MAIL transaction in progress"
        if mechanism not in ext["AUTH"].upper().split():
            return 504, "5.5.4 Unrecognized authentication type"
        return None

    def sasl_step(self, challenge):
        """Send a 334 challenge, return the decoded response."""
        self.send(b"334 " + base64.b64encode(challenge) + b"\r\n")
        result = self.reader.readline(SASL_LINE_MAX)
        fields = self.line_fields(result.line)
        if result.too_long:
            fields["too_long"] = True
        self.record("sasl", **fields)
        if not result.terminated:
            raise Closed("client closed")
        if result.too_long:
            raise SaslAbort(500, "5.5.6 Error: line too long")
        return self.decode_response(result.line.strip())

    @staticmethod
    def decode_response(text):
        if text == b"*":
            raise SaslAbort(501, "5.0.0 Authentication cancelled")
        if text == b"=":
            return b""
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except (binascii.Error, ValueError):
            raise SaslAbort(501, "5.5.2 Error: invalid base64 data")

    def sasl_first(self, initial):
        """RFC 4954 4: initial response given, "=" for empty, or ask."""
        if initial is None:
            return self.sasl_step(b"")
        return self.decode_response(initial.encode("latin-1"))

    def credentials_ok(self, user, password):
        if self.srv.user is not None and user != self.srv.user:
            return False
        if self.srv.password is not None and password != self.srv.password:
            return False
        return True

    def sasl_exchange(self, mechanism, initial, info, forced):
        handler = {
            "PLAIN": self.sasl_plain, "LOGIN": self.sasl_login,
            "CRAM-MD5": self.sasl_cram_md5, "XOAUTH2": self.sasl_xoauth2,
            "OAUTHBEARER": self.sasl_oauthbearer,
            "SCRAM-SHA-1": self.sasl_scram, "SCRAM-SHA-256": self.sasl_scram,
            "SCRAM-SHA-1-PLUS": self.sasl_scram,
            "SCRAM-SHA-256-PLUS": self.sasl_scram,
            "EXTERNAL": self.sasl_external,
        }.get(mechanism, self.sasl_other)
        return handler(mechanism, initial, info, forced)

    def sasl_plain(self, mechanism, initial, info, forced):
        parts = self.sasl_first(initial).split(b"\0")   # RFC 4616 2
        if len(parts) != 3:
            raise SaslAbort(501, "5.5.2 Error: malformed PLAIN message")
        authzid, authcid, password = (p.decode("utf-8", "replace")
                                      for p in parts)
        info.update(authcid=authcid, authzid=authzid)
        return self.credentials_ok(authcid, password) and \
            authzid in ("", authcid)

    def sasl_login(self, mechanism, initial, info, forced):
        if initial is not None:
            user = self.decode_response(initial.encode("latin-1"))
        else:
            user = self.sasl_step(b"Username:")
        password = self.sasl_step(b"Password:")
        user = user.decode("utf-8", "replace")
        info["authcid"] = user
        return self.credentials_ok(user, password.decode("utf-8", "replace"))

    def sasl_cram_md5(self, mechanism, initial, info, forced):
        if initial is not None:
            raise SaslAbort(501, "5.5.4 CRAM-MD5 takes no initial response")
        challenge = (f"<{os.getpid()}.{time.time_ns()}@"
                     f"{self.srv.hostname}>").encode("ascii")
        response = self.sasl_step(challenge).decode("utf-8", "replace")
        user, _, digest = response.rpartition(" ")
        info["authcid"] = user
        if self.srv.user is not None and user != self.srv.user:
            return False
        if self.srv.password is None:
            return True
        expected = hmac.new(self.srv.password.encode("utf-8"), challenge,
                            hashlib.md5).hexdigest()
        return hmac.compare_digest(expected.encode("ascii"),
                                   digest.lower().encode("utf-8"))

    def oauth_failure(self, forced, ok, error_json):
        """RFC 7628 3.2.2 / XOAUTH2: an error challenge before the 535."""
        if forced is False or (forced is None and not ok):
            self.sasl_step(json.dumps(error_json).encode("ascii"))

    def sasl_xoauth2(self, mechanism, initial, info, forced):
        message = self.sasl_first(initial).decode("utf-8", "replace")
        fields = dict(item.partition("=")[::2]
                      for item in message.split("\x01") if item)
        user = fields.get("user")
        token = fields.get("auth", "")
        info["authcid"] = user
        ok = user is not None and token.startswith("Bearer ") and \
            self.credentials_ok(user, token[7:])
        self.oauth_failure(forced, ok, {"status": "401",
                                        "schemes": "bearer",
                                        "scope": "https://mail.test/"})
        return ok

    def sasl_oauthbearer(self, mechanism, initial, info, forced):
        message = self.sasl_first(initial).decode("utf-8", "replace")
        gs2, _, rest = message.partition("\x01")
        fields = dict(item.partition("=")[::2]
                      for item in rest.split("\x01") if item)
        user = None
        for part in gs2.split(",")[1:]:
            if part.startswith("a="):
                user = part[2:].replace("=2C", ",").replace("=3D", "=")
        info["authcid"] = user
        token = fields.get("auth", "")
        ok = gs2[:1] in ("n", "y") and token.startswith("Bearer ") and \
            self.credentials_ok(user, token[7:])
        self.oauth_failure(forced, ok, {"status": "invalid_token",
                                        "scope": "mail"})
        return ok

    def sasl_other(self, mechanism, initial, info, forced):
        """A listed mechanism we do not speak: one step, then accept only
        when no credentials were configured."""
        self.sasl_first(initial)
        return self.srv.user is None and self.srv.password is None

    def sasl_external(self, mechanism, initial, info, forced):
        """RFC 4422 Appendix A: the identity is the TLS client certificate
        (verified against --client-ca); the message is an authzid."""
        authzid = self.sasl_first(initial).decode("utf-8", "replace")
        cert = self.sock.getpeercert() \
            if isinstance(self.sock, ssl.SSLSocket) else None
        subject = dict(item for rdn in (cert or {}).get("subject", ())
                       for item in rdn)
        info.update(authcid=subject.get("commonName"), authzid=authzid)
        return bool(cert) and authzid in ("", subject.get("commonName"))

    def channel_binding(self, name):
        """The data a -PLUS client must have bound to (RFC 5929, 9266)."""
        if not isinstance(self.sock, ssl.SSLSocket):
            return None
        if name == "tls-unique":
            data = self.sock.get_channel_binding("tls-unique")
        elif name == "tls-exporter":
            data = tls_exporter(self.sock)
        else:
            return None
        if data is not None and self.srv.args.cb_corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def sasl_scram(self, mechanism, initial, info, forced):
        """RFC 5802 / RFC 7677; channel binding for the -PLUS variants."""
        digest = hashlib.sha1 if mechanism.startswith("SCRAM-SHA-1") \
            else hashlib.sha256
        plus = mechanism.endswith("-PLUS")
        first = self.sasl_first(initial).decode("utf-8", "replace")
        match = re.fullmatch(r"([ny]|p=[A-Za-z0-9.-]+),(a=[^,]*)?,"
                             r"(n=([^,]*),r=([^,]+)(?:,.*)?)", first)
        if not match:
            raise SaslAbort(501, "5.5.2 Error: malformed SCRAM message")
        flag = match.group(1)
        if plus != flag.startswith("p="):
            raise SaslAbort(535, "5.7.8 Error: channel binding flag does "
                            "not match the mechanism")
        info["channel_binding"] = flag[2:] if plus else None
        cb_data = b""
        if plus:
            cb_data = self.channel_binding(flag[2:])
            if cb_data is None:
                raise SaslAbort(535, "5.7.8 Error: unsupported channel "
                                "binding type")
        gs2_header = first[:len(first) - len(match.group(3))]
        client_first_bare = match.group(3)
        user = match.group(4).replace("=2C", ",").replace("=3D", "=")
        info["authcid"] = user
        nonce = match.group(5) + b64(os.urandom(18))
        salt = os.urandom(16)
        server_first = f"r={nonce},s={b64(salt)},i={SCRAM_ITERATIONS}"
        final = self.sasl_step(server_first.encode("ascii"))
        final = final.decode("utf-8", "replace")
        without_proof, _, proof = final.rpartition(",p=")
        expected_c = "c=" + b64(gs2_header.encode("utf-8") + cb_data)
        if not without_proof.startswith(expected_c + f",r={nonce}"):
            raise SaslAbort(535, "5.7.8 Error: SCRAM binding or nonce "
                            "mismatch")
        password = (self.srv.password or "").encode("utf-8")
        salted = hashlib.pbkdf2_hmac(digest().name, password, salt,
                                     SCRAM_ITERATIONS)
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        stored_key = digest(client_key).digest()
        auth_message = ",".join((client_first_bare, server_first,
                                 without_proof)).encode("utf-8")
        signature = hmac.new(stored_key, auth_message, digest).digest()
        try:
            proof_bytes = base64.b64decode(proof, validate=True)
        except (binascii.Error, ValueError):
            proof_bytes = b""
        recovered = bytes(a ^ b for a, b in zip(proof_bytes, signature))
        proof_ok = len(proof_bytes) == len(signature) and \
            hmac.compare_digest(digest(recovered).digest(), stored_key)
        if self.srv.password is None:
            proof_ok = True
        ok = proof_ok and (self.srv.user is None or user == self.srv.user)
        if forced is True or (forced is None and ok):
            server_key = hmac.new(salted, b"Server Key", digest).digest()
            verifier = hmac.new(server_key, auth_message, digest).digest()
            self.sasl_step(b"v=" + base64.b64encode(verifier))
        return ok


# --------------------------------------------------------------------------
# Server


class Shutdown(Exception):
    pass


class Server:
    def __init__(self, args, script, recorder, ssl_context, tls_mode):
        self.args = args
        self.script = script
        self.recorder = recorder
        self.ssl_context = ssl_context
        self.tls_mode = tls_mode
        self.hostname = args.hostname
        self.user = args.user
        self.password = args.password
        self.timeout = args.timeout if args.timeout > 0 else None
        self.verbs = {name[3:].upper() for name in dir(Connection)
                      if name.startswith("do_")}
        self.lock = threading.Lock()
        self.connection_numbers = itertools.count(1)
        self.queue_ids = itertools.count(1)
        self.sni = {}
        if ssl_context is not None:
            ssl_context.sni_callback = self.remember_sni

    def remember_sni(self, tls_object, server_name, context):
        with self.lock:
            self.sni[id(tls_object)] = server_name
        return None

    def take_sni(self, tls_object):
        with self.lock:
            return self.sni.pop(id(tls_object), None)

    def next_queue_id(self):
        with self.lock:
            return next(self.queue_ids)

    def serve(self, listener):
        while True:
            sock, address = listener.accept()
            with self.lock:
                number = next(self.connection_numbers)
            peer = f"{address[0]}:{address[1]}"
            conn = Connection(self, sock, number, peer)
            threading.Thread(target=conn.run, daemon=True,
                             name=f"conn-{number}").start()


def tls_exporter(sslsock):
    """RFC 9266 tls-exporter: 32 bytes of keying material, label
    "EXPORTER-Channel-Binding", no context. The ssl module has no call for
    it, so OpenSSL is asked directly: CPython 3.11's _ssl._SSLSocket keeps
    its SSL pointer right after the object header and the weak reference
    to the socket. Test code only."""
    libssl = ctypes.CDLL(ctypes.util.find_library("ssl"))
    export = libssl.SSL_export_keying_material
    export.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                       ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                       ctypes.c_size_t, ctypes.c_int]
    export.restype = ctypes.c_int
    pointer_size = ctypes.sizeof(ctypes.c_void_p)
    ssl_ptr = ctypes.c_void_p.from_address(
        id(sslsock._sslobj) + 3 * pointer_size).value
    label = b"EXPORTER-Channel-Binding"
    out = ctypes.create_string_buffer(32)
    if export(ssl_ptr, out, 32, label, len(label), None, 0, 0) != 1:
        return None
    return out.raw


def make_ssl_context(args):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.tls_max == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key or args.cert)
    if args.client_ca:
        # Ask for a client certificate (EXTERNAL); do not insist on one.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(args.client_ca)
    return context


def open_listener(host, port):
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC,
                               socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    listener.bind(address)
    listener.listen(64)
    return listener


def write_port_file(path, port):
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory,
                             f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(f"{port}\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_events(path):
    with open(path, "r", encoding="ascii") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                # A server killed mid-write leaves at most a torn last line.
                sys.stderr.write(f"faultserver: {path}:{number}: "
                                 "unreadable line skipped\n")


def dump_message(args):
    accepted = [e for e in read_events(args.dump)
                if e.get("event") == "message" and e.get("accepted")]
    if not 0 <= args.message < len(accepted):
        sys.stderr.write(f"faultserver: {args.dump}: no accepted message "
                         f"{args.message} ({len(accepted)} recorded)\n")
        return 1
    event = accepted[args.message]
    data = base64.b64decode(event["raw_b64" if args.raw else "data_b64"])
    if args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        with open(args.out, "wb") as handle:
            handle.write(data)
    return 0


def print_summary(path):
    out = sys.stdout.buffer
    for event in read_events(path):
        for line in summary_line(event):
            # Commands were decoded as latin-1: this gives back their bytes.
            out.write(line.encode("latin-1", "replace") + b"\n")
    out.flush()
    return 0


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description="Scriptable SMTP server for fault-injection tests.",
        epilog="Use --help-script for the script format.")
    parser.add_argument("--port-file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", choices=("none", "starttls", "implicit"))
    parser.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.3")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--client-ca")
    parser.add_argument("--cb-corrupt", action="store_true")
    parser.add_argument("--script")
    parser.add_argument("--record")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--hostname", default="fault.test")
    parser.add_argument("--timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print the summary of events to stderr")
    parser.add_argument("--dump", metavar="RECORD")
    parser.add_argument("--message", type=int, default=0)
    parser.add_argument("--out", default="-")
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--summary", metavar="RECORD")
    parser.add_argument("--help-script", action="store_true")
    args = parser.parse_args(argv)
    if not (args.dump or args.summary or args.help_script) and \
            not args.port_file:
        parser.error("--port-file is required to run the server")
    args.tls = args.tls or ("starttls" if args.cert else "none")
    if args.tls != "none" and not args.cert and not args.dump \
            and not args.summary:
        parser.error(f"--tls {args.tls} needs --cert")
    return args


def main(argv=None):
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    if args.help_script:
        sys.stdout.write(SCRIPT_HELP)
        return 0
    if args.dump:
        return dump_message(args)
    if args.summary:
        return print_summary(args.summary)
    try:
        script = Script.load(args.script) if args.script else Script({})
    except (ScriptError, OSError) as err:
        sys.stderr.write(f"faultserver: script: {err}\n")
        return 2
    try:
        context = make_ssl_context(args) if args.cert else None
    except (ssl.SSLError, OSError) as err:
        sys.stderr.write(f"faultserver: cannot load --cert {args.cert} / "
                         f"--key {args.key or args.cert}: {err}\n")
        return 2
    recorder = Recorder(args.record, args.verbose)
    server = Server(args, script, recorder, context, args.tls)
    listener = open_listener(args.host, args.port)

    def stop(signum, frame):
        raise Shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_port_file(args.port_file, listener.getsockname()[1])
    try:
        server.serve(listener)
    except Shutdown:
        pass
    finally:
        listener.close()
    # Threads may hang on purpose; every event is already on disk.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
