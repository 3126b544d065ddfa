#!/usr/bin/python3
"""Example sensor application: sends a reading to the collector node every
second (one-way messages through this node's kgr daemon; docs/api.md).

usage: sensor.py --socket STATE_DIR/app.sock --collector N_ID
                 [--interval S] [--count N]

A reading the daemon could not deliver (broker or key server away, the
collector's daemon restarting, no collector running) is sent again until it
is accepted, so none is skipped; if the daemon itself restarts, the sensor
connects again. Key renewals need nothing from the application."""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "../clients/python"))
import kgr_app  # noqa: E402


def connect(path):
    while True:
        try:
            return kgr_app.connect(path, name="sensor", timeout=30)
        except (OSError, kgr_app.KgrError) as e:
            print(f"sensor: daemon not reachable ({e}); retrying", flush=True)
            time.sleep(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--collector", required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--count", type=int, default=0, help="0: forever")
    a = p.parse_args()
    app = connect(a.socket)
    seq = 0
    while a.count == 0 or seq < a.count:
        reading = {"seq": seq, "t": round(time.time(), 3),
                   "celsius": round(20 + random.uniform(-2, 2), 2)}
        try:
            app.send(a.collector, json.dumps(reading).encode(), timeout_ms=5000)
            seq += 1
            time.sleep(a.interval)
        except kgr_app.KgrError as e:
            print(f"sensor: reading {seq} not delivered ({e}); again", flush=True)
            if e.code == "UNAVAILABLE" and "closed" in e.message:
                app = connect(a.socket)
            time.sleep(min(a.interval, 0.5))
        except OSError as e:
            print(f"sensor: daemon connection lost ({e})", flush=True)
            app = connect(a.socket)
    print(f"sensor: {seq} readings sent", flush=True)


if __name__ == "__main__":
    main()
