#!/usr/bin/env python3
"""Hostile connections against the real sidecar (docs/RELIABILITY.md, "Connections"):

    python3 tests/e2e/connections_e2e.py [path/to/rendition]

The sidecar runs alone on 127.0.0.1 with a descriptor limit of 1024 (so its connection bound
is 1024 - 256 = 768) and short timers from the environment: idle 5 s, header read 1 s, drain
2 s. Then:
  1. thousands of idle TCP connections (no byte sent) and a few slow-header ones (a request
     head trickled a byte at a time, never finished);
  2. a normal request is answered while the flood is held (idle connections still open);
  3. the flood is closed by the sidecar: the slow-header ones by the header read timeout even
     though they keep sending (while idle ones are still open: the header timeout does not
     wait for the idle one), the idle ones after the idle timeout (or evicted to make room
     past the bound); its descriptors come back to where they started, and it answers
     again: recovery without help;
  4. SIGTERM with a half-sent request and a long-poll in progress: the half-sent one is closed
     at once, the long-poll is dropped at the drain deadline, the process exits 0.

Every wait is bounded; only 127.0.0.1 is used. The test raises its own descriptor limit for
its client sockets. Prints the numbers docs/RELIABILITY.md reports (how long the normal
request waited, how many connections the sidecar held).
"""

import http.client
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import shutil
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Checks, free_port, wait_for, settle  # noqa: E402

IDLE = int(os.environ.get("RENDITION_CONN_IDLE", "3000"))  # how many idle connections
SLOW = 5                      # slow-header connections
SIDECAR_FDS = 1024            # the sidecar's RLIMIT_NOFILE (soft and hard)
TIMERS = {"RENDITION_IDLE_TIMEOUT_MS": "5000", "RENDITION_HEADER_READ_TIMEOUT_MS": "1000",
          "RENDITION_DRAIN_TIMEOUT_MS": "2000"}

check = Checks("connections_e2e")


