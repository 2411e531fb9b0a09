#!/usr/bin/env python3
"""Timing parity of sign-in: an unknown login and a known login with a wrong password must
cost the same. Interleaves N tries of each over one keep-alive HTTPS connection, and compares
the medians: the test fails when they differ by more than TOLERANCE of the larger one.

Without the dummy hash an unknown login would answer in about a millisecond and a known one
after a full Argon2id hash (tens of milliseconds): a difference of over 90 %, which this
check catches with a wide margin while leaving room for a noisy machine.

usage: timing.py PORT CA_FILE KNOWN_LOGIN UNKNOWN_LOGIN [N]
"""
import http.client
import json
import ssl
import statistics
import sys
import time

TOLERANCE = 0.25


def main():
    port, ca, known, unknown = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    times = {known: [], unknown: []}
    statuses = set()
    for i in range(2 * n + 4):
        login = known if i % 2 == 0 else unknown
        body = json.dumps({"login": login, "password": "not the password %d" % i})
        start = time.perf_counter()
        conn.request("POST", "/v1/auth/login", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        elapsed = time.perf_counter() - start
        statuses.add(resp.status)
        if i >= 4:  # the first tries warm the connection and the caches
            times[login].append(elapsed)
    mk, mu = statistics.median(times[known]), statistics.median(times[unknown])
    diff = abs(mk - mu) / max(mk, mu)
    print("known %.1f ms, unknown %.1f ms, difference %.1f %% (tolerance %d %%), statuses %s"
          % (mk * 1000, mu * 1000, diff * 100, TOLERANCE * 100, sorted(statuses)))
    if statuses != {401}:
        print("every try must be refused with 401")
        return 1
    return 0 if diff <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
