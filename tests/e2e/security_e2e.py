#!/usr/bin/env python3
"""Security checks (docs/RELIABILITY.md) through the real Envoy 1.40 + filter + `rendition serve` binary and
a local origin; everything is started and stopped here, on loopback (the admin check also uses
this machine's own non-loopback address, when it has one).

    python3 tests/e2e/security_e2e.py [path/to/rendition]

Where each security point is tested (e2e = this file, in-process = sidecar/tests/*.rs):
  client-sent internal headers   e2e 5, 3 (forged key across hosts); envoy_e2e.py 3; the sidecar's
                                 own key check: service.rs notify_index_variant_round_trip
  internal routes unreachable    e2e 4
  SSRF, unconfigured host        e2e 1; service.rs unconfigured_hosts_are_refused; unset default
                                 origin: config.rs the_default_origin_can_be_unset, cli_serve.rs
  SSRF, redirects                e2e 1 (off: main sidecar through Envoy; on: second sidecar);
                                 security.rs redirects_never_leave_the_origin (both settings),
                                 a_notify_path_never_changes_the_address_fetched
  host isolation                 e2e 3; service.rs notify_index_variant_round_trip (forged key)
  credentials, private responses e2e 6; envoy_e2e.py 3 (private, Set-Cookie, filter side);
                                 service.rs sources_that_must_not_be_optimized_are_refused
  cache-busting floods           e2e 8; security.rs a_flood_of_distinct_sources_is_bounded_by_the_queue
  admin routes                   e2e 2 (needs a non-loopback address); security.rs
                                 admin_routes_need_a_loopback_peer_or_the_token (fake peer address)

The main sidecar maps three hosts and has no default origin (`origins.default = ""`):
`127.0.0.1:<envoy port>` and `a.test` to the origin by IP, `b.test` to it by the name
`localhost`. Checks, in order (one line each; `info` lines report behaviour, not failures):
  1. SSRF: a notify naming an unmapped host is refused (403), directly and through Envoy;
     origin redirects (301/302/307/308 to loopback, 169.254.169.254, 10.0.0.1, [::1], even the
     origin itself) are not followed, and the client gets the original; with
     `follow_redirects = true` (a second sidecar) only same-origin redirects are followed.
  2. admin routes from a non-loopback peer: 403 without the bearer token, 200 with it.
  3. host isolation: one path, two Hosts, two different images: B never gets A's variant.
  4. internal routes: /notify, /index, /v/..., /stats, /metrics, /purge, /report, /healthz
     through Envoy's listener reach the origin, never the sidecar.
  5. internal headers: client-sent x-rendition-* never route to the sidecar nor reach the origin.
  6. credentials: Authorization bypasses (no variant, no notify); the sidecar never sends
     cookies or credentials; private / no-store / Set-Cookie originals are never stored.
  7. oversize notifies: megabyte-long `etag` / `last_modified` get 400 and queue nothing, a
     body beyond the bound gets 413, and the sidecar's RSS stays flat under a flood of them.
  8. cache-busting floods: distinct query strings; every answer the original; the filter's
     and the sidecar's queues stay bounded; the store's growth is measured.
"""

import concurrent.futures
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import AVIF_DESKTOP, CHROME, SITE, Checks, Stack, binaries, dimensions, free_port, guarded, key_of, wait_for, settle  # noqa: E402

JPEG_ONLY = {"Accept": "image/jpeg", "User-Agent": CHROME}
TOKEN = "security-e2e-token-0123456789abcdef"
PUBLIC = {"Cache-Control": "public, max-age=600"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")

check = Checks("security_e2e")
started = time.time()


def proxied_hosts(origin, since):
    """Host headers of the requests Envoy proxied to the origin after the first `since`: the
    sidecar's own fetches (User-Agent rendition/...) for earlier notifies can land in the same
    window and are not what a check about proxying is asking."""
    with origin.lock:
        return [r[1] for r in origin.requests[since:] if not r[3].get("user-agent", "").startswith("rendition/")]


def info(what):
    print(f"  info  {what}", flush=True)


def section(title):
    print(f"{title}  [{time.time() - started:.1f}s]", flush=True)


def read(name):
    with open(os.path.join(SITE, "img", name), "rb") as f:
        return f.read()


ROCKET, COFFEE = read("rocket.jpg"), read("coffee.png")


def sha(b):
    return hashlib.sha256(b).hexdigest()[:12]


def http_request(addr, port, method, path, headers=None, body=None, timeout=30):
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def debug(h):
    return h.get("x-rendition", "")


class Trap(http.server.ThreadingHTTPServer):
    """Counts every request: a redirect target that must never be contacted."""
    daemon_threads = True

    def __init__(self, family, addr):
        self.address_family = family
        self.hits = 0
        super().__init__((addr, 0), TrapHandler)


class TrapHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(ROCKET)))
        self.end_headers()
        self.wfile.write(ROCKET)


