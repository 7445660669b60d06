#!/usr/bin/env python3
"""What an operator sees of a real rejoin-broker while calls flow through a
real echo server: its --metrics endpoint scraped over HTTP and parsed with
the Prometheus client library's text parser (every family well-formed, of
the type it claims, counters moving with the traffic); `rejoin-ctl broker
status` against its --admin endpoint; and with --log-format json, every log
line a JSON object, recovery decisions among them with their fields.

Usage: scrape_test.py BROKER ECHO_SERVER ECHO_CLIENT REJOIN_CTL
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import json
import unittest
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BROKER, ECHO_SERVER, ECHO_CLIENT, REJOIN_CTL = sys.argv[1:5]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(address, deadline=10.0):
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/metrics",
                                        timeout=2) as r:
                ctype = r.headers.get("Content-Type", "")
                return ctype, r.read().decode("utf-8")
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, family, sample_name=None, **labels):
    f = fams[family]
    for s in f.samples:
        if (sample_name is None or s.name == sample_name) and all(
                s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError(f"{family}{labels}")


class BrokerMetrics(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rejoin-metrics-")
        self.procs = []
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.metrics = f"127.0.0.1:{free_port()}"
        self.admin = f"tcp://127.0.0.1:{free_port()}"

    def start_broker(self, *extra):
        return self.start(BROKER, "--endpoint", self.endpoint, "--metrics",
                          self.metrics, "--admin", self.admin, *extra)

    def run_calls(self, calls, window=8):
        self.start(ECHO_SERVER, "--endpoint", self.endpoint, "--server-id",
                   "echo-metrics", "--journal",
                   os.path.join(self.dir, "server"))
        client = subprocess.run(
            [ECHO_CLIENT, "--endpoint", self.endpoint, "--count",
             str(calls), "--window", str(window)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(client.returncode, 0, client.stdout.decode())

    def status(self):
        out = subprocess.run([REJOIN_CTL, "broker", "status", self.admin,
                              "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout.decode())
        return json.loads(out.stdout)

    def tearDown(self):
        for p, log in reversed(self.procs):
            p.kill()
            p.wait()
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_path(self, index):
        return os.path.join(self.dir, f"p{index}.log")

    def start(self, *args):
        log = open(self.log_path(len(self.procs)), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((p, log))
        return p

    def test_text_format_parses_and_counters_follow_traffic(self):
        self.start_broker("--log-level", "warn")
        ctype, before_text = scrape(self.metrics)
        self.assertIn("text/plain", ctype)
        before = families(before_text)
        # prometheus_client strips "_total" from counter family names.
        self.assertEqual(before["rejoin_broker_requests"].type, "counter")
        self.assertEqual(before["rejoin_broker_sessions"].type, "gauge")
        self.assertEqual(value(before, "rejoin_broker_requests"), 0)
        self.assertGreater(value(before, "rejoin_broker_resident_memory_bytes"),
                           0)

        calls = 300
        self.run_calls(calls)

        after = families(scrape(self.metrics)[1])
        self.assertGreaterEqual(value(after, "rejoin_broker_requests"), calls)
        self.assertGreaterEqual(value(after, "rejoin_broker_responses"), calls)
        self.assertEqual(value(after, "rejoin_broker_servers"), 1)
        self.assertEqual(
            value(after, "rejoin_broker_malformed", **{"class": "undecodable"}),
            0)
        self.assertEqual(value(after, "rejoin_broker_service_servers",
                               service="echo"), 1)
        self.assertGreaterEqual(value(after, "rejoin_broker_service_credit",
                                      service="echo"), 1)
        self.assertEqual(after["rejoin_broker_dispatch_to_answer_seconds"]
                         .type, "histogram")
        self.assertGreaterEqual(
            value(after, "rejoin_broker_dispatch_to_answer_seconds",
                  "rejoin_broker_dispatch_to_answer_seconds_count"), calls)
        self.assertEqual(value(after, "rejoin_broker_decisions",
                               action="resend_response"), 0)
        self.assertEqual(value(after, "rejoin_broker_errors_sent",
                               code="malformed"), 0)
        self.assertEqual(value(after, "rejoin_broker_answered_by_code",
                               code="in_doubt"), 0)
        # Besides rejoin's own, only the HTTP exporter's families.
        for f in after.values():
            self.assertTrue(f.name.startswith(("rejoin_broker_", "exposer_")),
                            f.name)
            self.assertTrue(f.documentation, f.name)


    def test_admin_status_names_services_servers_and_counters(self):
        self.start_broker("--log-level", "warn", "--grace-ms", "0")
        self.run_calls(200)
        st = self.status()
        self.assertEqual(st["endpoint"], self.endpoint)
        self.assertFalse(st["grace"]["active"])
        self.assertEqual(st["counters"]["requests"], 200)
        self.assertEqual([s["name"] for s in st["services"]], ["echo"])
        self.assertEqual(st["services"][0]["servers"], 1)
        [server] = st["servers"]
        self.assertEqual(server["id"], "echo-metrics")
        self.assertTrue(server["alive"])
        self.assertEqual(server["services"], ["echo"])
        self.assertIn("server", [c["role"] for c in st["connections"]])
        self.assertEqual(st["dispatch_to_answer"]["count"], 200)
        self.assertEqual(st["errors_sent_by_code"], {})
        self.assertEqual(st["answered_by_code"], {})
        # The human-readable form names the same things.
        text = subprocess.run([REJOIN_CTL, "broker", "status", self.admin],
                              stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(text.returncode, 0)
        self.assertIn(b"echo-metrics  alive", text.stdout)

    def test_no_admin_endpoint_is_a_clear_error(self):
        out = subprocess.run([REJOIN_CTL, "broker", "status",
                              f"tcp://127.0.0.1:{free_port()}",
                              "--timeout-ms", "200"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"no broker answered", out.stderr)

    def test_json_logs_carry_recovery_decisions(self):
        # Loss makes the broker probe unanswered operations and decide.
        self.start_broker("--log-format", "json", "--log-level", "info",
                          "--inject-loss", "0.2", "--seed", "7",
                          "--probe-ms", "20")
        self.run_calls(300, window=16)
        st = self.status()
        decided = sum(n for a, n in st["decisions"].items()
                      if a not in ("none", "wait"))
        self.assertGreater(decided, 0, st["decisions"])
        self.procs[0][0].terminate()
        self.procs[0][0].wait()
        events = []
        with open(self.log_path(0)) as f:
            for line in f:
                entry = json.loads(line)  # every line is one JSON object
                self.assertIn("time", entry)
                self.assertIn("level", entry)
                if entry.get("event") == "recovery":
                    events.append(entry)
        self.assertEqual(len(events), decided)
        for e in events:
            self.assertEqual(set(e) - {"time", "level"},
                             {"event", "session", "seq", "breakpoint",
                              "action", "actor", "source"})
            self.assertIn(e["actor"], ("client", "server"))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
