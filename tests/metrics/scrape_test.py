#!/usr/bin/env python3
"""Scrapes a real rejoin-broker's --metrics endpoint over HTTP and parses it
with the Prometheus client library's text parser, before and after traffic
through a real echo server: every family is well-formed, has the type it
claims, and the counters move as the calls flow.

Usage: scrape_test.py BROKER ECHO_SERVER ECHO_CLIENT
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BROKER, ECHO_SERVER, ECHO_CLIENT = sys.argv[1:4]


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
        self.start(BROKER, "--endpoint", self.endpoint, "--metrics",
                   self.metrics, "--log-level", "warn")

    def tearDown(self):
        for p, log in reversed(self.procs):
            p.kill()
            p.wait()
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, *args):
        log = open(os.path.join(self.dir, f"p{len(self.procs)}.log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((p, log))
        return p

    def test_text_format_parses_and_counters_follow_traffic(self):
        ctype, before_text = scrape(self.metrics)
        self.assertIn("text/plain", ctype)
        before = families(before_text)
        # prometheus_client strips "_total" from counter family names.
        self.assertEqual(before["rejoin_broker_requests"].type, "counter")
        self.assertEqual(before["rejoin_broker_sessions"].type, "gauge")
        self.assertEqual(value(before, "rejoin_broker_requests"), 0)
        self.assertGreater(value(before, "rejoin_broker_resident_memory_bytes"),
                           0)

        self.start(ECHO_SERVER, "--endpoint", self.endpoint, "--server-id",
                   "echo-metrics", "--journal",
                   os.path.join(self.dir, "server"))
        calls = 300
        client = subprocess.run(
            [ECHO_CLIENT, "--endpoint", self.endpoint, "--count",
             str(calls), "--window", "8"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(client.returncode, 0, client.stdout.decode())

        after = families(scrape(self.metrics)[1])
        self.assertGreaterEqual(value(after, "rejoin_broker_requests"), calls)
        self.assertGreaterEqual(value(after, "rejoin_broker_responses"), calls)
        self.assertEqual(value(after, "rejoin_broker_servers"), 1)
        self.assertEqual(
            value(after, "rejoin_broker_malformed", **{"class": "undecodable"}),
            0)
        # Besides rejoin's own, only the HTTP exporter's families.
        for f in after.values():
            self.assertTrue(f.name.startswith(("rejoin_broker_", "exposer_")),
                            f.name)
            self.assertTrue(f.documentation, f.name)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