def non_loopback_ipv4():
    for cmd in (["hostname", "-I"], ["ip", "-4", "-o", "addr", "show", "scope", "global"]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for ip in re.findall(r"\b(\d+\.\d+\.\d+\.\d+)\b", out):
            if not ip.startswith("127.") and not ip.endswith(".255"):
                try:
                    with socket.socket() as s:
                        s.bind((ip, 0))
                    return ip
                except OSError:
                    continue
    return None


class Security:
    def __init__(self, rendition, envoy):
        self.rendition = rendition
        self.s = Stack(rendition, envoy, proactive=False, default_origin=False)
        self.traps = []
        self.aux = None
        self.aux_log = None

    # ---- setup ----
    def start(self):
        s = self.s
        self.trap4 = Trap(socket.AF_INET, "127.0.0.1")
        self.traps.append(self.trap4)
        try:
            self.trap6 = Trap(socket.AF_INET6, "::1")
            self.traps.append(self.trap6)
        except OSError:
            self.trap6 = None
        for t in self.traps:
            threading.Thread(target=t.serve_forever, daemon=True).start()
        # The sidecar fetches over https from a second port of the same origin when
        # RENDITION_E2E_HTTPS=1 (make test runs this suite both ways).
        origin = s.origin_url()
        config = os.path.join(s.tmp, "sidecar.toml")
        with open(config, "w") as f:
            f.write(f'[origins]\ndefault = ""\nfollow_redirects = false\n[origins.hosts]\n'
                    f'"127.0.0.1:{s.envoy_port}" = "{origin}"\n"a.test" = "{origin}"\n'
                    f'"b.test" = "{s.origin_url("localhost")}"\n')
        s.sidecar_args = ["--config", config]
        s.start()
        s.origin.hooks += [self.by_host, self.redirect, self.split]

    def start_aux(self, ip):
        """A second sidecar: follow_redirects on, an admin token, on `ip` (no Envoy)."""
        s = self.s
        self.aux_addr, self.aux_port = ip, free_port()
        config = os.path.join(s.tmp, "aux.toml")
        with open(config, "w") as f:
            ca = f'ca_file = "{s.tls["ca"]}"\n' if s.https else ""
            f.write(f'admin_token = "{TOKEN}"\n[origins]\ndefault = ""\nfollow_redirects = true\n{ca}'
                    f'[origins.hosts]\n"127.0.0.1:{s.envoy_port}" = "{s.origin_url()}"\n')
        self.aux_log = os.path.join(s.tmp, "aux.log")
        with open(self.aux_log, "ab") as log:
            self.aux = subprocess.Popen(
                [self.rendition, "serve", "--listen", f"{ip}:{self.aux_port}", "--config", config,
                 "--data-dir", os.path.join(s.tmp, "aux-data")], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.aux_get("/healthz")[0] == 200, 30, "aux sidecar /healthz")

    def stop(self):
        if self.aux and self.aux.poll() is None:
            self.aux.terminate()
            try:
                self.aux.wait(10)
            except subprocess.TimeoutExpired:
                self.aux.kill()
        for t in self.traps:
            t.shutdown()
        self.s.stop()

    def logs(self):
        return self.s.logs()

    # ---- origin hooks ----
    def by_host(self, h, method, path):
        """/img/same.jpg: the rocket photo (640 px) for a.test, the coffee PNG (600 px) for b.test."""
        if path.split("?")[0] != "/img/same.jpg":
            return None
        host = h.headers.get("Host", "").split(":")[0].lower().rstrip(".")
        if host == "a.test":
            return 200, dict(PUBLIC, **{"Content-Type": "image/jpeg", "ETag": '"a"'}), ROCKET
        if host == "b.test":
            return 200, dict(PUBLIC, **{"Content-Type": "image/png", "ETag": '"b"'}), COFFEE
        return 404, {}, b""

    def redirect(self, h, method, path):
        """/redir/<code>/<target>.jpg: the rocket photo to clients, a redirect to the sidecar."""
        m = re.match(r"^/redir/(\d+)/([a-z0-9]+)\.jpg$", path.split("?")[0])
        if not m:
            return None
        if not h.headers.get("User-Agent", "").startswith("rendition/"):
            return 200, dict(PUBLIC, **{"Content-Type": "image/jpeg"}), ROCKET
        port = self.s.origin_port
        location = {
            "same": "/img/rocket.jpg",
            "loopback": f"http://127.0.0.1:{self.trap4.server_address[1]}/img/rocket.jpg",
            "ipv6": f"http://[::1]:{self.trap6.server_address[1] if self.trap6 else 9}/img/rocket.jpg",
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "private": "http://10.0.0.1/img/rocket.jpg",
            "localhost": f"http://localhost:{port}/img/rocket.jpg",
        }[m[2]]
        return int(m[1]), {"Location": location}, b""

    def split(self, h, method, path):
        """/split/<kind>/rocket.jpg: public to clients; to the sidecar Cache-Control private,
        no-store, or Set-Cookie. /nostore/rocket.jpg: no-store to everyone.
        /varycookie/rocket.jpg: public with Vary: Cookie to everyone."""
        p = path.split("?")[0]
        image = {"Content-Type": "image/jpeg"}
        if p == "/nostore/rocket.jpg":
            return 200, dict(image, **{"Cache-Control": "no-store"}), ROCKET
        if p == "/varycookie/rocket.jpg":
            return 200, dict(image, **PUBLIC, **{"Vary": "Cookie"}), ROCKET
        m = re.match(r"^/split/(private|nostore|cookie)/rocket\.jpg$", p)
        if not m:
            return None
        if not h.headers.get("User-Agent", "").startswith("rendition/"):
            return 200, dict(image, **PUBLIC), ROCKET
        extra = {"private": {"Cache-Control": "public, max-age=60, Private"},
                 "nostore": {"Cache-Control": "max-age=60, No-Store"},
                 "cookie": dict(PUBLIC, **{"Set-Cookie": "session=1"})}[m[1]]
        return 200, dict(image, **extra), ROCKET

    # ---- helpers ----
    def envoy(self, path, headers=None, method="GET", host=None, body=None):
        h = dict(headers or {})
        h["Host"] = host or self.s.host()
        return http_request("127.0.0.1", self.s.envoy_port, method, path, h, body)

    def raw(self, request_line_and_host, headers):
        """One request written by hand (absolute-form targets, repeated headers)."""
        text = request_line_and_host + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        with socket.create_connection(("127.0.0.1", self.s.envoy_port), timeout=10) as c:
            c.sendall((text + "Connection: close\r\n\r\n").encode())
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        h = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        return int(lines[0].split()[1]), h, body

    def sidecar(self, method, path, headers=None, body=None):
        return http_request("127.0.0.1", self.s.sidecar_port, method, path, headers, body)

    def aux_get(self, path, headers=None, method="GET", body=None):
        try:
            return http_request(self.aux_addr, self.aux_port, method, path, headers, body)
        except OSError:
            return (0, {}, b"")

    def stats(self):
        return json.loads(self.sidecar("GET", "/stats")[2])

    def notify(self, host, path, mask=0x0A, to_aux=False):
        body = json.dumps({"host": host, "path": path, "mask": mask})
        h = {"Content-Type": "application/json"}
        if to_aux:
            return self.aux_get("/notify", h, "POST", body)[0]
        return self.sidecar("POST", "/notify", h, body)[0]

    def fetched_by_sidecar(self, path_prefix, host=None):
        with self.s.origin.lock:
            reqs = list(self.s.origin.requests)
        return [r for r in reqs if r[3].get("user-agent", "").startswith("rendition/")
                and r[2].startswith(path_prefix) and (host is None or r[1] == host)]

    def log(self, aux=False):
        path = self.aux_log if aux else os.path.join(self.s.tmp, "sidecar.log")
        with open(path, "rb") as f:
            return ANSI.sub("", f.read().decode("utf-8", "replace"))

    def filter_stat(self, name):
        return self.s.stat("wasmcustom.rendition." + name) or 0

    def idle(self):
        # The filter sends queued notifies on its 25 ms tick: let the last ones arrive first.
        time.sleep(0.5)
        wait_for(lambda: self.stats()["queue_depth"] == 0, 120, "the sidecar's queue to drain")
        wait_for(self.s.index_caught_up, 30, "the index to catch up")


def main():
    t = Security(*binaries("security_e2e"))
    with guarded(check, t, "security_e2e"):
        t.start()
        run(t)
    section("stopped")
    sys.exit(check.summary(f", {time.time() - started:.1f}s"))


def run(t):
    s = t.s
    a_key = key_of("a.test", "/img/same.jpg")
    # Start generation for both hosts now; the other checks run while the sidecar works.
    status_a, ha, body_a = t.envoy("/img/same.jpg", AVIF_DESKTOP, host="a.test")
    status_b, hb, body_b = t.envoy("/img/same.jpg", AVIF_DESKTOP, host="b.test")
    t.envoy("/img/same.jpg", JPEG_ONLY, host="a.test")  # a.test's JPEG slot, for step 5

    section("1. SSRF")
    before = t.stats()["notifications_refused"]
    for host in ("unmapped.test", "169.254.169.254", "10.0.0.1", "localhost", "[::1]"):
        check(t.notify(host, "/img/rocket.jpg") == 403, f"notify naming unmapped host {host}: 403")
    check(t.notify("A.Test:80", "/img/same.jpg?probe=1", mask=0) == 202, "  a mapped host in another spelling (A.Test:80): 202")
    check(t.stats()["notifications_refused"] == before + 5, "  counted in notifications_refused")
    failed = t.filter_stat("notifies_failed")
    status, h, body = t.envoy("/img/rocket.jpg", AVIF_DESKTOP, host="unmapped.test")
    check(status == 200 and body == ROCKET and debug(h).startswith("miss"),
          f"through Envoy, Host unmapped.test: the original ({debug(h)})")
    wait_for(lambda: t.filter_stat("notifies_failed") > failed, 10, "the filter's notify to fail")
    check(not t.fetched_by_sidecar("/img/rocket.jpg", "unmapped.test") and t.stats()["notifications_refused"] == before + 6,
          "  the filter's notify was refused (403, notifies_failed) and the origin was never asked")

    # Redirects, follow_redirects off (the main sidecar), through Envoy.
    targets = ["loopback", "metadata", "private", "ipv6", "localhost", "same"]
    codes = [301, 302, 307, 308]
    ok = 0
    for code in codes:
        for target in targets:
            status, h, body = t.envoy(f"/redir/{code}/{target}.jpg", AVIF_DESKTOP)
            ok += status == 200 and body == ROCKET
    n = len(codes) * len(targets)
    check(ok == n, f"origin redirecting the sidecar ({n} cases): every client got the original ({ok}/{n})")
    def logged(aux, names):
        log = t.log(aux)
        return [f"{c}/{tg}" for c in codes for tg in names
                if re.search(rf"fetch failed: origin answered {c} key={re.escape(s.host())}/redir/{c}/{tg}\.jpg", log)]

    settle(lambda: len(logged(False, targets)) >= n, 60)
    reasons = logged(False, targets)
    check(len(reasons) == n, f"  follow_redirects off: none followed, each logged 'fetch failed: origin answered 30x' ({len(reasons)}/{n})")
    traps = sum(tr.hits for tr in t.traps)
    check(traps == 0, f"  nothing reached the loopback traps (127.0.0.1{' and [::1]' if t.trap6 else ''}): {traps} requests")
    status, h, _ = t.envoy("/redir/302/loopback.jpg", AVIF_DESKTOP)
    check(debug(h).startswith("miss") and "reason=no_variant" in debug(h),
          f"  no variant was made; the next request is a plain miss ({debug(h)})")
    info("a redirect fails the fetch (fetch_errors) but is not remembered as refused: the next miss "
         "re-asks after renotify_after_ms (10 s per worker and URL)")

    ip = non_loopback_ipv4()
    t.start_aux(ip or "127.0.0.1")
    n_aux = 0
    for code in codes:
        for target in targets:
            n_aux += t.notify(s.host(), f"/redir/{code}/{target}.jpg", mask=0, to_aux=True) == 202
    check(n_aux == n, f"follow_redirects on (second sidecar): {n} notifies accepted")
    same = [key_of(s.host(), f"/redir/{c}/same.jpg") for c in codes]
    check.until(lambda: all(t.aux_get(f"/v/{k}/0")[0] == 200 for k in same), 90,
                "  same-origin redirects (Location: /img/rocket.jpg) followed and stored")
    others = [tg for tg in targets if tg != "same"]
    settle(lambda: len(logged(True, others)) >= n - len(codes), 30)
    stopped = logged(True, others)
    check(len(stopped) == n - len(codes),
          f"  every other origin (loopback port, 169.254.169.254, 10.0.0.1, [::1], localhost) stopped at the redirect ({len(stopped)}/{n - len(codes)})")
    traps = sum(tr.hits for tr in t.traps)
    check(traps == 0, f"  nothing reached the traps: {traps} requests")
    hosts = {r[1] for r in t.fetched_by_sidecar("/img/rocket.jpg") if r[1] != "unmapped.test"}
    info(f"the followed same-origin hop carried Host {sorted(hosts)} (the notify's Host is kept)")
    # b.test is mapped to http://localhost:<port>: a configured origin whose name resolves to
    # loopback is the operator's own choice and allowed (only configured base URLs are ever
    # contacted; addresses are not filtered).

    section("2. admin routes")
    if ip is None:
        info("no non-loopback IPv4 address here: covered in-process by sidecar/tests/security.rs "
             "(admin_routes_need_a_loopback_peer_or_the_token)")
    else:
        routes = [("GET", "/stats", None), ("GET", "/metrics", None), ("GET", "/report", None),
                  ("GET", f"/report/source/{'0' * 32}", None),
                  ("POST", "/purge", json.dumps({"host": "nothing.test", "path": "/x.jpg"}))]
        for method, path, body in routes:
            h = {"Content-Type": "application/json"} if body else {}
            plain = t.aux_get(path, h, method, body)[0]
            forged = t.aux_get(path, dict(h, **{"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1"}), method, body)[0]
            wrong = t.aux_get(path, dict(h, Authorization="Bearer " + TOKEN[:-1] + "x"), method, body)[0]
            good = t.aux_get(path, dict(h, Authorization="Bearer " + TOKEN), method, body)[0]
            want = 404 if path.startswith("/report/source") else 200
            check((plain, forged, wrong, good) == (403, 403, 403, want),
                  f"{method} {path} from {ip}: no token {plain}, forged X-Forwarded-For {forged}, wrong token {wrong}, token {good}")
        loop = [t.sidecar("GET", p)[0] for p in ("/stats", "/metrics", "/report")]
        check(loop == [200, 200, 200], f"  the loopback sidecar (no token configured) answers loopback peers: {loop}")
        open_routes = [t.aux_get(p)[0] for p in ("/healthz", "/index?since=0", f"/v/{same[0]}/0")]
        info(f"from {ip} without a token /healthz, /index and /v/ answer {open_routes} (documented: keep the port private)")
    info("Envoy's own admin (/stats, /quitquitquit) listens on 127.0.0.1 only (envoy/envoy.yaml: admin.address)")

    section("3. host isolation")
    check(status_a == 200 and body_a == ROCKET and debug(ha).startswith("miss"), f"a.test first request: A's original ({debug(ha)})")
    check(status_b == 200 and body_b == COFFEE and debug(hb).startswith("miss"), f"b.test first request: B's original ({debug(hb)})")
    wait_for(lambda: debug(t.envoy("/img/same.jpg", AVIF_DESKTOP, host="a.test")[1]).startswith("hit"), 90, "a.test's variant")
    wait_for(lambda: debug(t.envoy("/img/same.jpg", AVIF_DESKTOP, host="b.test")[1]).startswith("hit"), 90, "b.test's variant")
    _, ha, va = t.envoy("/img/same.jpg", AVIF_DESKTOP, host="a.test")
    _, hb, vb = t.envoy("/img/same.jpg", AVIF_DESKTOP, host="b.test")
    check(dimensions(va) == ("avif", 640, 427) and dimensions(vb) == ("avif", 600, 400) and va != vb,
          f"same path, two hosts, both optimized: a.test {dimensions(va)}, b.test {dimensions(vb)}")
    check(debug(ha) == debug(hb) == "hit; mask=0x0a; variant=0x0a; step=exact", "  each its own exact hit")
    for host in ("A.TEST", "a.test:80", "a.test."):
        _, h, v = t.envoy("/img/same.jpg", AVIF_DESKTOP, host=host)
        check(v == va, f"  Host {host} is a.test (canonical host): A's variant ({debug(h)})")
    status, h, v = t.envoy("/img/same.jpg", AVIF_DESKTOP, host="c.test")
    check(status == 404 and v == b"", f"  an unknown Host gets the origin's 404, never A's variant ({status}, {len(v)} bytes)")
    ok = True
    for value in (f"{a_key}/a", f"{a_key}/0a", f"{a_key}/8"):
        for hdrs in (AVIF_DESKTOP, JPEG_ONLY):
            _, h, v = t.envoy("/img/same.jpg", dict(hdrs, **{"X-Rendition-Variant": value}), host="b.test")
            ok &= v != va and dimensions(v)[1] != 640 and (v == COFFEE or dimensions(v)[1] == 600)
    check(ok, "forged x-rendition-variant naming a.test's key, sent with Host b.test: never A's bytes")
    # The request target in absolute form names the host (RFC 9112 3.2.2): the filter keys on
    # it and the origin gets it, so both agree; a second Host header is neither host.
    status, h, v = t.raw("GET http://a.test/img/same.jpg HTTP/1.1\r\nHost: b.test\r\n", AVIF_DESKTOP)
    with s.origin.lock:
        n_origin = len(s.origin.requests)
    status2, h2, v2 = t.raw("GET http://a.test/img/same.jpg HTTP/1.1\r\nHost: b.test\r\n",
                            dict(AVIF_DESKTOP, Authorization="Basic dTpw"))
    seen = proxied_hosts(s.origin, n_origin)
    check(v == va and v2 == ROCKET and seen == ["a.test"],
          f"GET http://a.test/... with Host: b.test: A's variant ({debug(h)}), and bypassed to the origin, it got Host {seen} ({debug(h2)})")
    with s.origin.lock:
        n_origin = len(s.origin.requests)
    status, h, v = t.raw("GET /img/same.jpg HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n", AVIF_DESKTOP)
    seen = proxied_hosts(s.origin, n_origin)
    check(v != va and v != vb and debug(h).startswith("miss"), f"two Host headers: no variant ({status}, {debug(h)}; the origin saw Host {seen})")
    st_a = t.sidecar("GET", "/img/same.jpg", {"Host": "a.test", "x-rendition-variant": f"{a_key}/a"})
    st_b = t.sidecar("GET", "/img/same.jpg", {"Host": "b.test", "x-rendition-variant": f"{a_key}/a"})
    st_p = t.sidecar("GET", "/img/other.jpg", {"Host": "a.test", "x-rendition-variant": f"{a_key}/a"})
    check(st_a[0] == 200 and st_a[2] == va and st_b[0] == 404 and st_p[0] == 404,
          f"  the sidecar itself (no filter): A's key with Host a.test {st_a[0]}, with Host b.test {st_b[0]}, another path {st_p[0]}")

    section("4. internal routes through Envoy's listener")
    t.idle()
    before = t.stats()
    seq = before["index_last_seq"]
    with s.origin.lock:
        n_origin = len(s.origin.requests)
    probes = [
        ("GET", "/notify", None), ("POST", "/notify", json.dumps({"host": "a.test", "path": "/img/logo.png", "mask": 10})),
        ("GET", "/index?since=0", None), ("GET", "/index?since=0&wait_ms=50", None),
        ("GET", f"/v/{a_key}/a", None), ("HEAD", f"/v/{a_key}/0x0a", None), ("GET", f"/v/{a_key}/a.jpg", None),
        ("GET", "/stats", None), ("GET", "/stats.jpg", None), ("GET", "/metrics", None),
        ("POST", "/purge", json.dumps({"prefix": "a.test/"})), ("GET", "/purge", None),
        ("GET", "/report", None), ("GET", f"/report/source/{a_key}", None),
        ("GET", f"/report/source/{a_key}.jpg", None), ("GET", "/healthz", None),
    ]
    answers = []
    for method, path, body in probes:
        hdrs = dict(AVIF_DESKTOP, **({"Content-Type": "application/json"} if body else {}))
        for forged in (False, True):
            if forged:
                hdrs["x-rendition-variant"] = f"{a_key}/a"
            status, h, _ = t.envoy(path, hdrs, method, host="a.test", body=body)
            answers.append((method, path, status))
    time.sleep(0.5)
    with s.origin.lock:
        reached = [(m, p) for m, _, p, _ in s.origin.requests[n_origin:]]
    missing = [(m, p) for m, p, _ in answers if (m, p) not in reached]
    check(not missing and all(st == 404 for _, _, st in answers),
          f"{len(answers)} requests (with and without a forged x-rendition-variant) all reached the origin (its 404): missing {missing}")
    after = t.stats()
    moved = {k: (before[k], after[k]) for k in ("notifications_received", "notifications_refused", "notifications_skipped_dedup",
                                                  "variants_served", "variants_not_found", "queue_dropped") if before[k] != after[k]}
    check(not moved and after["index_last_seq"] == seq, f"  the sidecar saw none of them (counters moved: {moved}; feed seq {seq} -> {after['index_last_seq']})")
    _, h, v = t.envoy("/img/same.jpg", AVIF_DESKTOP, host="a.test")
    check(v == va, f"  the purge through Envoy purged nothing: a.test still hits ({debug(h)})")

    section("5. client-sent internal headers")
    # a.test now has an AVIF and a JPEG variant: a JPEG-only client gets the JPEG one. A forged
    # header naming the AVIF one must change nothing: same bytes, same decision.
    wait_for(lambda: debug(t.envoy("/img/same.jpg", JPEG_ONLY, host="a.test")[1]).startswith("hit"), 60, "a.test's JPEG variant")
    with s.origin.lock:
        n_origin = len(s.origin.requests)
    auth = {"Authorization": "Basic dTpw"}
    cases = [
        ("x-rendition-variant naming the stored AVIF, JPEG-only client", JPEG_ONLY, {"x-rendition-variant": f"{a_key}/a"}),
        ("X-RENDITION-VARIANT (upper case)", JPEG_ONLY, {"X-RENDITION-VARIANT": f"{a_key}/a"}),
        ("x-rendition-variant + x-rendition-route + x-rendition-anything", JPEG_ONLY,
         {"x-rendition-variant": f"{a_key}/a", "x-rendition-route": "sidecar", "x-rendition-anything": "1"}),
        ("x-rendition: hit (the debug header, as a request header)", JPEG_ONLY, {"x-rendition": "hit; mask=0x0a; variant=0x0a; step=exact"}),
        ("x-rendition-variant on a bypassed request (Authorization)", dict(AVIF_DESKTOP, **auth),
         {"x-rendition-variant": f"{a_key}/a"}),
    ]
    for what, client, extra in cases:
        c_status, c_h, c_body = t.envoy("/img/same.jpg", client, host="a.test")
        status, h, body = t.envoy("/img/same.jpg", dict(client, **extra), host="a.test")
        check((status, sha(body), h.get("content-type"), debug(h)) == (c_status, sha(c_body), c_h.get("content-type"), debug(c_h))
              and dimensions(body)[0] != "avif" and "x-rendition-variant" not in h,
              f"{what}: the same answer as without it ({dimensions(body)[0]}, {debug(h)})")
    status, h, body = t.envoy("/img/same.jpg", dict(JPEG_ONLY, **{"x-rendition-variant": f"{a_key}/a"}), "POST", host="a.test", body="x")
    time.sleep(0.3)
    with s.origin.lock:
        posted = [r for r in s.origin.requests[n_origin:] if r[0] == "POST"]
    check(len(posted) == 1 and status == 200 and body == ROCKET, f"  a POST with it reaches the origin ({status}, {len(posted)} POST seen there)")
    with s.origin.lock:
        leaked = [(p, k) for _, _, p, hd in s.origin.requests[n_origin:] for k in hd if k.startswith("x-rendition-")]
    check(not leaked, f"  no client-sent x-rendition-* header reached the origin {leaked}")
    info("`x-rendition` (no suffix) is not in the internal namespace: it reaches the origin, routes nothing")

    section("6. credentials and private responses")
    status, h, body = t.envoy("/img/same.jpg", dict(AVIF_DESKTOP, Authorization="Bearer abc"), host="a.test")
    check(status == 200 and body == ROCKET and debug(h).startswith("bypass") and "reason=authorization" in debug(h),
          f"Authorization on an optimized URL: the original, no stored variant ({debug(h)})")
    sent = t.filter_stat("notifies_sent")
    for i in range(3):
        status, h, body = t.envoy("/img/same.jpg?auth=1", dict(AVIF_DESKTOP, Authorization="Bearer abc"), host="a.test")
    time.sleep(1.0)
    check(not t.fetched_by_sidecar("/img/same.jpg?auth=1") and t.filter_stat("notifies_sent") == sent,
          f"  a new URL with Authorization: no notify, never fetched ({debug(h)})")
    status, h, body = t.envoy("/img/same.jpg", dict(AVIF_DESKTOP, Cookie="session=1"), host="a.test")
    info(f"Cookie is not a bypass: a request with a cookie gets the stored variant ({debug(h)}); "
         "an origin whose image depends on the cookie says so with Vary: Cookie, below")
    creds = [(r[2], k) for r in t.fetched_by_sidecar("/") for k in r[3] if k in ("cookie", "authorization", "proxy-authorization")]
    check(not creds, f"the sidecar's {len(t.fetched_by_sidecar('/'))} origin fetches carried no Cookie or Authorization {creds}")
    for path in ("/nostore/rocket.jpg",):
        for _ in range(2):
            status, h, body = t.envoy(path, AVIF_DESKTOP)
        check(status == 200 and body == ROCKET and debug(h).startswith("miss"), f"{path} (Cache-Control: no-store): served as is ({debug(h)})")
    for kind in ("private", "nostore", "cookie"):
        status, h, body = t.envoy(f"/split/{kind}/rocket.jpg", AVIF_DESKTOP)
        check(status == 200 and body == ROCKET, f"/split/{kind}/: public to the client, original served")
    time.sleep(1.0)
    check(not t.fetched_by_sidecar("/nostore/"), "  no-store: the filter never notified")
    wait_for(lambda: all("reason=refused" in debug(t.envoy(f"/split/{k}/rocket.jpg", AVIF_DESKTOP)[1])
                         for k in ("private", "nostore", "cookie")), 30, "refusals to reach the index")
    log = t.log()
    why = {k: bool(re.search(rf"not publicly cacheable \({w}\) key={re.escape(s.host())}/split/{k}/", log))
           for k, w in (("private", "Cache-Control: private"), ("nostore", "Cache-Control: no-store"), ("cookie", "Set-Cookie"))}
    check(all(why.values()), f"  but {{private, no-store, Set-Cookie}} to the sidecar: refused, remembered, logged {why}")
    for k in ("private", "nostore", "cookie"):
        st = t.sidecar("GET", f"/v/{key_of(s.host(), f'/split/{k}/rocket.jpg')}/a")[0]
        check(st == 404, f"  /split/{k}/: nothing stored ({st})")
    with_cookie = dict(AVIF_DESKTOP, Cookie="session=1")
    vary0 = t.filter_stat("not_optimized.vary")
    answers = [t.envoy("/varycookie/rocket.jpg", h) for h in (AVIF_DESKTOP, with_cookie, AVIF_DESKTOP, with_cookie)]
    time.sleep(1.0)  # room for a notify, were one (wrongly) sent, to be fetched and published
    answers += [t.envoy("/varycookie/rocket.jpg", h) for h in (AVIF_DESKTOP, with_cookie)]
    check.until(lambda: t.filter_stat("not_optimized.vary") - vary0 >= 6, 15,
                "  the filter counted each of the six as not optimizable (not_optimized.vary)")
    check(all(st == 200 and body == ROCKET and debug(h).startswith("miss") for st, h, body in answers)
          and not t.fetched_by_sidecar("/varycookie/"),
          f"  Vary: Cookie on a public response: never optimized, with or without a cookie; the original "
          f"every time, never fetched by the sidecar ({debug(answers[-1][1])})")

    section("7. oversize notifies")
    oversize_notifies(t)

    section("8. cache-busting floods")
    flood(t)


def flood(t):
    s = t.s
    local = threading.local()

    def get(path):
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", s.envoy_port, timeout=30)
        try:
            conn.request("GET", path, headers=dict(AVIF_DESKTOP, Host=s.host()))
            r = conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            local.conn = None
            return 0, repr(e).encode()

    def describe(bad):
        """'0' or the count with what went wrong."""
        if not bad:
            return 0
        kinds = {}
        for st, b in bad:
            k = f"{st} {b[:60]!r}"
            kinds[k] = kinds.get(k, 0) + 1
        upstream = {n: s.stat(f"cluster.origin.upstream_{n}") for n in
                    ("cx_connect_timeout", "cx_connect_fail", "cx_destroy_remote_with_active_rq", "rq_503", "rq_timeout")}
        return f"{len(bad)}: {kinds}; Envoy's origin cluster: {upstream}"

    def burst(paths):
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(get, paths))
        return results, time.time() - t0

    def data_dir_bytes():
        total, blocks = 0, 0
        for d, _, files in os.walk(s.data_dir):
            for f in files:
                st = os.stat(os.path.join(d, f))
                total, blocks = total + st.st_size, blocks + st.st_blocks * 512
        return total, blocks

    filter_names = ("requests", "misses", "notifies_sent", "notifies_failed", "notifies_dropped")

    def filter_counts():
        time.sleep(0.3)  # the filter flushes its counters every 25 ms
        return {n: t.filter_stat(n) for n in filter_names}

    def delta(a, b):
        return {n: b[n] - a[n] for n in a}

    rnd = random.Random(7)
    # 8a. distinct sources the sidecar can dispose of quickly (HTML under an image name: fetched,
    # sniffed, refused): how the store grows with many distinct URLs.
    t.idle()
    section("8a. distinct sources the sidecar refuses at once: store growth")
    st0, disk0, f0 = t.stats(), data_dir_bytes(), filter_counts()
    n = 2000
    results, secs = burst([f"/page.jpg?cb={rnd.getrandbits(64):x}" for _ in range(n)])
    errors = describe([(st, b) for st, b in results if st != 200 or not b.startswith(b"<html>")])
    check(not errors, f"{n} distinct /page.jpg?cb=... in {secs:.1f}s ({n / secs:.0f}/s): all 200 with the origin's bytes ({errors} errors)")
    wait_for(lambda: t.stats()["queue_depth"] == 0, 60, "the refusals to finish")
    time.sleep(0.5)  # sled flushes every 200 ms
    st1, disk1, f1 = t.stats(), data_dir_bytes(), filter_counts()
    grown = st1["store_sources"] - st0["store_sources"]
    info(f"store: {st0['store_sources']} -> {st1['store_sources']} records (+{grown}), feed seq "
         f"{st0['index_last_seq']} -> {st1['index_last_seq']}, data_dir {disk0[0]} -> {disk1[0]} bytes "
         f"(allocated {disk0[1]} -> {disk1[1]}); about {(disk1[0] - disk0[0]) // max(grown, 1)} bytes per record; "
         f"records without variants are deleted a day after their last change (records.empty_ttl_secs). "
         f"filter: {delta(f0, f1)}; sidecar queue_dropped "
         f"{st1['queue_dropped'] - st0['queue_dropped']}")
    check(grown > 0, f"  (measured: +{grown} records for {n} distinct URLs)")

    # 7b. one real image under 3000 random query strings, the sidecar's queue at its default
    # capacity (1024) and workers = cores: every answer the original, the queue bounded.
    section("8b. one image under random query strings: queue bounds")
    st0, f0 = t.stats(), filter_counts()
    workers = os.cpu_count() or 1
    capacity = 1024
    depth = {"max": 0, "polls": 0}
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                d = t.stats()["queue_depth"]
                depth["max"], depth["polls"] = max(depth["max"], d), depth["polls"] + 1
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    n = 3000
    results, secs = burst([f"/img/rocket.jpg?cb={rnd.getrandbits(64):x}" for _ in range(n)])
    time.sleep(2.0)  # the filter's last notifies
    stop.set()
    poller.join()
    st1, f1 = t.stats(), filter_counts()
    errors = describe([(st, b) for st, b in results if st != 200 or b != ROCKET])
    check(not errors, f"{n} distinct /img/rocket.jpg?cb=... in {secs:.1f}s ({n / secs:.0f}/s): all 200 with the original bytes ({errors} errors)")
    d = delta(f0, f1)
    received = st1["notifications_received"] - st0["notifications_received"]
    dropped = st1["queue_dropped"] - st0["queue_dropped"]
    check(depth["max"] <= capacity + workers,
          f"  sidecar queue_depth peaked at {depth['max']} over {depth['polls']} polls (capacity {capacity} + {workers} running)")
    check(dropped > 0 and received >= dropped,
          f"  sidecar: {received} notifies received, {dropped} answered 429 (queue_dropped), {st1['images_processed'] - st0['images_processed']} processed meanwhile")
    check(d["misses"] == n and d["requests"] == n, f"  filter: {d}: every request a miss, nothing from the store")
    processed = st1["images_processed"] - st0["images_processed"]
    grown = st1["store_sources"] - st0["store_sources"]
    payload = st1["store_payload_bytes"] - st0["store_payload_bytes"]
    rate = processed / (secs + 2.0)
    info(f"the flood left {st1['queue_depth']} jobs queued, each a full fetch + decode + encode of the same image: "
         f"~{st1['queue_depth'] / max(rate, 0.01) / 60:.0f} min of sidecar CPU at the {rate:.1f}/s measured; so far "
         f"+{grown} records (those without variants deleted after a day) and +{payload} bytes of variants (~{payload // max(grown, 1)} per source, "
         f"inside cache_size_bytes, evicting least recently served variants when full)")
    # The table holds only what the feed published, so its gauge never passes the sidecar's
    # records (read after it: nothing is deleted here, so the count only grows meanwhile). The
    # key space itself is fixed: 65,536 buckets x 4 ways (262,144 sources, ~12 MB).
    records = t.filter_stat("index.records")
    sources = t.stats()["store_sources"]
    check(0 < records <= min(sources, 65536 * 4),
          f"  shared-data index: {records} records, the sidecar {sources}; at most 65,536 buckets x 4 ways "
          f"whatever the traffic")

    # 8c. the same flood while the sidecar hangs (SIGSTOP): notifies time out (1 s), 16 in
    # flight per worker, the filter's queue (256 per worker) fills and drops; clients unaffected.
    section("8c. the same with the sidecar hung")
    f0 = filter_counts()
    s.kill_sidecar(signal.SIGSTOP)
    try:
        n = 1500
        results, secs = burst([f"/img/rocket.jpg?cb={rnd.getrandbits(64):x}" for _ in range(n)])
        errors = describe([(st, b) for st, b in results if st != 200 or b != ROCKET])
        f1 = filter_counts()
    finally:
        s.kill_sidecar(signal.SIGCONT)
    d = delta(f0, f1)
    check(not errors, f"{n} more with the sidecar hung (SIGSTOP) in {secs:.1f}s: all 200 with the original ({errors} errors)")
    check(d["notifies_dropped"] > 0 and d["misses"] - d["notifies_dropped"] <= 2 * (256 + 16) + d["notifies_sent"],
          f"  filter: {d}: the per-worker queue (256) held, the rest was dropped")