def main():
    rendition = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "rendition")
    if not os.path.exists(rendition):
        sys.exit(f"connections_e2e: {rendition} missing (cargo build)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE + SLOW + 200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    idle = min(IDLE, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - SLOW - 200)
    tmp = tempfile.mkdtemp(prefix="rendition-connections-")
    port = free_port()
    log_path = os.path.join(tmp, "sidecar.log")
    env = dict(os.environ, RUST_LOG="info", **TIMERS)
    started = time.time()
    with open(log_path, "ab") as log:
        sidecar = subprocess.Popen(
            [rendition, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(tmp, "data")],
            stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (SIDECAR_FDS, SIDECAR_FDS)))
    try:
        wait_for(lambda: request(port, "/healthz")[0] == 200, 30, "sidecar /healthz")
        run(sidecar, port, idle, log_path)
    except Exception as e:  # noqa: BLE001 (a crash of the test is a failure, with the log)
        import traceback
        traceback.print_exc()
        check.fail(f"{type(e).__name__}: {e}")
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.wait()
        if check.failures:
            with open(log_path, errors="replace") as f:
                print("---- sidecar.log (tail)\n" + "".join(f.readlines()[-40:]))
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(check.summary(f" ({time.time() - started:.1f} s)"))


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def accept_queue(port):
    """Connections waiting in the kernel for the sidecar's accept() (the listening socket's
    rx_queue in /proc/net/tcp); None when the listener is not found."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                return int(queues.split(":")[1], 16)
    return None


def flood_connect(port, n, batch=100):
    """n idle connections, made `batch` at a time, each batch once the sidecar has taken the
    last from its accept queue. All at once, the kernel's queues overflow and some connections
    exist only on the client's side (a SYN cookie whose ACK met a full accept queue is dropped
    without a trace): the sidecar could never close those. A sidecar that stops accepting (the
    build before the fix, out of descriptors) leaves its queue full: the flood stops there."""
    socks = []
    while len(socks) < n:
        socks += connect_all(port, min(batch, n - len(socks)))
        if not settle(lambda: accept_queue(port) == 0, 10):
            print(f"   the sidecar stopped accepting: {len(socks)} connections made, the last ones queued")
            break
    return socks


def connect_all(port, n, timeout=10):
    """n non-blocking connects to the sidecar; returns the sockets whose connect completed."""
    sel = selectors.DefaultSelector()
    pending = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        pending.append(s)
    done, deadline = [], time.time() + timeout
    while len(done) < n and sel.get_map() and time.time() < deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            sel.unregister(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done.append(s)
            else:
                s.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return done


def closed_by_peer(s):
    """True when the sidecar has closed `s` (EOF or reset); False while it is open."""
    try:
        return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def request(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def timed_get(port, path, timeout):
    """(status or the error's name, seconds waited) of one GET on a new connection."""
    t = time.time()
    try:
        status = request(port, path, timeout)[0]
    except OSError as e:
        status = type(e).__name__
    return status, time.time() - t


def run(sidecar, port, idle, log_path):
    pid = sidecar.pid
    fds_before = open_fds(pid)
    status, waited = timed_get(port, "/healthz", 5)
    print(f"baseline: /healthz {status} in {waited * 1000:.1f} ms, the sidecar holds {fds_before} descriptors")

    print(f"1. {idle} idle connections and {SLOW} slow-header ones")
    flood = flood_connect(port, idle)
    slow = connect_all(port, SLOW)
    for s in slow:
        s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    stop_trickle = threading.Event()

    def trickle():  # one more header byte every 200 ms: never idle, never a whole head
        while not stop_trickle.wait(0.2):
            for s in slow:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    time.sleep(0.5)
    held = open_fds(pid)
    print(f"   {len(flood)} of {idle} connected; the sidecar holds {held} descriptors (limit {SIDECAR_FDS})")
    check(len(slow) == SLOW, f"every slow-header connection made ({len(slow)} of {SLOW})")

    print("2. a normal request during the flood")
    status, waited = timed_get(port, "/healthz", 30)
    still_open = sum(not closed_by_peer(s) for s in flood)
    print(f"   /healthz {status} after {waited * 1000:.0f} ms; {still_open} idle connections still open")
    check(status == 200, f"a normal request is answered during the flood ({waited * 1000:.0f} ms)")
    check(still_open > 0, f"... while the flood is held ({still_open} idle connections open): "
          "it did not wait for the idle timeout")
    check(held < SIDECAR_FDS, f"the sidecar stays under its descriptor limit ({held} < {SIDECAR_FDS})")

    print("3. the sidecar closes the flood by itself")
    settle(lambda: all(closed_by_peer(s) for s in slow), 30)
    idle_left = sum(not closed_by_peer(s) for s in flood)
    slow_left = sum(not closed_by_peer(s) for s in slow)
    print(f"   slow-header connections open: {slow_left}; idle ones still open then: {idle_left}")
    check(slow_left == 0 and idle_left > 0,
          f"slow heads closed by the header timeout before the idle timeout ({slow_left} slow open, "
          f"{idle_left} idle still open)")
    settle(lambda: all(closed_by_peer(s) for s in flood + slow), 30)
    stop_trickle.set()
    trickler.join()
    open_idle = sum(not closed_by_peer(s) for s in flood)
    open_slow = sum(not closed_by_peer(s) for s in slow)
    check(open_idle == 0, f"every idle connection closed by the sidecar ({open_idle} of {len(flood)} open)")
    check(open_slow == 0, f"every slow-header connection closed, though it kept sending ({open_slow} of {len(slow)} open)")
    # Recovery on its own: measured while the client still holds every socket it opened.
    settle(lambda: open_fds(pid) <= fds_before + 2, 10)
    after = open_fds(pid)
    check(after <= fds_before + 2, f"descriptors back to the baseline, the client's sockets still open "
          f"({after}, was {fds_before})")
    status, waited = timed_get(port, "/healthz", 10)
    check(status == 200, f"answers after the flood, the client's sockets still open ({waited * 1000:.1f} ms)")
    for s in flood + slow:
        s.close()
    st = stats(port)
    print("   counters: " + ", ".join(f"{k} {st.get(k)}" for k in (
        "connections_accepted", "connections_evicted", "connections_idle_closed",
        "connections_header_timeouts", "connections_refused", "connections_closed")))
    check(st.get("connections_header_timeouts", 0) >= len(slow),
          f"slow heads closed by the header read timeout ({st.get('connections_header_timeouts')})")
    check(st.get("connections_evicted", 0) + st.get("connections_idle_closed", 0) >= len(flood),
          "idle ones evicted at the bound or closed by the idle timeout")

    print("4. SIGTERM with a half-sent request and a long-poll in progress")
    half = socket.create_connection(("127.0.0.1", port), timeout=5)
    half.send(b"GET /healthz HTTP/1.1\r\nHo")
    poll = socket.create_connection(("127.0.0.1", port), timeout=30)
    poll.send(b"GET /index?since=0&wait_ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n")  # nothing new: waits
    time.sleep(0.3)
    t = time.time()
    sidecar.send_signal(signal.SIGTERM)
    try:
        code = sidecar.wait(20)
    except subprocess.TimeoutExpired:
        code = None
    took = time.time() - t
    print(f"   exited {code} {took:.2f} s after SIGTERM (drain deadline "
          f"{int(TIMERS['RENDITION_DRAIN_TIMEOUT_MS']) / 1000:.0f} s)")
    check(code == 0, f"the sidecar exits, status 0, within its drain deadline ({took:.2f} s)")
    check(closed_by_peer(half), "the half-sent request's connection is closed")
    with open(log_path, errors="replace") as f:
        log = f.read()
    check("drain deadline reached: dropping 1 connections" in log,
          "the long-poll was dropped at the drain deadline (logged)")
    half.close()
    poll.close()


def stats(port):
    status, body = request(port, "/stats")
    return json.loads(body) if status == 200 else {}


if __name__ == "__main__":
    main()
