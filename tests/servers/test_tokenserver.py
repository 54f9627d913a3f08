#!/usr/bin/env python3
"""Tests for tokenserver.py: python3 tests/servers/test_tokenserver.py.
Standard library only; the certificates come from certs.sh (skipped when
certtool is not installed)."""

import base64
import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "tokenserver.py")
CERTS = None


def setUpModule():
    global CERTS
    if not shutil.which("certtool"):
        return
    CERTS = tempfile.mkdtemp(prefix="tokenserver-certs-")
    subprocess.run(["sh", os.path.join(HERE, "certs.sh"), CERTS], check=True)


def tearDownModule():
    if CERTS:
        shutil.rmtree(CERTS, ignore_errors=True)


def s256(verifier):
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenServer:
    """One tokenserver process with its own script, record and port."""

    def __init__(self, workdir, script):
        self.workdir = workdir
        self.record = os.path.join(workdir, "record.jsonl")
        self.script = os.path.join(workdir, "script.json")
        port_file = os.path.join(workdir, "port")
        self.set_script(script)
        self.process = subprocess.Popen(
            [sys.executable, SERVER, "--cert", os.path.join(CERTS, "server.pem"),
             "--key", os.path.join(CERTS, "server-key.pem"), "--port-file",
             port_file, "--script", self.script, "--record", self.record])
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tokenserver did not start")
            time.sleep(0.02)
        with open(port_file) as handle:
            self.port = int(handle.read())

    def set_script(self, script):
        tmp = self.script + ".new"
        with open(tmp, "w") as handle:
            json.dump(script, handle)
        os.replace(tmp, self.script)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)

    def request(self, method, path, form=None):
        context = ssl.create_default_context(
            cafile=os.path.join(CERTS, "ca.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=context, timeout=10)
        body = urllib.parse.urlencode(form) if form is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read().decode()
        location = response.getheader("Location")
        conn.close()
        try:
            data = json.loads(data)
        except ValueError:
            pass
        return response.status, data, location

    def token(self, **form):
        form.setdefault("client_id", "test-client")
        return self.request("POST", "/token", form)[:2]

    def records(self):
        with open(self.record) as handle:
            return [json.loads(line) for line in handle]


class TokenServerTest(unittest.TestCase):
    def setUp(self):
        if CERTS is None:
            self.skipTest("certtool is not installed")
        self.workdir = tempfile.mkdtemp(prefix="tokenserver-test-")
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, script):
        self.server = TokenServer(self.workdir, script)
        return self.server

    def test_refresh_grant(self):
        server = self.start({"refresh_tokens": ["rt"], "expires_in": "120"})
        status, body = server.token(grant_type="refresh_token",
                                    refresh_token="rt")
        self.assertEqual(status, 200)
        self.assertTrue(body["access_token"].startswith("at-"))
        self.assertEqual(body["expires_in"], "120")
        self.assertEqual(body["token_type"], "Bearer")
        self.assertNotIn("refresh_token", body)
        record = server.records()[-1]
        self.assertEqual(record["path"], "/token")
        self.assertEqual(record["form"]["refresh_token"], "rt")
        self.assertEqual(record["status"], 200)

    def test_unknown_refresh_token(self):
        server = self.start({"refresh_tokens": ["rt"]})
        status, body = server.token(grant_type="refresh_token",
                                    refresh_token="other")
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))

    def test_client_checks(self):
        server = self.start({"refresh_tokens": ["rt"], "client_secret": "cs"})
        status, body = server.token(grant_type="refresh_token",
                                    refresh_token="rt")
        self.assertEqual((status, body["error"]), (401, "invalid_client"))
        status, body = server.token(grant_type="refresh_token",
                                    refresh_token="rt", client_secret="cs",
                                    client_id="other")
        self.assertEqual((status, body["error"]), (401, "invalid_client"))
        status, _ = server.token(grant_type="refresh_token",
                                 refresh_token="rt", client_secret="cs")
        self.assertEqual(status, 200)
        status, body = server.token(grant_type="password", client_secret="cs")
        self.assertEqual(body["error"], "unsupported_grant_type")

    def test_rotation_revokes(self):
        server = self.start({"refresh_tokens": ["rt"], "rotate": True,
                             "expires_in": None})
        status, body = server.token(grant_type="refresh_token",
                                    refresh_token="rt")
        self.assertEqual(status, 200)
        self.assertNotIn("expires_in", body)
        new = body["refresh_token"]
        status, _ = server.token(grant_type="refresh_token",
                                 refresh_token="rt")
        self.assertEqual(status, 400)
        status, body = server.token(grant_type="refresh_token",
                                    refresh_token=new)
        self.assertEqual(status, 200)
        self.assertNotEqual(body["refresh_token"], new)

    def test_canned_answers_in_order_and_reload(self):
        server = self.start({"refresh_tokens": ["rt"], "responses": {"token": [
            {"status": 503, "body": "down"},
            {"status": 400, "json": {"error": "invalid_request"}}]}})
        self.assertEqual(server.token(grant_type="refresh_token",
                                      refresh_token="rt"), (503, "down"))
        self.assertEqual(server.token(grant_type="refresh_token",
                                      refresh_token="rt")[1]["error"],
                         "invalid_request")
        self.assertEqual(server.token(grant_type="refresh_token",
                                      refresh_token="rt")[0], 200)
        server.set_script({"responses": {"token": [{"status": 502}]}})
        self.assertEqual(server.token(grant_type="refresh_token")[0], 502)

    def test_delay_then_normal(self):
        server = self.start({"refresh_tokens": ["rt"],
                             "responses": {"token": [{"delay": 0.5}]}})
        start = time.monotonic()
        status, _ = server.token(grant_type="refresh_token", refresh_token="rt")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.5)

    def authorize(self, server, redirect="http://127.0.0.1:9/",
                  challenge=None, **extra):
        query = {"response_type": "code", "client_id": "test-client",
                 "redirect_uri": redirect, "state": "st",
                 "code_challenge": challenge or s256("v" * 43),
                 "code_challenge_method": "S256"}
        query.update(extra)
        return server.request("GET", "/authorize?" +
                              urllib.parse.urlencode(query))

    def test_authorization_code_with_pkce(self):
        server = self.start({})
        status, _, location = self.authorize(server)
        self.assertEqual(status, 302)
        url = urllib.parse.urlsplit(location)
        self.assertEqual(url.netloc, "127.0.0.1:9")
        params = dict(urllib.parse.parse_qsl(url.query))
        self.assertEqual(params["state"], "st")
        bad = server.token(grant_type="authorization_code", code=params["code"],
                           redirect_uri="http://127.0.0.1:9/",
                           code_verifier="w" * 43)
        self.assertEqual(bad[1]["error_description"],
                         "PKCE verification failed.")
        _, _, location = self.authorize(server)
        code = dict(urllib.parse.parse_qsl(
            urllib.parse.urlsplit(location).query))["code"]
        status, body = server.token(grant_type="authorization_code", code=code,
                                    redirect_uri="http://127.0.0.1:9/",
                                    code_verifier="v" * 43)
        self.assertEqual(status, 200)
        self.assertIn("refresh_token", body)
        status, body = server.token(grant_type="refresh_token",
                                    refresh_token=body["refresh_token"])
        self.assertEqual(status, 200)
        again = server.token(grant_type="authorization_code", code=code,
                             redirect_uri="http://127.0.0.1:9/",
                             code_verifier="v" * 43)
        self.assertEqual(again[1]["error"], "invalid_grant")

    def test_authorize_refuses_bad_requests(self):
        server = self.start({})
        status, body, _ = self.authorize(server, redirect="https://evil.test/")
        self.assertEqual(status, 400)
        self.assertIn("loopback", body)
        status, body, _ = self.authorize(server, code_challenge_method="plain")
        self.assertEqual(status, 400)
        self.assertIn("S256", body)

    def test_authorize_scripted_error_and_state(self):
        server = self.start({"authorize": {"error": "access_denied",
                                           "state": "forged"}})
        _, _, location = self.authorize(server)
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        self.assertEqual(params["error"], "access_denied")
        self.assertEqual(params["state"], "forged")
        self.assertNotIn("code", params)

    def device_code(self, server):
        status, body, _ = server.request("POST", "/device",
                                         {"client_id": "test-client",
                                          "scope": "s"})
        self.assertEqual(status, 200)
        return body

    def test_device_flow(self):
        server = self.start({"device": {"style": "google", "interval": 2,
                                        "sequence": ["authorization_pending",
                                                     "slow_down"]}})
        body = self.device_code(server)
        self.assertIn("verification_url", body)
        self.assertEqual(body["interval"], 2)
        grant = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                 "device_code": body["device_code"]}
        self.assertEqual(server.token(**grant)[1]["error"],
                         "authorization_pending")
        self.assertEqual(server.token(**grant)[1]["error"], "slow_down")
        status, tokens = server.token(**grant)
        self.assertEqual(status, 200)
        self.assertIn("refresh_token", tokens)
        self.assertEqual(server.token(**grant)[0], 400)

    def test_device_flow_denied_stays_denied(self):
        server = self.start({"device": {"sequence": ["access_denied"]}})
        body = self.device_code(server)
        self.assertIn("verification_uri", body)
        self.assertIn("verification_uri_complete", body)
        grant = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                 "device_code": body["device_code"]}
        for _ in range(2):
            self.assertEqual(server.token(**grant)[1]["error"], "access_denied")

    def test_unknown_path(self):
        server = self.start({})
        self.assertEqual(server.request("GET", "/nothing")[0], 404)
        self.assertEqual(server.request("POST", "/nothing", {})[0], 404)
        self.assertEqual([r["status"] for r in server.records()], [404, 404])


if __name__ == "__main__":
    unittest.main()