def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])


def post_notify(port, body):
    """POST /notify; the status, or 0 when the sidecar closed before taking the whole body
    (what it does past the body bound, after answering 413)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        try:
            c.request("POST", "/notify", body, {"Content-Type": "application/json"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            return 0
    finally:
        c.close()


def oversize_notifies(t):
    """Validators are bounded (512 bytes) and so is the body (32 KiB, shared::wire): before,
    notifies with megabyte-long validators were accepted and queued whole, and a couple of
    hundred of them grew the sidecar by hundreds of MB."""
    t.idle()
    port, pid = t.s.sidecar_port, t.s.sidecar.pid
    before_rss, before = rss_kib(pid), t.stats()

    def post(i, size):
        field = "etag" if i % 2 == 0 else "last_modified"
        return post_notify(port, json.dumps(
            {"host": "a.test", "path": f"/storm/oversize-{i}.jpg", "mask": 10, field: "x" * size}))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        big = list(pool.map(lambda i: post(i, 1 << 20), range(200)))
        long = list(pool.map(lambda i: post(i, 16 << 10), range(200)))
    after_rss, after = rss_kib(pid), t.stats()
    check(all(s in (413, 0) for s in big) and big.count(413) > 0,
          f"200 notifies of 1 MB (a 1 MB etag or last_modified): 413, read no further "
          f"({big.count(413)} answered 413, {big.count(0)} closed while still sending)")
    check(long.count(400) == 200, f"200 notifies with a 16 KiB validator (within the body bound): all 400 ({sorted(set(long))})")
    check(after["notifications_received"] == before["notifications_received"],
          "  none of them queued anything (notifications_received unchanged)")
    check(after_rss - before_rss < 64 * 1024,
          f"  the sidecar's RSS stayed flat: {before_rss / 1024:.0f} -> {after_rss / 1024:.0f} MB")
    ok = json.dumps({"host": "a.test", "path": "/img/logo.png", "mask": 10, "etag": '"' + "v" * 500 + '"'})
    status = post_notify(port, ok)
    check(status == 202, f"  a 502-byte etag is still a notify: {status}")


if __name__ == "__main__":
    main()

