#!/usr/bin/python3
"""driver.py: the measurements of bench/run (which sets up everything this
needs: the servers, the two network namespaces with the delayed link, the
sink and the reference client) and the table it prints.

Every client run goes into the network namespace of the case: the
server's own (RTT 0, loopback) or the client one behind the delayed link,
and through runstat (bench/runstat.c): wall time around fork and wait,
CPU time (user + system) and peak RSS from wait4()'s rusage for that one
process.
postbote and msmtp run alternately, the same number of times, after one
unmeasured run each per case; the table shows medians.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import time

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)

MB = 1000 * 1000
CLIENTS = ("postbote", "msmtp")


class Result:
    def __init__(self, wall, cpu, rss_kb, status, output):
        self.wall, self.cpu, self.rss_kb = wall, cpu, rss_kb
        self.status, self.output = status, output


class Runner:
    """Runs a command in one of the two network namespaces through
    runstat (see bench/runstat.c), which measures it."""

    def __init__(self, work, runstat, namespaces):
        self.work = work
        self.runstat = runstat
        self.ns_fd = {name: os.open("/run/netns/" + ns, os.O_RDONLY)
                      for name, ns in namespaces.items()}
        self.log = os.path.join(work, "client.out")
        self.stat = os.path.join(work, "runstat.out")

    def run(self, argv, where, stdin=None):
        """Run argv in namespace `where` with stdin from a file."""
        ns = self.ns_fd[where]
        pid = os.fork()
        if pid == 0:
            try:
                if libc.setns(ns, CLONE_NEWNET) != 0:
                    os._exit(126)
                out = os.open(self.stat, os.O_WRONLY | os.O_CREAT |
                              os.O_TRUNC, 0o600)
                os.dup2(out, 1)
                os.execv(self.runstat, [self.runstat, self.log,
                                        stdin or os.devnull] + argv)
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        with open(self.log, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        try:
            with open(self.stat) as f:
                wall, cpu, rss, code = f.read().split()
        except (OSError, ValueError):
            return Result(0.0, 0.0, 0, 255, "runstat failed (status %d)\n%s"
                          % (status, output))
        return Result(float(wall), float(cpu), int(rss), int(code), output)


class Bench:
    def __init__(self, args):
        self.args = args
        self.env = read_env(args.env)
        self.work = args.work
        self.runner = Runner(args.work, args.runstat,
                             {"near": args.srv_ns, "far": args.cli_ns})
        self.results = {}
        self.failures = []
        self.write_configs()
        self.write_messages()

    # --- setup -----------------------------------------------------------

    def write_configs(self):
        e = self.env
        common = [
            "defaults",
            "tls on",
            "tls_trust_file " + e["CA_FILE"],
            "auth plain",
            "user " + e["SMTP_USER"],
            "password " + e["SMTP_PASSWORD"],
            "from " + e["SMTP_USER"],
            "timeout 120",
            "",
        ]
        accounts = [
            ("submission", e["SUBMISSION_PORT"], "on"),
            ("smtps", e["SMTPS_PORT"], "off"),
            ("sink", str(self.args.sink_smtp), "on"),
        ]
        body = []
        for name, port, starttls in accounts:
            body += ["account " + name, "host 127.0.0.1", "port " + port,
                     "tls_starttls " + starttls, ""]
        self.conf = {}
        for client, extra in (("msmtp", []), ("postbote", ["queue off"])):
            path = os.path.join(self.work, client + ".conf")
            write_private(path, "\n".join(common[:-1] + extra + [""] + body))
            self.conf[client] = path
        # The batch: one account name, first unreachable (every message is
        # queued), then the real server (postbote -q sends them all).
        self.queue_dir = os.path.join(self.work, "queue")
        for tag, port in (("fill", "1"), ("flush", e["SUBMISSION_PORT"])):
            path = os.path.join(self.work, "batch-%s.conf" % tag)
            write_private(path, "\n".join(common[:-1] + [
                "queue on", "queue_dir " + self.queue_dir, "",
                "account submission", "host 127.0.0.1", "port " + port,
                "tls_starttls on", ""]))
            self.conf["batch-" + tag] = path

    def write_messages(self):
        self.msg = {"small": os.path.join(self.work, "small.eml")}
        sender = self.env["SMTP_USER"]
        text = ("Dear all,\n\nthe minutes of today's meeting are below; please "
                "send corrections by Friday.\n\n" +
                "".join("%d. Item %d was discussed and agreed on.\n" % (i, i)
                        for i in range(1, 21)) +
                "\nRegards,\nthe benchmark\n")
        with open(self.msg["small"], "w") as f:
            f.write("From: Bench <%s>\nTo: list@example.com\n"
                    "Subject: minutes\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
                    "Message-ID: <bench@example.org>\n\n%s" % (sender, text))
        for mb in self.args.sizes:
            path = os.path.join(self.work, "m%d.eml" % mb)
            write_big(path, mb * MB, sender)
            self.msg[mb] = path

    # --- running ---------------------------------------------------------

    def argv(self, client, account, rcpts, extra=()):
        if client == "postbote":
            return [self.args.postbote, "-C", self.conf["postbote"],
                    "--account", account] + list(extra) + ["--"] + rcpts
        return [self.args.msmtp, "-C", self.conf["msmtp"], "-a", account] + \
            list(extra) + ["--"] + rcpts

    def check(self, what, res):
        if res.status != 0:
            self.failures.append("%s: exit %d\n%s" % (what, res.status,
                                                     res.output[-2000:]))
            print("bench: %s failed (exit %d)" % (what, res.status),
                  file=sys.stderr)
            return False
        return True

    def compare(self, key, account, rcpts, where, message, reps, clients=CLIENTS):
        """Run the clients alternately; store the lists of results."""
        got = {c: [] for c in clients}
        for c in clients:   # one unmeasured run each
            self.check("%s %s (warm-up)" % (key, c), self.runner.run(
                self.argv(c, account, rcpts), where, message))
        for _ in range(reps):
            for c in clients:
                # Postfix hands the last message to discard(8) after its
                # 250, and the page cache writes back the last large
                # spool and queue files: neither may overlap the next run.
                self.wait_server_idle()
                if message != self.msg["small"]:
                    os.sync()
                res = self.runner.run(self.argv(c, account, rcpts), where,
                                      message)
                if self.check("%s %s" % (key, c), res):
                    got[c].append(res)
        self.results[key] = {c: [(r.wall, r.cpu, r.rss_kb) for r in got[c]]
                             for c in clients}
        progress("%s: %s" % (key, ", ".join(
            "%s %.1f ms" % (c, 1000 * median([r.wall for r in got[c]]))
            for c in clients)))

    def wait_server_idle(self, timeout=300):
        """Wait until Postfix has no message left in its queue."""
        queue = os.path.join(self.env["SERVER_DIR"], "postfix", "queue")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = 0
            for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
                for _, _, files in os.walk(os.path.join(queue, sub)):
                    busy += len(files)
            if busy == 0:
                return
            time.sleep(0.02)

    def latency(self):
        reps = self.args.reps
        for rtt, where in ((0, "near"), (self.args.rtt, "far")):
            for mode, account in (("starttls", "submission"),
                                  ("tls", "smtps")):
                for n in (1, 10, 100):
                    rcpts = ["rcpt%03d@example.com" % i for i in range(n)]
                    self.compare("wall/%s/%d/%d" % (mode, n, rtt), account,
                                 rcpts, where, self.msg["small"], reps)
                    self.wait_server_idle()

    def large(self):
        for mb in self.args.sizes:
            reps = self.args.reps if mb <= 10 else self.args.big_reps
            self.compare("large/%d" % mb, "submission",
                         ["big@example.com"], "near", self.msg[mb], reps)
            self.wait_server_idle()

    def throughput(self):
        """100 MB (the largest size) to the discard sink: postbote, with
        -v for the time stamps of the DATA phase, against the raw TLS
        reference. msmtp is left out: its one TLS record per line makes
        the Python sink, not the client, the bottleneck (minutes)."""
        mb = max(self.args.sizes)
        path = self.msg[mb]
        size = os.path.getsize(path)
        rows = {"raw": [], "postbote": [], "postbote-data": []}
        raw = [self.args.tlsblast, str(self.args.sink_raw),
               self.env["CA_FILE"], path]
        pb = self.argv("postbote", "sink", ["big@example.com"], ["-v"])
        self.wait_server_idle()
        self.runner.run(raw, "near")
        self.runner.run(pb, "near", path)
        for _ in range(self.args.big_reps):
            os.sync()
            res = self.runner.run(raw, "near")
            if self.check("raw TLS to the sink", res):
                rows["raw"].append(res.wall)
            os.sync()
            res = self.runner.run(pb, "near", path)
            if self.check("postbote to the sink", res):
                rows["postbote"].append(res.wall)
                phase = data_phase(res.output)
                if phase:
                    rows["postbote-data"].append(phase)
        self.results["sink"] = {"size": size, **rows}
        progress("sink %d MB: raw %.2f s, postbote %.2f s (DATA phase %s s)" % (
            mb, median(rows["raw"]), median(rows["postbote"]),
            "%.2f" % median(rows["postbote-data"]) if rows["postbote-data"]
            else "?"))

    def writes(self):
        """Socket send calls for the 1 MB message, counted by strace."""
        strace = shutil.which("strace")
        if not strace or 1 not in self.msg:
            return
        counts = {}
        for c in CLIENTS:
            log = os.path.join(self.work, "strace-%s.txt" % c)
            argv = [strace, "-f", "-qq", "-o", log, "-e",
                    "trace=write,writev,sendto,sendmsg,send"] + \
                self.argv(c, "submission", ["big@example.com"])
            res = self.runner.run(argv, "near", self.msg[1])
            if not self.check("strace %s" % c, res):
                continue
            counts[c] = count_socket_writes(log)
        self.results["writes"] = counts
        progress("send calls for 1 MB: %s" % counts)

    def batch(self):
        n = self.args.batch
        rcpt = ["batch@example.com"]
        totals = {}
        for c in CLIENTS:
            self.wait_server_idle()
            wall = cpu = 0.0
            for _ in range(n):
                res = self.runner.run(self.argv(c, "submission", rcpt), "near",
                                      self.msg["small"])
                self.check("separate %s" % c, res)
                wall += res.wall
                cpu += res.cpu
            totals[c] = (wall, cpu)
            progress("%d separate %s: %.1f s" % (n, c, totals[c][0]))
        # Fill the queue (unmeasured), then one flush.
        self.wait_server_idle()
        shutil.rmtree(self.queue_dir, ignore_errors=True)
        fill = [self.args.postbote, "-C", self.conf["batch-fill"],
                "--account", "submission", "--"] + rcpt
        for _ in range(n):
            self.check("queueing", self.runner.run(fill, "near",
                                                   self.msg["small"]))
        queued = count_queued(self.queue_dir)
        flush = [self.args.postbote, "-C", self.conf["batch-flush"], "-q"]
        res = self.runner.run(flush, "near")
        self.check("postbote -q", res)
        left = count_queued(self.queue_dir)
        totals["batch"] = (res.wall, res.cpu)
        self.results["batch"] = {"n": n, "queued": queued, "left": left,
                                 **{k: list(v) for k, v in totals.items()}}
        progress("batch of %d (%d queued, %d left): %.2f s" % (
            n, queued, left, res.wall))

    # --- the table -------------------------------------------------------

    def table(self):
        a = self.args
        rtt_s = a.rtt / 1000.0
        out = []
        out.append("## postbote vs msmtp\n")
        out.append("%s UTC; %s; %d CPUs (%s); Linux %s; postbote %s; %s; "
                   "%d measured runs per client and case (medians)." % (
                       datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"),
                       platform.node() or "?", os.cpu_count(), cpu_model(),
                       platform.release(), a.postbote_version,
                       a.msmtp_version, a.reps))
        out.append("")
        out.append("### Wall time per message (Postfix + Dovecot, AUTH PLAIN)\n")
        out.append("| case | RTT | postbote ms | msmtp ms | postbote/msmtp "
                   "| postbote RTTs (net) | msmtp RTTs (net) | budget |")
        out.append("|---|---|---:|---:|---:|---:|---:|---|")
        for mode, label, budget in (("starttls", "STARTTLS (587)", 9),
                                    ("tls", "implicit TLS (465)", 7)):
            for rtt in (0, a.rtt):
                for n in (1, 10, 100):
                    r = self.results.get("wall/%s/%d/%d" % (mode, n, rtt))
                    if not r:
                        continue
                    pb, ms = med(r["postbote"], 0), med(r["msmtp"], 0)
                    row = ["%s, %d rcpt" % (label, n), "%d ms" % rtt,
                           ms_text(pb), ms_text(ms), ratio(pb, ms)]
                    if rtt:
                        r0 = self.results.get("wall/%s/%d/0" % (mode, n), {})
                        pb0 = med(r0.get("postbote", []), 0)
                        ms0 = med(r0.get("msmtp", []), 0)
                        net = None if pb is None or pb0 is None else \
                            (pb - pb0) / rtt_s
                        row += [rtts(pb, rtt_s, pb0), rtts(ms, rtt_s, ms0),
                                "<= %d: %s" % (budget, verdict(
                                    net is not None and
                                    round(net) <= budget))]
                    else:
                        row += ["", "", ""]
                    out.append("| " + " | ".join(row) + " |")
        out.append("")
        out.append("RTTs = median wall time at %d ms / %d ms, process start "
                   "and the server's own time included; (net) = (wall at %d ms "
                   "- wall at 0) / %d ms, the round trips alone. A budget is "
                   "met when the net count rounds to at most the budget." % (
                       a.rtt, a.rtt, a.rtt, a.rtt))
        out.append("")
        out.append("### CPU time per message (user + system, RTT 0)\n")
        out.append("| case | postbote ms | msmtp ms | postbote/msmtp | budget |")
        out.append("|---|---:|---:|---:|---|")
        for mode, label in (("starttls", "STARTTLS"), ("tls", "implicit TLS")):
            for n in (1, 10, 100):
                r = self.results.get("wall/%s/%d/0" % (mode, n))
                if not r:
                    continue
                pb, ms = med(r["postbote"], 1), med(r["msmtp"], 1)
                out.append("| %s, %d rcpt | %s | %s | %s | < msmtp: %s |" % (
                    label, n, ms_text(pb, 2), ms_text(ms, 2), ratio(pb, ms),
                    verdict(pb is not None and ms is not None and pb < ms)))
        b = self.results.get("batch")
        if b:
            pb, ms = b["postbote"][1] / b["n"], b["msmtp"][1] / b["n"]
            out.append("| STARTTLS, 1 rcpt, mean of the %d separate runs "
                       "below | %s | %s | %s | < msmtp: %s |" % (
                           b["n"], ms_text(pb, 2), ms_text(ms, 2),
                           ratio(pb, ms), verdict(pb < ms)))
        out.append("")
        out.append("### Large messages (STARTTLS, RTT 0, to Postfix)\n")
        out.append("| size | client | wall s | MB/s | CPU s | peak RSS MB |")
        out.append("|---|---|---:|---:|---:|---:|")
        for mb in a.sizes:
            r = self.results.get("large/%d" % mb)
            if not r:
                continue
            size = os.path.getsize(self.msg[mb]) / MB
            for c in CLIENTS:
                wall, cpu, rss = (med(r[c], i) for i in range(3))
                out.append("| %d MB | %s | %s | %s | %s | %s |" % (
                    mb, c, num(wall, 2), num(size / wall if wall else None, 0),
                    num(cpu, 2), num(rss / 1024 if rss else None, 1)))
        for mb in a.sizes:
            r = self.results.get("large/%d" % mb)
            if r:
                pb, ms = med(r["postbote"], 0), med(r["msmtp"], 0)
                out.append("")
                out.append("%d MB: postbote/msmtp wall %s, CPU %s, RSS %s." % (
                    mb, ratio(pb, ms),
                    ratio(med(r["postbote"], 1), med(r["msmtp"], 1)),
                    ratio(med(r["postbote"], 2), med(r["msmtp"], 2))))
        big = max(a.sizes)
        r = self.results.get("large/%d" % big)
        if r:
            rss = med(r["postbote"], 2)
            out.append("")
            out.append("Budget: %d MB sent with peak RSS < 8 MB: %s MB, %s." % (
                big, num(rss / 1024 if rss else None, 1),
                verdict(rss is not None and rss < 8 * 1024)))
        s = self.results.get("sink")
        if s:
            size = s["size"] / MB
            raw = median(s["raw"])
            pb = median(s["postbote"])
            data = median(s["postbote-data"]) if s["postbote-data"] else None
            out.append("")
            out.append("### Throughput against raw TLS (%d MB, discard sink "
                       "on loopback)\n" % big)
            out.append("| sender | s | MB/s | of raw |")
            out.append("|---|---:|---:|---:|")
            out.append("| raw GnuTLS records (reference) | %s | %s | 100%% |" % (
                num(raw, 2), num(size / raw, 0)))
            out.append("| postbote, whole run (spool + send) | %s | %s | %s |" % (
                num(pb, 2), num(size / pb, 0), pct(raw / pb)))
            if data:
                out.append("| postbote, DATA phase (354 to 250) | %s | %s | "
                           "%s |" % (num(data, 2), num(size / data, 0),
                                     pct(raw / data)))
            out.append("")
            out.append("Budget (the message is sent within 20%% of raw TLS "
                       "throughput): DATA phase %s. The whole run also "
                       "copies standard input into the spool file before "
                       "connecting (a message once read is never lost): "
                       "%s of raw." % (
                           verdict(data is not None and raw / data >= 0.8),
                           pct(raw / pb)))
        w = self.results.get("writes")
        if w:
            out.append("")
            out.append("### Socket send calls for the 1 MB message (strace)\n")
            out.append("| client | send calls | bytes per call |")
            out.append("|---|---:|---:|")
            for c in CLIENTS:
                if c in w:
                    calls, nbytes = w[c]
                    out.append("| %s | %d | %s |" % (
                        c, calls, num(nbytes / calls if calls else None, 0)))
        b = self.results.get("batch")
        if b:
            n = b["n"]
            pb, ms, batch = b["postbote"], b["msmtp"], b["batch"]
            out.append("")
            out.append("### %d messages (STARTTLS, RTT 0)\n" % n)
            out.append("| how | wall s | CPU s | per message ms |")
            out.append("|---|---:|---:|---:|")
            for label, (wall, cpu) in (
                    ("msmtp, separate invocations", ms),
                    ("postbote, separate invocations", pb),
                    ("postbote -q, one batch flush", batch)):
                out.append("| %s | %s | %s | %s |" % (
                    label, num(wall, 2), num(cpu, 2),
                    num(1000 * wall / n, 2)))
            out.append("")
            out.append("Batch / postbote separate: %s; batch / msmtp separate: "
                       "%s; %d queued, %d left after the flush." % (
                           ratio(batch[0], pb[0]), ratio(batch[0], ms[0]),
                           b["queued"], b["left"]))
        if self.failures:
            out.append("")
            out.append("**%d runs failed**; see bench output." %
                       len(self.failures))
        return "\n".join(out) + "\n"


# --- helpers ---------------------------------------------------------------

def progress(text):
    print("bench: " + text, file=sys.stderr, flush=True)


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Z0-9_]+)=(.*)$", line.strip())
            if m:
                value = m.group(2)
                if value.startswith("'") and value.endswith("'"):
                    value = value[1:-1].replace("'\\''", "'")
                env[m.group(1)] = value
    return env


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_big(path, size, sender):
    """A message of `size` bytes: base64-like lines of 76 characters, a few
    starting with a dot (dot-stuffing has to happen), LF line ends as a
    local program hands them over."""
    rnd = random.Random(size)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lines = [bytes(rnd.choice(alphabet) for _ in range(76)) + b"\n"
             for _ in range(64)]
    lines[7] = b"." + lines[7][1:]
    block = b"".join(lines)
    head = ("From: %s\nTo: big@example.com\nSubject: %d bytes\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
            "Message-ID: <big%d@example.org>\nMIME-Version: 1.0\n"
            "Content-Type: application/octet-stream\n"
            "Content-Transfer-Encoding: base64\n\n" % (sender, size, size)
            ).encode()
    with open(path, "wb") as f:
        f.write(head)
        left = size - len(head)
        while left >= len(block):
            f.write(block)
            left -= len(block)
        f.write(block[:left - 1] + b"\n" if left > 0 else b"")


def data_phase(verbose):
    """Seconds from the 354 reply to the 250 after the final dot, from the
    time stamps of postbote -v."""
    t354 = t250 = None
    for line in verbose.splitlines():
        m = re.match(r"^\[\s*([0-9.]+)\] <-- (\d{3})", line)
        if not m:
            continue
        if m.group(2) == "354":
            t354 = float(m.group(1))
        elif t354 is not None and m.group(2) == "250":
            t250 = float(m.group(1))
            break
    if t354 is None or t250 is None:
        return None
    return t250 - t354


def count_socket_writes(log):
    """(calls, bytes) of send calls on sockets in an strace log: sendmsg,
    sendto, send, and write/writev to a descriptor strace shows as a
    socket is not told apart, so write/writev count only when no send
    family call appears (a client that writes to its socket with write)."""
    send_calls = send_bytes = write_calls = write_bytes = 0
    for line in open(log, errors="replace"):
        m = re.search(r"\b(sendmsg|sendto|send|writev|write)\((\d+),.*\)\s+=\s+(\d+)",
                      line)
        if not m:
            continue
        if m.group(1).startswith("send"):
            send_calls += 1
            send_bytes += int(m.group(3))
        elif int(m.group(2)) > 2:
            write_calls += 1
            write_bytes += int(m.group(3))
    if send_calls:
        return send_calls, send_bytes
    return write_calls, write_bytes


def count_queued(queue_dir):
    try:
        return sum(1 for f in os.listdir(queue_dir) if f.endswith(".env"))
    except OSError:
        return 0


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def median(values):
    return statistics.median(values) if values else None


def med(rows, index):
    return median([row[index] for row in rows])


def num(value, digits):
    return "n/a" if value is None else "%.*f" % (digits, value)


def ms_text(seconds, digits=1):
    return "n/a" if seconds is None else "%.*f" % (digits, seconds * 1000)


def ratio(a, b):
    return "n/a" if a is None or not b else "%.2f" % (a / b)


def pct(x):
    return "%.0f%%" % (100 * x)


def rtts(seconds, rtt, at_zero=None):
    if seconds is None:
        return "n/a"
    if at_zero is None:
        return "%.1f" % (seconds / rtt)
    return "%.1f (%.1f)" % (seconds / rtt, (seconds - at_zero) / rtt)


def verdict(ok):
    return "met" if ok else "**missed**"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--env", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--postbote", required=True)
    p.add_argument("--msmtp", required=True)
    p.add_argument("--tlsblast", required=True)
    p.add_argument("--runstat", required=True)
    p.add_argument("--cli-ns", required=True)
    p.add_argument("--srv-ns", required=True)
    p.add_argument("--sink-smtp", type=int, required=True)
    p.add_argument("--sink-raw", type=int, required=True)
    p.add_argument("--rtt", type=int, default=50)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--big-reps", type=int, default=3)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--sizes", default="1,100",
                   help="large message sizes in MB, comma-separated")
    p.add_argument("--only", default="latency,large,throughput,writes,batch")
    p.add_argument("--postbote-version", default="?")
    p.add_argument("--msmtp-version", default="?")
    p.add_argument("--json")
    a = p.parse_args()
    a.sizes = sorted(int(x) for x in a.sizes.split(","))
    bench = Bench(a)
    for step in a.only.split(","):
        getattr(bench, step)()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": bench.results, "failures": bench.failures},
                      f, indent=1)
    sys.stdout.write(bench.table())
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
