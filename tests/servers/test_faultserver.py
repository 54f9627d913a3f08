#!/usr/bin/env python3
"""Tests for faultserver.py: python3 -m unittest (from tests/servers) or
python3 tests/servers/test_faultserver.py.  Standard library only; the TLS
tests make a throwaway certificate with openssl or certtool (skipped when
neither exists); the msmtp tests run only where msmtp is installed."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "faultserver.py")
CERT_DIR = None
CERT = KEY = None


def setUpModule():
    global CERT_DIR, CERT, KEY
    CERT_DIR = tempfile.mkdtemp(prefix="faultserver-certs-")
    cert = os.path.join(CERT_DIR, "cert.pem")
    key = os.path.join(CERT_DIR, "key.pem")
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
             "-out", cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True)
    elif shutil.which("certtool"):
        template = os.path.join(CERT_DIR, "template")
        with open(template, "w") as handle:
            handle.write('cn = "localhost"\ndns_name = "localhost"\n'
                         'ip_address = "127.0.0.1"\nexpiration_days = 2\n'
                         'tls_www_server\nsigning_key\nencryption_key\n')
        subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                        "--outfile", key], check=True, capture_output=True)
        subprocess.run(["certtool", "--generate-self-signed",
                        "--load-privkey", key, "--template", template,
                        "--outfile", cert], check=True, capture_output=True)
    else:
        return
    CERT, KEY = cert, key


def tearDownModule():
    if CERT_DIR:
        shutil.rmtree(CERT_DIR, ignore_errors=True)


def needs_cert(test):
    def wrapper(self, *args, **kwargs):
        if CERT is None:
            self.skipTest("neither openssl nor certtool is installed")
        return test(self, *args, **kwargs)
    wrapper.__name__ = test.__name__
    wrapper.__doc__ = test.__doc__
    return wrapper


def client_context():
    context = ssl.create_default_context(cafile=CERT)
    return context


def b64(data):
    return base64.b64encode(data).decode("ascii")


class FaultServer:
    """One faultserver process with its own script, record and port."""

    def __init__(self, workdir, script=None, args=(), host="127.0.0.1"):
        self.workdir = workdir
        self.record = os.path.join(workdir, "record.jsonl")
        self.port_file = os.path.join(workdir, "port")
        self.host = host
        command = [sys.executable, SERVER, "--port-file", self.port_file,
                   "--record", self.record, "--host", host]
        if script is not None:
            path = os.path.join(workdir, "script.json")
            with open(path, "w") as handle:
                json.dump(script, handle)
            command += ["--script", path]
        command += list(args)
        self.stderr = open(os.path.join(workdir, "stderr"), "w+")
        self.process = subprocess.Popen(command, stderr=self.stderr)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.process.poll() is not None:
                self.stderr.seek(0)
                raise RuntimeError("faultserver exited: " +
                                   self.stderr.read())
            if time.monotonic() > deadline:
                raise RuntimeError("faultserver did not start")
            time.sleep(0.02)
        with open(self.port_file) as handle:
            self.port = int(handle.read())

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()

    def events(self, name=None, wait_for=None, timeout=5):
        """Recorded events; wait_for: wait until an event of that name."""
        deadline = time.monotonic() + timeout
        while True:
            events = []
            if os.path.exists(self.record):
                with open(self.record) as handle:
                    events = [json.loads(line) for line in handle
                              if line.strip()]
            if wait_for is None or any(e["event"] == wait_for
                                       for e in events) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if name:
            events = [e for e in events if e["event"] == name]
        return events

    def helper(self, *args):
        return subprocess.run([sys.executable, SERVER] + list(args),
                              capture_output=True)


class Raw:
    """A plain socket SMTP client that shows exactly what the server says."""

    def __init__(self, port, host="127.0.0.1", timeout=5, context=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        if context is not None:
            self.sock = context.wrap_socket(self.sock,
                                            server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(self.buf)
            self.buf += data
        index = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:index], self.buf[index:]
        return line

    def reply(self):
        """(code, [texts]) of one possibly multi-line reply."""
        texts = []
        while True:
            line = self.line().decode("utf-8").rstrip("\r\n")
            texts.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), texts

    def command(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def read_until_closed(self):
        data = self.buf
        self.buf = b""
        while True:
            try:
                more = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not more:
                break
            data += more
        return data

    def starttls(self, context):
        self.sock = context.wrap_socket(self.sock,
                                        server_hostname="localhost")

    def close(self):
        self.sock.close()


class ServerTestCase(unittest.TestCase):
    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="faultserver-test-")
        self.servers = []
        self.clients = []

    def tearDown(self):
        for client in self.clients:
            try:
                client.close()
            except OSError:
                pass
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, script=None, args=(), host="127.0.0.1"):
        workdir = os.path.join(self.workdir, str(len(self.servers)))
        os.mkdir(workdir)
        server = FaultServer(workdir, script, args, host)
        self.servers.append(server)
        return server

    def connect(self, server, greet=True, **kwargs):
        client = Raw(server.port, host=server.host, **kwargs)
        self.clients.append(client)
        if greet:
            self.assertEqual(client.reply()[0], 220)
        return client

    def transaction(self, client, body=b"Subject: t\r\n\r\nhi\r\n"):
        self.assertEqual(client.command("MAIL FROM:<a@example.test>")[0],
                         250)
        self.assertEqual(client.command("RCPT TO:<b@example.test>")[0], 250)
        self.assertEqual(client.command("DATA")[0], 354)
        client.send(body + b".\r\n")
        return client.reply()


# --------------------------------------------------------------------------


class DefaultBehaviour(ServerTestCase):

    def test_delivery_with_smtplib(self):
        server = self.start()
        body = b"From: a@example.test\r\nSubject: hi\r\n\r\nline 1\r\n"
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as smtp:
            code, caps = smtp.ehlo("client.test")
            self.assertEqual(code, 250)
            caps = caps.decode().split("\n")
            self.assertEqual(caps, [
                "fault.test", "PIPELINING", "8BITMIME", "SIZE 52428800",
                "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING",
                "AUTH PLAIN LOGIN"])
            refused = smtp.sendmail("a@example.test",
                                    ["b@example.test", "c@example.test"],
                                    body)
            self.assertEqual(refused, {})
        messages = server.events("message", wait_for="disconnect")
        self.assertEqual(len(messages), 1)
        message = messages[0]
        self.assertTrue(message["accepted"])
        self.assertTrue(message["complete"])
        self.assertEqual(message["reply"], "250 2.0.0 Ok: queued as 1")
        self.assertEqual(message["mail_from"], "a@example.test")
        self.assertEqual(message["rcpt_to"],
                         ["b@example.test", "c@example.test"])
        self.assertEqual(base64.b64decode(message["data_b64"]), body)
        self.assertEqual(base64.b64decode(message["raw_b64"]),
                         body + b".\r\n")
        self.assertEqual(message["size"], len(body))
        self.assertEqual(message["method"], "DATA")
        self.assertFalse(message["eightbit"])
        disconnect = server.events("disconnect")
        self.assertEqual(disconnect[0]["reason"], "quit")

    def test_greeting_and_default_replies(self):
        server = self.start(args=["--hostname", "mx.example"])
        client = self.connect(server, greet=False)
        self.assertEqual(client.line(),
                         b"220 mx.example ESMTP faultserver\r\n")
        # RFC 2034: no enhanced codes before EHLO has offered them.
        self.assertEqual(client.command("FOO"),
                         (500, ["Error: command not recognized"]))
        self.assertEqual(client.command("MAIL FROM:<a@b.test>"),
                         (503, ["Error: send HELO/EHLO first"]))
        self.assertEqual(client.command("EHLO c.test")[0], 250)
        self.assertEqual(client.command("FOO"),
                         (500, ["5.5.2 Error: command not recognized"]))
        self.assertEqual(client.command("NOOP"), (250, ["2.0.0 Ok"]))
        self.assertEqual(client.command("RSET"), (250, ["2.0.0 Ok"]))
        self.assertEqual(client.command("QUIT"), (221, ["2.0.0 Bye"]))
        self.assertEqual(client.read_until_closed(), b"")

    def test_sequence_errors(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        self.assertEqual(client.command("RCPT TO:<b@x.test>")[0], 503)
        self.assertEqual(client.command("DATA")[0], 503)
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 250)
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 503)
        self.assertEqual(client.command("DATA"),
                         (503, ["5.5.1 Error: need RCPT command"]))
        self.assertEqual(client.command("RCPT TO:b@x.test")[0], 501)
        self.assertEqual(client.command("RCPT TO:<>")[0], 501)
        self.assertEqual(client.command("RCPT TO:<Postmaster>")[0], 250)
        self.assertEqual(client.command("RSET")[0], 250)
        self.assertEqual(client.command("RCPT TO:<b@x.test>")[0], 503)
        self.assertEqual(client.command("EHLO")[0], 501)
        self.assertEqual(client.command("HELO c.test"), (250, ["fault.test"]))
        # After HELO there are no extensions, hence no parameters.
        self.assertEqual(client.command("MAIL FROM:<a@x.test> SIZE=10")[0],
                         555)

    def test_dot_stuffing_removed_raw_kept(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        raw = (b"Subject: dots\r\n\r\n..leading dot\r\n...\r\n"
               b"middle . dot\r\n..\r\n.\r\n")
        self.assertEqual(client.command("MAIL FROM:<>")[0], 250)
        self.assertEqual(client.command("RCPT TO:<b@x.test>")[0], 250)
        self.assertEqual(client.command("DATA")[0], 354)
        client.send(raw)
        code, texts = client.reply()
        self.assertEqual(code, 250)
        message = server.events("message")[0]
        self.assertEqual(base64.b64decode(message["data_b64"]),
                         b"Subject: dots\r\n\r\n.leading dot\r\n..\r\n"
                         b"middle . dot\r\n.\r\n")
        self.assertEqual(base64.b64decode(message["raw_b64"]), raw)
        self.assertEqual(message["mail_from"], "")

    def test_empty_message_and_pipelined_quit(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b".\r\nQUIT\r\n")
        self.assertEqual(client.reply()[0], 250)
        self.assertEqual(client.reply()[0], 221)
        message = server.events("message", wait_for="disconnect")[0]
        self.assertEqual(message["data_b64"], "")
        self.assertTrue(message["accepted"])

    def test_dot_after_bare_lf_is_not_the_end(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b"a\n.\r\nb\r\n.\r\n")
        self.assertEqual(client.reply()[0], 250)
        message = server.events("message")[0]
        self.assertEqual(base64.b64decode(message["data_b64"]),
                         b"a\n\r\nb\r\n")
        self.assertTrue(message["bare_lf"])

    def test_pipelined_commands(self):
        server = self.start()
        client = self.connect(server)
        client.send("EHLO c.test\r\nMAIL FROM:<a@x.test> BODY=8BITMIME\r\n"
                    "RCPT TO:<b@x.test>\r\nRCPT TO:<bad address@x.test>\r\n"
                    "RCPT TO:<c@x.test> NOTIFY=SUCCESS,FAILURE\r\nDATA\r\n")
        codes = [client.reply()[0] for _ in range(6)]
        self.assertEqual(codes, [250, 250, 250, 501, 250, 354])
        client.send(b"Subject: p\r\n\r\n\xe4\r\n.\r\nQUIT\r\n")
        self.assertEqual(client.reply()[0], 250)
        self.assertEqual(client.reply()[0], 221)
        commands = server.events("command", wait_for="disconnect")
        self.assertEqual([c["line"].split(" ")[0] for c in commands],
                         ["EHLO", "MAIL", "RCPT", "RCPT", "RCPT", "DATA",
                          "QUIT"])
        self.assertTrue(all(c.get("pipelined") for c in commands[1:6]))
        message = server.events("message")[0]
        self.assertEqual(message["rcpt_to"], ["b@x.test", "c@x.test"])
        self.assertEqual(message["rcpt_params"],
                         ["", "NOTIFY=SUCCESS,FAILURE"])
        self.assertEqual(message["mail_params"], "BODY=8BITMIME")
        self.assertTrue(message["eightbit"])

    def test_body_before_354_is_noted(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        client.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                    "DATA\r\nearly body\r\n.\r\n")
        self.assertEqual([client.reply()[0] for _ in range(4)],
                         [250, 250, 354, 250])
        self.assertTrue(server.events("message")[0]["early_body"])

    def test_command_line_limit(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        exact = "NOOP " + "x" * (1000 - 5 - 2)
        self.assertEqual(client.command(exact)[0], 250)
        self.assertEqual(client.command(exact + "y"),
                         (500, ["5.5.6 Error: line too long"]))
        huge = "NOOP " + "z" * 200000
        self.assertEqual(client.command(huge)[0], 500)
        self.assertEqual(client.command("NOOP")[0], 250)
        commands = server.events("command")
        self.assertNotIn("too_long", commands[1])
        self.assertTrue(commands[2]["too_long"])
        self.assertEqual(commands[2]["length"], 1001)
        self.assertEqual(commands[3]["length"], len(huge) + 2)
        self.assertEqual(len(commands[3]["line"]), 1000)

    def test_bare_lf_and_bare_cr_in_commands(self):
        server = self.start()
        client = self.connect(server)
        client.send("EHLO c.test\nNOOP\r\nNOOP a\rb\r\n")
        self.assertEqual([client.reply()[0] for _ in range(3)],
                         [250, 250, 250])
        commands = server.events("command")
        self.assertEqual(commands[0]["line"], "EHLO c.test")
        self.assertTrue(commands[0]["bare_lf"])
        self.assertNotIn("bare_lf", commands[1])
        self.assertTrue(commands[2]["bare_cr"])

    def test_mail_and_rcpt_parameters(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        cases = [
            ("MAIL FROM:<a@x.test> SIZE=52428801", 552),
            ("MAIL FROM:<a@x.test> FOO=bar", 555),
            ("MAIL FROM:<a@x.test> BODY=BINARYMIME", 555),
            ("MAIL FROM:<a@x.test> BODY=9BIT", 501),
            ("MAIL FROM:<a@x.test> SIZE=1 SIZE=2", 501),
            ("MAIL FROM:<a@x.test> RET=SOME", 501),
            ("MAIL FROM:a@x.test", 501),
            ("MAIL FROM:<a@x.test>junk", 501),
            ("MAIL FROM:<\u00e4@x.test>", 553),
        ]
        for line, code in cases:
            self.assertEqual(client.command(line)[0], code, line)
        line = "MAIL FROM:<\u00e4@x.test> SMTPUTF8".encode("utf-8")
        client.send(line + b"\r\n")
        self.assertEqual(client.reply()[0], 250)
        client.send("RCPT TO:<\u00f6@y.test>\r\n".encode("utf-8"))
        self.assertEqual(client.reply()[0], 250)
        self.assertEqual(client.command("RCPT TO:<c@x.test> ORCPT=x")[0],
                         501)
        self.assertEqual(client.command(
            "RCPT TO:<c@x.test> ORCPT=rfc822;c@x.test NOTIFY=NEVER")[0], 250)
        self.assertEqual(client.command("RSET")[0], 250)
        self.assertEqual(client.command(
            "MAIL FROM:<a@x.test> SIZE=100 RET=HDRS ENVID=abc+2B")[0], 250)
        # Recorded lines are latin-1 decodings of the bytes received.
        utf8_line = server.events("command")[10]["line"]
        self.assertEqual(utf8_line.encode("latin-1"), line)

    def test_bdat(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.send(b"BDAT 7\r\n.hello\n")
        self.assertEqual(client.reply(),
                         (250, ["2.0.0 Ok: 7 octets received"]))
        client.send(b"BDAT 5 LAST\r\n.\r\n\r\nNOOP\r\n")
        code, texts = client.reply()
        self.assertEqual(code, 250)
        self.assertIn("queued as", texts[0])
        self.assertEqual(client.reply()[0], 250)
        message = server.events("message")[0]
        self.assertEqual(message["method"], "BDAT")
        self.assertEqual(message["chunks"], [7, 5])
        self.assertEqual(base64.b64decode(message["data_b64"]),
                         b".hello\n.\r\n\r\n")
        # Out of sequence: the chunk is still read, then refused.
        client.send(b"BDAT 4 LAST\r\nabcdNOOP\r\n")
        self.assertEqual(client.reply()[0], 503)
        self.assertEqual(client.reply()[0], 250)
        self.assertEqual(client.command("BDAT x")[0], 501)
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        self.assertEqual(client.command("BDAT 0 LAST")[0], 250)
        self.assertEqual(server.events("message")[1]["data_b64"], "")

    def test_client_closing_mid_data(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b"Subject: cut\r\n\r\npartial")
        client.close()
        message = server.events("message", wait_for="disconnect")[0]
        self.assertFalse(message["complete"])
        self.assertFalse(message["accepted"])
        self.assertEqual(base64.b64decode(message["raw_b64"]),
                         b"Subject: cut\r\n\r\npartial")
        self.assertEqual(server.events("disconnect")[0]["reason"],
                         "client closed")

    def test_concurrent_connections(self):
        server = self.start()
        first = self.connect(server)
        second = self.connect(server)
        second.command("EHLO two.test")
        first.command("EHLO one.test")
        self.assertEqual(self.transaction(second)[0], 250)
        self.assertEqual(self.transaction(first)[0], 250)
        messages = server.events("message")
        self.assertEqual([m["conn"] for m in messages], [2, 1])
        self.assertEqual([m["reply"] for m in messages],
                         ["250 2.0.0 Ok: queued as 1",
                          "250 2.0.0 Ok: queued as 2"])

    def test_idle_timeout(self):
        server = self.start(args=["--timeout", "0.5"])
        client = self.connect(server)
        started = time.monotonic()
        self.assertEqual(client.reply()[0], 421)
        self.assertGreaterEqual(time.monotonic() - started, 0.4)
        self.assertEqual(client.read_until_closed(), b"")
        self.assertEqual(server.events("disconnect", wait_for="disconnect")
                         [0]["reason"], "timeout")

    def test_ipv6_loopback(self):
        try:
            probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            probe.bind(("::1", 0))
            probe.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        server = self.start(host="::1")
        client = self.connect(server)
        self.assertEqual(client.command("EHLO c.test")[0], 250)

    def test_port_file_and_sigterm(self):
        server = self.start()
        with open(server.port_file) as handle:
            content = handle.read()
        self.assertRegex(content, r"^[0-9]+\n$")
        self.assertEqual(os.listdir(server.workdir).count("port"), 1)
        self.assertFalse([n for n in os.listdir(server.workdir)
                          if n.endswith(".tmp")])
        client = self.connect(server)
        client.command("EHLO c.test")
        server.process.send_signal(signal.SIGTERM)
        self.assertEqual(server.process.wait(5), 0)

    def test_bad_script_is_refused(self):
        for script in ({"rcpt": {"replay": "250 x"}}, {"bogus": {}},
                       {"mail": {"action": "explode"}},
                       {"mail": {"after_bytes": 3}},
                       {"mail": {"reply": "250 a", "raw": "x"}},
                       {"capabilities": "PIPELINING"}, []):
            path = os.path.join(self.workdir, "bad.json")
            with open(path, "w") as handle:
                json.dump(script, handle)
            result = subprocess.run(
                [sys.executable, SERVER, "--port-file",
                 os.path.join(self.workdir, "p"), "--script", path],
                capture_output=True, timeout=10)
            self.assertEqual(result.returncode, 2, script)
            self.assertIn(b"script", result.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.workdir, "p")))


class ScriptedActions(ServerTestCase):

    def test_reply_string_state_follows(self):
        server = self.start({"mail": {"reply": "451 4.3.0 Try again later"}})
        client = self.connect(server)
        client.command("EHLO c.test")
        self.assertEqual(client.command("MAIL FROM:<a@x.test>"),
                         (451, ["4.3.0 Try again later"]))
        # No transaction was started: RCPT is out of sequence.
        self.assertEqual(client.command("RCPT TO:<b@x.test>")[0], 503)

    def test_reply_list_for_ehlo_sets_extensions(self):
        server = self.start({"ehlo": {"reply": ["250-x.test says hi",
                                                "250 SIZE 100"]}})
        client = self.connect(server)
        self.assertEqual(client.command("EHLO c.test"),
                         (250, ["x.test says hi", "SIZE 100"]))
        self.assertEqual(client.command("MAIL FROM:<a@x.test> SIZE=101")[0],
                         552)
        self.assertEqual(client.command("MAIL FROM:<a@x.test> SIZE=99"),
                         (250, ["Ok"]))     # no ENHANCEDSTATUSCODES offered
        client.command("RCPT TO:<b@x.test>")
        self.assertEqual(client.command("BDAT 1 LAST")[0], 500)

    def test_capabilities_replace_defaults(self):
        server = self.start({"capabilities": ["PIPELINING", "SIZE 1000"]},
                            args=["--cert", CERT, "--key", KEY]
                            if CERT else [])
        client = self.connect(server)
        code, texts = client.command("EHLO c.test")
        self.assertEqual(texts, ["fault.test", "PIPELINING", "SIZE 1000"])
        self.assertEqual(client.command("STARTTLS")[0], 502)
        self.assertEqual(client.command("AUTH PLAIN AGIAaQ==")[0], 530
                         if CERT else 503)
        self.assertEqual(client.command(
            "MAIL FROM:<a@x.test> BODY=8BITMIME")[0], 555)
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b"x" * 1001 + b"\r\n.\r\n")
        self.assertEqual(client.reply()[0], 552)
        self.assertFalse(server.events("message")[0]["accepted"])

    def test_raw_reply_with_bare_lf(self):
        server = self.start({"greeting": {"raw": "220 bare\n"},
                             "noop": {"raw": "250-a\n250 b\r\n"}})
        client = self.connect(server, greet=False)
        self.assertEqual(client.line(), b"220 bare\n")
        client.send("NOOP\r\n")
        self.assertEqual(client.line(), b"250-a\n")
        self.assertEqual(client.line(), b"250 b\r\n")

    def test_raw_b64_and_garbage(self):
        server = self.start({"greeting": {"raw_b64": b64(b"220 \xff\x00\r\n")},
                             "helo": {"raw": "garbage"}})
        client = self.connect(server, greet=False)
        self.assertEqual(client.line(), b"220 \xff\x00\r\n")
        client.send("HELO c.test\r\nMAIL FROM:<a@x.test>\r\n")
        # Garbage has no code, so HELO did not succeed: MAIL is refused.
        self.assertEqual(client.line(), b"garbage503 Error: send HELO/EHLO "
                         b"first\r\n")

    def test_drop(self):
        server = self.start({"rcpt": {"action": "drop"}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.send("RCPT TO:<b@x.test>\r\n")
        self.assertEqual(client.read_until_closed(), b"")
        disconnect = server.events("disconnect", wait_for="disconnect")
        self.assertEqual(disconnect[0]["reason"], "dropped by script")

    def test_hang(self):
        server = self.start({"data": {"action": "hang"}})
        client = self.connect(server, timeout=1)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.send("DATA\r\n")
        with self.assertRaises(socket.timeout):
            client.reply()
        client.send("QUIT\r\n")
        time.sleep(0.2)
        self.assertEqual(server.events("disconnect"), [])
        client.close()
        events = server.events(wait_for="disconnect")
        self.assertEqual([e["event"] for e in events[-3:]],
                         ["hang", "ignored", "disconnect"])
        self.assertEqual(events[-2]["line"], "QUIT")
        self.assertEqual(events[-1]["reason"], "client closed")

    def test_delay(self):
        server = self.start({"noop": [{"delay": 0.6},
                                      {"delay": 0.3,
                                       "reply": "250 2.0.0 slow"}]})
        client = self.connect(server)
        started = time.monotonic()
        self.assertEqual(client.command("NOOP"), (250, ["Ok"]))
        self.assertGreaterEqual(time.monotonic() - started, 0.55)
        started = time.monotonic()
        self.assertEqual(client.command("NOOP"), (250, ["2.0.0 slow"]))
        self.assertGreaterEqual(time.monotonic() - started, 0.25)

    def test_then_drop(self):
        server = self.start({"greeting": {
            "reply": "421 4.3.2 Shutting down", "then": "drop"}})
        client = self.connect(server, greet=False)
        self.assertEqual(client.read_until_closed(),
                         b"421 4.3.2 Shutting down\r\n")
        self.assertEqual(server.events("disconnect", wait_for="disconnect")
                         [0]["reason"], "dropped by script")

    def test_default_then_drop_and_drop_with_delay(self):
        server = self.start({"ehlo": {"then": "drop"},
                             "helo": {"action": "drop", "delay": 0.3}})
        client = self.connect(server)
        client.send("EHLO c.test\r\n")
        self.assertTrue(client.read_until_closed().startswith(
            b"250-fault.test\r\n"))
        client = self.connect(server)
        started = time.monotonic()
        client.send("HELO c.test\r\n")
        self.assertEqual(client.read_until_closed(), b"")
        self.assertGreaterEqual(time.monotonic() - started, 0.25)

    def test_per_occurrence_list_last_repeats(self):
        server = self.start({"rcpt": [{"action": "default"},
                                      {"reply": "550 5.1.1 No such user"},
                                      {"action": "default"},
                                      {"reply": "452 4.5.3 Too many"}]})
        for _ in range(2):      # every connection plays the script anew
            client = self.connect(server)
            client.command("EHLO c.test")
            client.command("MAIL FROM:<a@x.test>")
            codes = [client.command(f"RCPT TO:<r{i}@x.test>")[0]
                     for i in range(6)]
            self.assertEqual(codes, [250, 550, 250, 452, 452, 452])
            self.assertEqual(client.command("DATA")[0], 354)
            client.send(b"x\r\n.\r\n")
            self.assertEqual(client.reply()[0], 250)
            client.command("QUIT")
        messages = server.events("message", wait_for="disconnect")
        self.assertEqual(messages[0]["rcpt_to"], ["r0@x.test", "r2@x.test"])
        self.assertEqual(messages[1]["rcpt_to"], ["r0@x.test", "r2@x.test"])

    def test_data_refused_reads_no_body(self):
        server = self.start({"data": {"reply": "554 5.5.1 No thanks"}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        self.assertEqual(client.command("DATA")[0], 554)
        self.assertEqual(client.command("Subject: not a command")[0], 500)
        self.assertEqual(client.command(".")[0], 500)
        self.assertEqual(server.events("message"), [])

    def test_dot_refused_is_recorded(self):
        server = self.start({"dot": [{"reply": "451 4.3.0 Queue trouble"},
                                     {"action": "default"}]})
        client = self.connect(server)
        client.command("EHLO c.test")
        self.assertEqual(self.transaction(client),
                         (451, ["4.3.0 Queue trouble"]))
        # The transaction is over either way.
        self.assertEqual(client.command("RCPT TO:<b@x.test>")[0], 503)
        self.assertEqual(self.transaction(client, b"second\r\n")[0], 250)
        messages = server.events("message")
        self.assertEqual([m["accepted"] for m in messages], [False, True])
        self.assertEqual(messages[0]["reply"], "451 4.3.0 Queue trouble")
        self.assertTrue(messages[0]["complete"])
        out = os.path.join(self.workdir, "out")
        result = server.helper("--dump", server.record, "--message", "0",
                               "--out", out)
        self.assertEqual(result.returncode, 0)
        with open(out, "rb") as handle:
            self.assertEqual(handle.read(), b"second\r\n")
        result = server.helper("--dump", server.record, "--message", "1",
                               "--out", out)
        self.assertEqual(result.returncode, 1)

    def test_dot_drop_records_full_message(self):
        server = self.start({"dot": {"action": "drop"}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b"whole\r\n.\r\n")
        self.assertEqual(client.read_until_closed(), b"")
        message = server.events("message", wait_for="disconnect")[0]
        self.assertTrue(message["complete"])
        self.assertFalse(message["accepted"])
        self.assertIsNone(message["reply"])
        self.assertEqual(base64.b64decode(message["data_b64"]), b"whole\r\n")

    def test_body_drop_after_bytes(self):
        server = self.start({"body": {"action": "drop", "after_bytes": 100}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        try:
            client.send(b"y" * 78 + b"\r\n" + b"z" * 5000 + b"\r\n.\r\n")
        except OSError:
            pass
        self.assertEqual(client.read_until_closed(), b"")
        message = server.events("message", wait_for="disconnect")[0]
        self.assertFalse(message["complete"])
        self.assertEqual(len(base64.b64decode(message["raw_b64"])), 100)
        self.assertEqual(server.events("disconnect")[0]["reason"],
                         "dropped by script")

    def test_body_reply_mid_data(self):
        server = self.start({"body": {"after_bytes": 10,
                                      "reply": "552 5.3.4 Too big",
                                      "then": "drop"}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b"0123456789abc")
        self.assertEqual(client.read_until_closed(),
                         b"552 5.3.4 Too big\r\n")
        message = server.events("message", wait_for="disconnect")[0]
        self.assertFalse(message["complete"])
        self.assertEqual(base64.b64decode(message["raw_b64"]),
                         b"0123456789")

    def test_body_reply_then_continue(self):
        server = self.start({"body": [{"action": "default"},
                                      {"after_bytes": 3,
                                       "raw": "NOISE\r\n"}]})
        client = self.connect(server)
        client.command("EHLO c.test")
        self.assertEqual(self.transaction(client)[0], 250)
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b"abcdef\r\n.\r\n")
        self.assertEqual(client.line(), b"NOISE\r\n")
        self.assertEqual(client.reply()[0], 250)
        message = server.events("message")[1]
        self.assertEqual(base64.b64decode(message["data_b64"]), b"abcdef\r\n")

    def test_body_drop_in_bdat(self):
        server = self.start({"body": {"action": "drop", "after_bytes": 6}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.send(b"BDAT 4\r\nabcd")
        self.assertEqual(client.reply()[0], 250)
        client.send(b"BDAT 4 LAST\r\nefgh")
        self.assertEqual(client.read_until_closed(), b"")
        message = server.events("message", wait_for="disconnect")[0]
        self.assertEqual(base64.b64decode(message["data_b64"]), b"abcdef")
        self.assertEqual(message["method"], "BDAT")

    def test_greeting_refused(self):
        server = self.start({"greeting": {"reply": "554 5.3.2 Not now"}})
        client = self.connect(server, greet=False)
        self.assertEqual(client.reply(), (554, ["5.3.2 Not now"]))
        self.assertEqual(client.command("EHLO c.test")[0], 503)
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 503)
        self.assertEqual(client.command("QUIT")[0], 221)

    def test_greeting_hang_and_drop(self):
        server = self.start({"greeting": {"action": "hang"}})
        client = self.connect(server, greet=False, timeout=0.5)
        with self.assertRaises(socket.timeout):
            client.reply()
        server2 = self.start({"greeting": {"action": "drop"}})
        client2 = self.connect(server2, greet=False)
        self.assertEqual(client2.read_until_closed(), b"")

    def test_quit_refused_keeps_connection(self):
        server = self.start({"quit": [{"reply": "500 no"},
                                      {"action": "default"}]})
        client = self.connect(server)
        self.assertEqual(client.command("QUIT")[0], 500)
        self.assertEqual(client.command("NOOP")[0], 250)
        self.assertEqual(client.command("QUIT")[0], 221)
        self.assertEqual(client.read_until_closed(), b"")

    def test_rset_refused_keeps_transaction(self):
        server = self.start({"rset": {"reply": "421 4.3.0 no"}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        self.assertEqual(client.command("RSET")[0], 421)
        self.assertEqual(client.command("RCPT TO:<b@x.test>")[0], 250)


class TLS(ServerTestCase):

    @needs_cert
    def test_starttls(self):
        server = self.start(args=["--cert", CERT, "--key", KEY,
                                  "--user", "u", "--password", "p"])
        with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as smtp:
            smtp.ehlo("c.test")
            self.assertTrue(smtp.has_extn("starttls"))
            self.assertFalse(smtp.has_extn("auth"))
            self.assertEqual(smtp.docmd("AUTH", "PLAIN AHUAcA==")[0], 530)
            self.assertEqual(smtp.docmd("MAIL", "FROM:<a@x.test>")[0], 530)
            smtp.starttls(context=client_context())
            smtp.ehlo("c.test")
            self.assertFalse(smtp.has_extn("starttls"))
            self.assertEqual(smtp.esmtp_features["auth"].strip(),
                             "PLAIN LOGIN")
            smtp.login("u", "p")
            smtp.sendmail("a@x.test", ["b@x.test"], b"over tls\r\n")
        tls = server.events("tls", wait_for="disconnect")
        self.assertEqual(len(tls), 1)
        self.assertIn(tls[0]["version"], ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(tls[0]["sni"], None)   # smtplib sent no name: IP
        self.assertTrue(server.events("message")[0]["accepted"])
        auth = server.events("auth")
        self.assertEqual([(a["success"], a["reply"][:3]) for a in auth],
                         [(False, "530"), (True, "235")])

    @needs_cert
    def test_starttls_resets_state_and_records_sni(self):
        server = self.start(args=["--cert", CERT, "--key", KEY,
                                  "--tls", "starttls", "--tls-max", "1.2"])
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        self.assertEqual(client.command("STARTTLS"),
                         (220, ["2.0.0 Ready to start TLS"]))
        client.starttls(client_context())
        self.assertEqual(client.sock.version(), "TLSv1.2")
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 503)
        self.assertEqual(client.command("STARTTLS")[0], 503)
        self.assertEqual(client.command("EHLO c.test")[0], 250)
        self.assertEqual(client.command("STARTTLS")[0], 503)
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 250)
        tls = server.events("tls")[0]
        self.assertEqual((tls["version"], tls["sni"]), ("TLSv1.2",
                                                       "localhost"))

    @needs_cert
    def test_starttls_injection_is_discarded(self):
        server = self.start(args=["--cert", CERT, "--key", KEY])
        client = self.connect(server)
        client.command("EHLO c.test")
        client.send("STARTTLS\r\nNOOP injected\r\n")
        self.assertEqual(client.reply()[0], 220)
        client.starttls(client_context())
        self.assertEqual(client.command("EHLO c.test")[0], 250)
        discarded = server.events("discarded")
        self.assertEqual(len(discarded), 1)
        self.assertEqual(base64.b64decode(discarded[0]["data_b64"]),
                         b"NOOP injected\r\n")
        lines = [c["line"] for c in server.events("command")]
        self.assertNotIn("NOOP injected", lines)

    @needs_cert
    def test_starttls_refused_by_script(self):
        server = self.start({"starttls": [{"reply": "454 4.7.0 TLS not "
                                           "available now"},
                                          {"action": "default"}]},
                            args=["--cert", CERT, "--key", KEY])
        client = self.connect(server)
        client.command("EHLO c.test")
        self.assertEqual(client.command("STARTTLS")[0], 454)
        self.assertEqual(client.command("NOOP")[0], 250)    # still plain
        self.assertEqual(client.command("STARTTLS")[0], 220)
        client.starttls(client_context())
        self.assertEqual(client.command("EHLO c.test")[0], 250)

    @needs_cert
    def test_implicit_tls(self):
        server = self.start(args=["--cert", CERT, "--key", KEY,
                                  "--tls", "implicit"])
        with smtplib.SMTP_SSL("localhost", server.port, timeout=5,
                              context=client_context()) as smtp:
            smtp.ehlo("c.test")
            self.assertFalse(smtp.has_extn("starttls"))
            self.assertTrue(smtp.has_extn("auth"))
            smtp.sendmail("a@x.test", ["b@x.test"], b"implicit\r\n")
        events = server.events(wait_for="disconnect")
        self.assertEqual([e["event"] for e in events[:3]],
                         ["connect", "tls", "reply"])
        self.assertEqual(events[1]["sni"], "localhost")
        self.assertTrue(server.events("message")[0]["accepted"])

    @needs_cert
    def test_handshake_failure(self):
        server = self.start(args=["--cert", CERT, "--key", KEY,
                                  "--tls", "implicit"])
        client = self.connect(server, greet=False)
        client.send("EHLO plaintext.test\r\n")
        client.read_until_closed()
        disconnect = server.events("disconnect", wait_for="disconnect")
        self.assertEqual(disconnect[0]["reason"], "tls failed")
        self.assertEqual(len(server.events("tls_error")), 1)

    @needs_cert
    def test_tls_capabilities_script(self):
        server = self.start({"capabilities": ["STARTTLS"],
                             "capabilities_tls": ["AUTH XOAUTH2"]},
                            args=["--cert", CERT, "--key", KEY])
        client = self.connect(server)
        self.assertEqual(client.command("EHLO c.test")[1],
                         ["fault.test", "STARTTLS"])
        client.command("STARTTLS")
        client.starttls(client_context())
        self.assertEqual(client.command("EHLO c.test")[1],
                         ["fault.test", "AUTH XOAUTH2"])
        self.assertEqual(client.command("AUTH PLAIN AGEAYg==")[0], 504)


class Auth(ServerTestCase):

    def start_auth(self, script=None):
        return self.start(script, args=["--user", "alice",
                                        "--password", "s3cret"])

    def ready(self, server):
        client = self.connect(server)
        client.command("EHLO c.test")
        return client

    def test_plain_initial_response(self):
        server = self.start_auth()
        client = self.ready(server)
        self.assertEqual(client.command("MAIL FROM:<a@x.test>"),
                         (530, ["5.7.0 Authentication required"]))
        wrong = b64(b"\0alice\0wrong")
        self.assertEqual(client.command("AUTH PLAIN " + wrong),
                         (535, ["5.7.8 Error: authentication failed"]))
        right = b64(b"\0alice\0s3cret")
        self.assertEqual(client.command("AUTH PLAIN " + right),
                         (235, ["2.7.0 Authentication successful"]))
        self.assertEqual(client.command("AUTH PLAIN " + right)[0], 503)
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 250)
        auth = server.events("auth")
        self.assertEqual([(a["authcid"], a["success"]) for a in auth],
                         [("alice", False), ("alice", True), (None, False)])
        self.assertEqual(auth[2]["reply"],
                         "503 5.5.1 Error: already authenticated")

    def test_plain_without_initial_response(self):
        server = self.start_auth()
        client = self.ready(server)
        client.send("AUTH PLAIN\r\n")
        self.assertEqual(client.line(), b"334 \r\n")
        client.send(b64(b"alice\0alice\0s3cret") + "\r\n")
        self.assertEqual(client.reply()[0], 235)
        self.assertEqual(server.events("auth")[0]["authzid"], "alice")

    def test_plain_wrong_authzid_and_malformed(self):
        server = self.start_auth()
        client = self.ready(server)
        self.assertEqual(client.command(
            "AUTH PLAIN " + b64(b"bob\0alice\0s3cret"))[0], 535)
        self.assertEqual(client.command("AUTH PLAIN =")[0], 501)
        self.assertEqual(client.command("AUTH PLAIN !!!")[0], 501)

    def test_login(self):
        server = self.start_auth()
        client = self.ready(server)
        client.send("AUTH LOGIN\r\n")
        self.assertEqual(client.reply(), (334, ["VXNlcm5hbWU6"]))
        client.send(b64(b"alice") + "\r\n")
        self.assertEqual(client.reply(), (334, ["UGFzc3dvcmQ6"]))
        client.send(b64(b"s3cret") + "\r\n")
        self.assertEqual(client.reply()[0], 235)

    def test_login_initial_response_and_wrong_password(self):
        server = self.start_auth()
        client = self.ready(server)
        client.send("AUTH LOGIN " + b64(b"alice") + "\r\n")
        self.assertEqual(client.reply(), (334, ["UGFzc3dvcmQ6"]))
        client.send(b64(b"nope") + "\r\n")
        self.assertEqual(client.reply()[0], 535)

    def test_cancel_and_bad_base64(self):
        server = self.start_auth()
        client = self.ready(server)
        client.send("AUTH LOGIN\r\n")
        client.reply()
        self.assertEqual(client.command("*"),
                         (501, ["5.0.0 Authentication cancelled"]))
        client.send("AUTH LOGIN\r\n")
        client.reply()
        self.assertEqual(client.command("not base64!")[0], 501)
        self.assertEqual(client.command("AUTH CRAM-MD5")[0], 504)
        self.assertEqual(client.command("AUTH")[0], 501)
        self.assertEqual(len(server.events("sasl")), 2)

    def test_anything_goes_without_credentials(self):
        server = self.start()
        client = self.ready(server)
        client.send("AUTH LOGIN =\r\n")
        self.assertEqual(client.reply()[0], 334)
        self.assertEqual(client.command("=")[0], 235)
        self.assertEqual(server.events("auth")[0]["authcid"], "")

    def test_auth_needs_ehlo_and_no_transaction(self):
        server = self.start()
        client = self.connect(server)
        client.command("HELO c.test")
        self.assertEqual(client.command("AUTH PLAIN " + b64(b"\0a\0b"))[0],
                         503)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        self.assertEqual(client.command("AUTH PLAIN " + b64(b"\0a\0b"))[0],
                         503)

    def test_scripted_auth_replaces_final_reply(self):
        server = self.start_auth({"auth": [
            {"reply": "454 4.7.0 Temporary authentication failure"},
            {"reply": "235 2.7.0 Welcome anyway"},
            {"action": "drop"}]})
        client = self.ready(server)
        right = b64(b"\0alice\0s3cret")
        self.assertEqual(client.command("AUTH PLAIN " + right)[0], 454)
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 530)
        client.send("AUTH LOGIN\r\n")
        client.reply()
        client.send(b64(b"mallory") + "\r\n")
        client.reply()
        client.send(b64(b"guess") + "\r\n")
        self.assertEqual(client.reply(), (235, ["2.7.0 Welcome anyway"]))
        self.assertEqual(client.command("MAIL FROM:<a@x.test>")[0], 250)
        auth = server.events("auth")
        self.assertEqual([(a["credentials_ok"], a["success"]) for a in auth],
                         [(True, False), (False, True)])
        # Third AUTH: refused by default (already authenticated), but the
        # script drops the connection instead of answering.
        client.send("AUTH PLAIN " + right + "\r\n")
        self.assertEqual(client.read_until_closed(), b"")

    def test_cram_md5(self):
        server = self.start_auth({"capabilities": ["AUTH CRAM-MD5"]})
        for password, code in (("s3cret", 235), ("bad", 535)):
            client = self.ready(server)
            client.send("AUTH CRAM-MD5\r\n")
            status, texts = client.reply()
            self.assertEqual(status, 334)
            challenge = base64.b64decode(texts[0])
            digest = hmac.new(password.encode(), challenge,
                              hashlib.md5).hexdigest()
            self.assertEqual(client.command(b64(b"alice " +
                                                digest.encode()))[0], code)

    def test_xoauth2(self):
        server = self.start_auth({"capabilities": ["AUTH XOAUTH2"]})
        client = self.ready(server)
        token = b64(b"user=alice\x01auth=Bearer s3cret\x01\x01")
        self.assertEqual(client.command("AUTH XOAUTH2 " + token)[0], 235)
        client = self.ready(server)
        token = b64(b"user=alice\x01auth=Bearer expired\x01\x01")
        code, texts = client.command("AUTH XOAUTH2 " + token)
        self.assertEqual(code, 334)
        self.assertEqual(json.loads(base64.b64decode(texts[0]))["status"],
                         "401")
        self.assertEqual(client.command("")[0], 535)

    def test_oauthbearer(self):
        server = self.start_auth({"capabilities": ["AUTH OAUTHBEARER"]})
        client = self.ready(server)
        message = b"n,a=alice,\x01host=x\x01port=587\x01" \
                  b"auth=Bearer s3cret\x01\x01"
        self.assertEqual(client.command("AUTH OAUTHBEARER " +
                                        b64(message))[0], 235)

    def test_scram_sha_256(self):
        server = self.start_auth({"capabilities": ["AUTH SCRAM-SHA-256"]})
        for password, code in (("s3cret", 235), ("bad", 535)):
            client = self.ready(server)
            nonce = "rOprNGfwEbeRWgbNEkqO"
            first_bare = f"n=alice,r={nonce}"
            code1, texts = client.command(
                "AUTH SCRAM-SHA-256 " + b64(b"n,," + first_bare.encode()))
            self.assertEqual(code1, 334)
            server_first = base64.b64decode(texts[0]).decode()
            attrs = dict(p.split("=", 1) for p in server_first.split(","))
            self.assertTrue(attrs["r"].startswith(nonce))
            salted = hashlib.pbkdf2_hmac(
                "sha256", password.encode(), base64.b64decode(attrs["s"]),
                int(attrs["i"]))
            client_key = hmac.new(salted, b"Client Key", "sha256").digest()
            stored = hashlib.sha256(client_key).digest()
            without_proof = f"c=biws,r={attrs['r']}"
            auth_message = f"{first_bare},{server_first},{without_proof}"
            signature = hmac.new(stored, auth_message.encode(),
                                 "sha256").digest()
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            code2, texts = client.command(b64(
                f"{without_proof},p={b64(proof)}".encode()))
            if code != 235:
                self.assertEqual(code2, code)
                continue
            self.assertEqual(code2, 334)
            server_key = hmac.new(salted, b"Server Key", "sha256").digest()
            verifier = hmac.new(server_key, auth_message.encode(),
                                "sha256").digest()
            self.assertEqual(base64.b64decode(texts[0]),
                             b"v=" + base64.b64encode(verifier))
            self.assertEqual(client.command("")[0], 235)

    def test_long_auth_line_allowed(self):
        server = self.start({"capabilities": ["AUTH XOAUTH2"]})
        client = self.ready(server)
        token = b64(b"user=a\x01auth=Bearer " + b"t" * 3000 + b"\x01\x01")
        self.assertEqual(client.command("AUTH XOAUTH2 " + token)[0], 235)


@unittest.skipUnless(shutil.which("msmtp"), "msmtp is not installed")
class RealClient(ServerTestCase):
    """msmtp (GnuTLS, GNU SASL) against the server: STARTTLS, every SASL
    mechanism, pipelining and dot-stuffing, with a client we did not
    write."""

    MECHANISMS = ("plain", "login", "cram-md5", "scram-sha-1",
                  "scram-sha-256", "xoauth2", "oauthbearer")

    def msmtp(self, server, auth, password):
        message = b"Subject: msmtp\n\n.leading dot\nbody\n"
        return subprocess.run(
            ["msmtp", "--host=localhost", f"--port={server.port}",
             "--tls=on", "--tls-starttls=on", f"--tls-trust-file={CERT}",
             f"--auth={auth}", "--user=alice",
             f"--passwordeval=echo {password}", "--from=a@x.test",
             "--", "b@x.test"],
            input=message, capture_output=True, timeout=30)

    @needs_cert
    def test_mechanisms(self):
        server = self.start(
            {"capabilities_tls": [
                "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES",
                "AUTH " + " ".join(m.upper() for m in self.MECHANISMS)]},
            args=["--cert", CERT, "--key", KEY, "--user", "alice",
                  "--password", "s3cret"])
        for mechanism in self.MECHANISMS:
            good = self.msmtp(server, mechanism, "s3cret")
            self.assertEqual(good.returncode, 0, (mechanism, good.stderr))
            bad = self.msmtp(server, mechanism, "wrong")
            self.assertEqual(bad.returncode, 77, (mechanism, bad.stderr))
        messages = server.events("message")
        self.assertEqual(len(messages), len(self.MECHANISMS))
        for message in messages:
            self.assertTrue(message["accepted"])
            self.assertTrue(base64.b64decode(message["data_b64"]).endswith(
                b"\r\n\r\n.leading dot\r\nbody\r\n"))
        auth = server.events("auth")
        self.assertEqual([a["success"] for a in auth],
                         [True, False] * len(self.MECHANISMS))

    @needs_cert
    def test_temporary_failure_reaches_client(self):
        server = self.start({"rcpt": {"reply": "451 4.3.0 Try later"}},
                            args=["--cert", CERT, "--key", KEY])
        result = self.msmtp(server, "off", "x")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"451 4.3.0 Try later", result.stderr)
        self.assertEqual(server.events("message"), [])
        rcpt = [c for c in server.events("command")
                if c["line"].startswith("RCPT")]
        self.assertEqual(rcpt[0]["line"], "RCPT TO:<b@x.test>")


class Helpers(ServerTestCase):

    def test_dump_and_summary(self):
        server = self.start()
        client = self.connect(server)
        client.command("EHLO c.test")
        self.transaction(client, b"first\r\n")
        self.transaction(client, b"..second\r\n")
        client.command("QUIT")
        server.events(wait_for="disconnect")
        for index, expected, raw in ((0, b"first\r\n", False),
                                     (1, b".second\r\n", False),
                                     (1, b"..second\r\n.\r\n", True)):
            out = os.path.join(self.workdir, f"m{index}")
            args = ["--dump", server.record, "--message", str(index),
                    "--out", out] + (["--raw"] if raw else [])
            self.assertEqual(server.helper(*args).returncode, 0)
            with open(out, "rb") as handle:
                self.assertEqual(handle.read(), expected)
        result = server.helper("--dump", server.record, "--message", "0")
        self.assertEqual(result.stdout, b"first\r\n")
        summary = server.helper("--summary", server.record).stdout
        lines = summary.decode().splitlines()
        for expected in ("conn 1 connect peer=127.0.0.1:",
                         "conn 1 command EHLO c.test",
                         "conn 1 reply 250-fault.test",
                         "conn 1 command MAIL FROM:<a@example.test>",
                         "conn 1 message accepted from=<a@example.test> "
                         "to=<b@example.test> size=7 "
                         "reply=250 2.0.0 Ok: queued as 1",
                         "conn 1 disconnect quit"):
            self.assertTrue(any(line.startswith(expected) for line in lines),
                            expected)

    def test_record_survives_kill(self):
        server = self.start({"dot": {"action": "hang"}})
        client = self.connect(server)
        client.command("EHLO c.test")
        client.command("MAIL FROM:<a@x.test>")
        client.command("RCPT TO:<b@x.test>")
        client.command("DATA")
        client.send(b"kept\r\n.\r\n")
        server.events(wait_for="hang")
        server.process.kill()
        server.process.wait()
        events = server.events()
        self.assertEqual(events[-2]["event"], "message")
        self.assertEqual(base64.b64decode(events[-2]["data_b64"]),
                         b"kept\r\n")
        self.assertEqual(events[-1]["event"], "hang")

    def test_help_script(self):
        result = subprocess.run([sys.executable, SERVER, "--help-script"],
                                capture_output=True)
        self.assertEqual(result.returncode, 0)
        self.assertIn(b"after_bytes", result.stdout)


if __name__ == "__main__":
    unittest.main()
