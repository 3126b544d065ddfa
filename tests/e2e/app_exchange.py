"""Two applications exchange messages through their daemons' API
(tests/e2e/app_api.sh): each sends N numbered messages to the other (every
`every`-th a request the other application answers), while both receive.
Checks that none is lost, duplicated or out of order within the pair.

usage: app_exchange.py SOCK_A SOCK_B N [every]"""
import faulthandler
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../clients/python"))
import kgr_app  # noqa: E402

sock_a, sock_b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
every = int(sys.argv[4]) if len(sys.argv) > 4 else 50
faulthandler.register(signal.SIGUSR1)
failures = []
stats = {}


def receiver(name, path, peer, ready, done_event):
    got, renewed = [], 0
    with kgr_app.connect(path, name=name + "-rx", timeout=90) as app:
        app.subscribe([peer])
        ready.set()
        last = time.monotonic()
        while len(got) < n:
            ev = app.next_event(timeout=5)
            if ev is None and time.monotonic() - last < 60:
                continue
            if ev is None:
                failures.append(f"{name}: nothing for 60 s after {len(got)}")
                break
            if ev["event"] == "key_renewed":
                renewed += 1
            if ev["event"] != "message":
                continue
            last = time.monotonic()
            text = ev["data"].decode()
            got.append(int(text.split(" ")[1]))
            if ev["request"]:
                app.answer(ev["token"], b"echo " + ev["data"])
    want = list(range(n))
    if got != want:
        lost = sorted(set(want) - set(got))
        dups = len(got) - len(set(got))
        order = sum(1 for a, b in zip(got, got[1:]) if b <= a)
        failures.append(f"{name}: received {len(got)}, lost {lost[:10]}, "
                        f"duplicates {dups}, out of order {order}")
    stats[name + "_renewals_seen"] = renewed
    done_event.set()


def sender(name, path, peer):
    errors, latencies = 0, []
    with kgr_app.connect(path, name=name + "-tx", timeout=90) as app:
        for i in range(n):
            data = f"{name} {i} {'x' * 20}".encode()
            t0 = time.monotonic()
            try:
                if i % every == every - 1:
                    reply = app.request(peer, data, timeout_ms=20000)
                    if reply != b"echo " + data:
                        failures.append(f"{name}: wrong reply {reply[:40]!r}")
                else:
                    app.send(peer, data, timeout_ms=20000)
            except kgr_app.KgrError as e:
                errors += 1
                failures.append(f"{name}: message {i}: {e}")
                if errors > 5:
                    return
            latencies.append(time.monotonic() - t0)
    latencies.sort()
    stats[name + "_p50_ms"] = round(1000 * latencies[len(latencies) // 2], 2)
    stats[name + "_p99_ms"] = round(1000 * latencies[len(latencies) * 99 // 100], 2)


id_a = kgr_app.connect(sock_a, timeout=10).n_id
id_b = kgr_app.connect(sock_b, timeout=10).n_id
ready_a, ready_b = threading.Event(), threading.Event()
done_a, done_b = threading.Event(), threading.Event()
threads = [threading.Thread(target=receiver, args=("a", sock_a, id_b, ready_a, done_a)),
           threading.Thread(target=receiver, args=("b", sock_b, id_a, ready_b, done_b))]
for t in threads:
    t.start()
ready_a.wait()
ready_b.wait()
t0 = time.monotonic()
senders = [threading.Thread(target=sender, args=("a", sock_a, id_b)),
           threading.Thread(target=sender, args=("b", sock_b, id_a))]
for t in senders:
    t.start()
for t in senders + threads:
    t.join()
elapsed = time.monotonic() - t0
stats["messages"] = 2 * n
stats["seconds"] = round(elapsed, 1)
stats["messages_per_s"] = round(2 * n / elapsed)
print("exchange:", " ".join(f"{k}={v}" for k, v in sorted(stats.items())))
if failures:
    for f in failures[:20]:
        print("FAIL:", f)
    sys.exit(1)
