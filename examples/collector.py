#!/usr/bin/python3
"""Example collector application: prints the readings sensors send it
through this node's kgr daemon (docs/api.md), one line each:

    reading from 1a2b3c4d: seq=12 celsius=20.41 (key v3)

usage: collector.py --socket STATE_DIR/app.sock [--count N]

Connects again when the daemon restarts."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "../clients/python"))
import kgr_app  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--count", type=int, default=0, help="0: forever")
    a = p.parse_args()
    printed = 0
    while a.count == 0 or printed < a.count:
        try:
            with kgr_app.connect(a.socket, name="collector") as app:
                app.subscribe()
                print(f"collector: node {app.n_id} listening", flush=True)
                while a.count == 0 or printed < a.count:
                    ev = app.next_event()
                    if ev["event"] != "message":
                        print(f"collector: event {ev}", flush=True)
                        continue
                    r = json.loads(ev["data"])
                    print(f"reading from {ev['peer']}: seq={r['seq']} "
                          f"celsius={r['celsius']} (key v{ev['key_version']})",
                          flush=True)
                    printed += 1
        except (OSError, kgr_app.KgrError) as e:
            print(f"collector: daemon connection lost ({e}); again", flush=True)
            time.sleep(1)


if __name__ == "__main__":
    main()
