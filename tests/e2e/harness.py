"""Starts and stops the real parts for end-to-end tests: a local origin (in-process, serving
examples/site plus a few special paths), the real `rendition` sidecar binary and the real Envoy
1.40 with the built filter, all on free loopback ports. Everything is torn down by `stop()`.

Only the standard library: the tests run on a fresh machine with nothing but python3.
"""

import contextlib
import hashlib
import traceback
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SITE = os.path.join(ROOT, "examples", "site")
with open(os.path.join(ROOT, "tests", "e2e", "fixtures", "storm.jpg"), "rb") as _f:
    STORM = _f.read()
TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
         ".webp": "image/webp", ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}


# The client most tests play: desktop Chrome, which accepts AVIF and WebP.
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
AVIF_DESKTOP = {"Accept": "image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "User-Agent": CHROME}


class Checks:
    """The tally of one end-to-end script: `check(cond, what)` prints one line per check;
    `fail(why)` records a failure already reported (a crash of the test); `summary()` prints
    the totals and every failure and returns the exit code."""

    def __init__(self, name):
        self.name, self.passed, self.failures = name, 0, []

    def __call__(self, cond, what):
        if cond:
            self.passed += 1
            print(f"  ok    {what}", flush=True)
        else:
            self.failures.append(what)
            print(f"  FAIL  {what}", flush=True)
        return cond

    def until(self, pred, seconds, what):
        """A check that waits: polls `pred` (as `wait_for`) and counts a pass once it holds. On
        a timeout it raises, and `guarded` records the failure: what follows depends on it."""
        value = wait_for(pred, seconds, what)
        self(True, what)
        return value

    def fail(self, why):
        self.failures.append(why)

    def summary(self, extra=""):
        print(f"{self.name}: {self.passed} passed, {len(self.failures)} failed{extra}")
        for f in self.failures:
            print(f"  failed: {f}")
        return 1 if self.failures else 0


def binaries(script):
    """The sidecar binary (argv[1], else the debug build) and Envoy, for `script`; exits naming
    whatever is missing, the built filter included."""
    rendition = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "debug", "rendition")
    envoy = os.path.join(ROOT, ".tools", "bin", "envoy")
    for f in (rendition, envoy, os.path.join(ROOT, "dist", "rendition_filter.wasm")):
        if not os.path.exists(f):
            sys.exit(f"{script}: {f} missing (make build / scripts/setup.sh)")
    return rendition, envoy


@contextlib.contextmanager
def guarded(check, stack, what, before_stop=None):
    """A test body run on `stack`: an exception in it is a failed check (with its traceback),
    any failure in it prints the stack's logs, and the stack is stopped whatever happens
    (`before_stop` first, e.g. to end a thread that polls it)."""
    failures = len(check.failures)
    try:
        yield stack
    except Exception as e:  # noqa: BLE001 (a crash of the test is a failure, with the logs)
        traceback.print_exc()
        check.fail(f"{what}: {type(e).__name__}: {e}")
    finally:
        if len(check.failures) > failures:
            print(stack.logs())
        if before_stop:
            before_stop()
        stack.stop()


_handed_out = set()


def free_port():
    """A loopback port nothing listens on, below the kernel's ephemeral range: a port the
    kernel picked for us (bind to 0) comes from that range, and by the time Envoy or the
    sidecar binds it, an outgoing connection may be using it as its source port ("Address
    already in use", seen in a clean-clone run). Ports below the range are never handed out
    as source ports."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("free_port: no free port below the ephemeral range")


def make_tls(directory, names=("localhost", "shop.example", "a.test", "b.test", "unmapped.test"),
             ips=("127.0.0.1",)):
    """A test CA and a server certificate it signs (with `openssl`, which scripts/setup.sh
    installs), for https origins. Returns {"ca": PEM path, "cert": ..., "key": ...}."""
    os.makedirs(directory, exist_ok=True)
    p = lambda n: os.path.join(directory, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"),
                    "-days", "2", "-subj", "/CN=Rendition test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"], **quiet)
    subprocess.run(["openssl", "req", *ec, "-keyout", p("server.key"), "-out", p("server.csr"),
                    "-subj", "/CN=rendition test origin"], **quiet)
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    with open(p("ext.cnf"), "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"),
                    "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p("server.pem"),
                    "-days", "2", "-extfile", p("ext.cnf")], **quiet)
    return {"ca": p("ca.pem"), "cert": p("server.pem"), "key": p("server.key")}


class Origin(http.server.ThreadingHTTPServer):
    """examples/site, plus:
    /private/<f>  the file with Cache-Control: private
    /cookie/<f>   the file with Set-Cookie
    /page.jpg     text/html served under an image name
    /slow/<f>     the file after `slow_seconds`
    /error/<f>    503, always
    /flaky/<f>    503 to the sidecar (User-Agent rendition/...), the file to everyone else
    /storm/<any>  one small JPEG (120x80) under any number of distinct URLs
    any path in `files` (path -> (file, Content-Type)): that file with that Content-Type, as
                  given, even when it lies (tests/e2e/hostile_e2e.py serves its corpus so)
    Every request path is logged in `seen` with its User-Agent, and every request in `requests`
    as (method, Host, path with query, headers). `hooks`: functions (handler, method, path with
    query) -> None or (status, headers, body), asked first, in order (tests/e2e/security_e2e.py
    answers per Host and redirects with them)."""

    daemon_threads = True
    # socketserver listens with a backlog of 5. Under a flood (clients through Envoy plus the
    # sidecar's fetches) a full accept queue drops SYNs, and the retransmit comes after Envoy's
    # 1 s connect timeout to the origin: a 503 that is the test origin's, not Rendition's.
    request_queue_size = 256

    def __init__(self, port, twin_of=None, tls=None):
        """`twin_of`: another Origin whose state (files, hooks, logs) this one shares: the same
        site on a second port. `tls`: make_tls()'s files, to serve https."""
        if twin_of is None:
            self.seen = []
            self.slow_seconds = 0.0
            self.files = {}
            self.requests = []
            self.hooks = []
            self.lock = threading.Lock()
        else:
            self.__dict__.update({k: getattr(twin_of, k) for k in
                                  ("seen", "files", "requests", "hooks", "lock")})
            self.twin = twin_of
        super().__init__(("127.0.0.1", port), OriginHandler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert"], tls["key"])
            # The handshake runs in the handler's thread, not in accept(): one slow client
            # cannot hold up the others.
            self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    @property
    def slow(self):
        return getattr(self, "twin", self).slow_seconds

    def handle_error(self, request, client_address):
        # A client that hangs up (the sidecar's fetch timing out), or one that does not trust
        # the test CA and drops the handshake, is not an origin error.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ssl.SSLError)):
            super().handle_error(request, client_address)


class OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET(method="POST")

    def do_GET(self, head=False, method=None):
        method = method or ("HEAD" if head else "GET")
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.seen.append((path, self.headers.get("User-Agent", "")))
            self.server.requests.append((method, self.headers.get("Host", ""), self.path,
                                         {k.lower(): v for k, v in self.headers.items()}))
        for hook in self.server.hooks:
            answer = hook(self, method, self.path)
            if answer is not None:
                status, headers, body = answer
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                return
        if method == "POST":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        extra = {"Cache-Control": "public, max-age=600"}
        name = path
        if path.startswith("/private/"):
            name, extra = "/img/" + path[len("/private/"):], {"Cache-Control": "private, max-age=60"}
        elif path.startswith("/cookie/"):
            name, extra["Set-Cookie"] = "/img/" + path[len("/cookie/"):], "session=abc"
        elif path.startswith("/slow/"):
            name = "/img/" + path[len("/slow/"):]
            time.sleep(self.server.slow)
        elif path.startswith("/error/") or (
                path.startswith("/flaky/") and self.headers.get("User-Agent", "").startswith("rendition/")):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        elif path.startswith("/flaky/"):
            name = "/img/" + path[len("/flaky/"):]
        if path == "/page.jpg":
            body, ctype = b"<html><body>not an image</body></html>", "image/jpeg"
        elif path.startswith("/storm/"):
            body, ctype = STORM, "image/jpeg"
        elif path in self.server.files:
            file, ctype = self.server.files[path]
            with open(file, "rb") as f:
                body = f.read()
        else:
            file = os.path.normpath(os.path.join(SITE, name.lstrip("/") or "index.html"))
            if not file.startswith(SITE) or not os.path.isfile(file):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with open(file, "rb") as f:
                body = f.read()
            ctype = TYPES.get(os.path.splitext(file)[1], "application/octet-stream")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"%s"' % hashlib.sha256(body).hexdigest()[:16])
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)


WEED = os.path.join(ROOT, ".tools", "seaweedfs", "bin", "weed")


class SeaweedFS:
    """A real S3 server for the shared tier's tests: SeaweedFS (`weed server -s3`, master,
    volume, filer and S3 in one process), on loopback ports of its own, data in `directory`.
    With `identities` (access key -> secret) it requires those credentials; without, it
    answers unsigned requests. `stop()` ends it (SIGTERM, SIGKILL after a grace period)."""

    def __init__(self, directory, identities=None):
        self.dir = directory
        os.makedirs(os.path.join(directory, "data"), exist_ok=True)
        self.ports = {k: free_port() for k in ("master", "volume", "filer", "s3", "master.grpc",
                                                "volume.grpc", "filer.grpc", "s3.grpc")}
        self.port = self.ports["s3"]
        self.identities = identities
        self.proc = None

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        args = [WEED, "server", f"-dir={os.path.join(self.dir, 'data')}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-master.port={self.ports['master']}",
                f"-volume.port={self.ports['volume']}", f"-filer.port={self.ports['filer']}",
                "-s3", f"-s3.port={self.port}", "-master.volumeSizeLimitMB=64",
                f"-master.port.grpc={self.ports['master.grpc']}",
                f"-volume.port.grpc={self.ports['volume.grpc']}",
                f"-filer.port.grpc={self.ports['filer.grpc']}",
                f"-s3.port.grpc={self.ports['s3.grpc']}",
                # Listeners on fixed default ports that would collide with a second instance
                # (Iceberg's 8181 is even the sidecar's default): off, and no telemetry.
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false", "-master.telemetry=false"]
        if self.identities:
            config = os.path.join(self.dir, "identities.json")
            with open(config, "w") as f:
                json.dump({"identities": [
                    {"name": key, "credentials": [{"accessKey": key, "secretKey": secret}],
                     "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
                    for key, secret in self.identities.items()]}, f)
            args.append(f"-s3.config={config}")
        log = open(os.path.join(self.dir, "weed.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

        def up():
            try:
                return request(self.port, "/")[0] in (200, 403)
            except OSError:
                return False
        wait_for(up, timeout, "SeaweedFS S3 to answer")
        return self

    def create_bucket(self, name):
        """An unsigned CreateBucket (only without identities)."""
        deadline = time.time() + 30
        while True:
            status = request(self.port, f"/{name}", method="PUT")[0]
            if status == 200 or time.time() > deadline:
                return status
            time.sleep(0.5)

    def stop(self, grace=3):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    # Unsigned object access, for tests that look into (or damage) the bucket.
    def get(self, bucket, key):
        return request(self.port, f"/{bucket}/{key}")

    def put(self, bucket, key, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("PUT", f"/{bucket}/{key}", body=body)
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def list(self, bucket, prefix):
        status, _, body = request(self.port, f"/{bucket}?list-type=2&prefix={prefix}")
        return re.findall(r"<Key>([^<]+)</Key>", body.decode()) if status == 200 else []


class Stack:
    def __init__(self, rendition_bin, envoy_bin, proactive=True, sidecar_args=(), default_origin=True,
                 https=None):
        """`https`: the sidecar fetches originals over https from a second port of the same
        origin (Envoy still proxies clients over http), trusting the test CA through
        `--origin-ca-file`. None reads RENDITION_E2E_HTTPS=1."""
        if https is None:
            https = os.environ.get("RENDITION_E2E_HTTPS") == "1"
        self.https = https
        self.trust_ca = True
        self.rendition_bin = rendition_bin
        self.sidecar_args = list(sidecar_args)
        # False: no --origin; sidecar_args map hosts (--origin-host) or name a --config
        self.default_origin = default_origin
        self.envoy_bin = envoy_bin
        self.proactive = proactive
        self.tmp = tempfile.mkdtemp(prefix="rendition-e2e-")
        self.origin_port, self.sidecar_port = free_port(), free_port()
        self.envoy_port, self.admin_port = free_port(), free_port()
        self.tls_port = free_port() if https else None
        self.tls = make_tls(os.path.join(self.tmp, "tls")) if https else None
        self.tls_origin = None
        self.sidecar = None
        self.envoy = None
        self.origin = None
        self.data_dir = os.path.join(self.tmp, "data")

    # ---- lifecycle ----
    def start(self):
        self.origin = Origin(self.origin_port)
        threading.Thread(target=self.origin.serve_forever, daemon=True).start()
        if self.https:
            self.tls_origin = Origin(self.tls_port, twin_of=self.origin, tls=self.tls)
            threading.Thread(target=self.tls_origin.serve_forever, daemon=True).start()
        self.start_sidecar()
        self.start_envoy()
        return self

    def start_sidecar(self, data_dir=None):
        if data_dir:
            self.data_dir = data_dir
        args = [self.rendition_bin, "serve", "--listen", f"127.0.0.1:{self.sidecar_port}",
                "--data-dir", self.data_dir]
        if self.default_origin:
            args += ["--origin", self.origin_url()]
        if self.https and self.trust_ca:
            args += ["--origin-ca-file", self.tls["ca"]]
        if self.proactive:
            args.append("--proactive-image-variants")
        args += self.sidecar_args
        log = open(os.path.join(self.tmp, "sidecar.log"), "ab")
        self.sidecar = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.get_sidecar("/healthz")[0] == 200, 30, "sidecar /healthz")

    def start_envoy(self):
        with open(os.path.join(ROOT, "envoy", "envoy.yaml")) as f:
            config = f.read()
        for old, new in ((10000, self.envoy_port), (9901, self.admin_port),
                         (8080, self.origin_port), (8181, self.sidecar_port)):
            config = config.replace(f"port_value: {old} ", f"port_value: {new} ")
        config = config.replace("filename: dist/rendition_filter.wasm",
                                "filename: " + os.path.join(ROOT, "dist", "rendition_filter.wasm"))
        path = os.path.join(self.tmp, "envoy.yaml")
        with open(path, "w") as f:
            f.write(config)
        log = open(os.path.join(self.tmp, "envoy.log"), "ab")
        self.envoy = subprocess.Popen(
            [self.envoy_bin, "-c", path, "--disable-hot-restart", "--concurrency", "2",
             "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.admin("/ready")[0] == 200, 60, "envoy /ready")

    def kill_sidecar(self, sig=signal.SIGKILL):
        if self.sidecar and self.sidecar.poll() is None:
            self.sidecar.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.sidecar.wait(10)
            elif sig == signal.SIGSTOP:
                # The signal is delivered asynchronously: a request sent at once could still
                # be answered. Wait until every thread of the process is stopped.
                wait_for(lambda: all_threads_stopped(self.sidecar.pid), 5, "the sidecar to stop")

    def stop(self):
        for p in (self.envoy, self.sidecar):
            if p and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        for o in (self.origin, self.tls_origin):
            if o:
                o.shutdown()
        if os.environ.get("RENDITION_E2E_KEEP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self):
        out = []
        for name in ("sidecar.log", "envoy.log"):
            p = os.path.join(self.tmp, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append(f"--- {name} (tail)\n" + f.read()[-4000:].decode("utf-8", "replace"))
        return "\n".join(out)

    # ---- HTTP ----
    def get(self, path, headers=None, method="GET"):
        return request(self.envoy_port, path, headers, method)

    def get_sidecar(self, path):
        try:
            return request(self.sidecar_port, path)
        except OSError:
            return (0, {}, b"")

    def admin(self, path):
        try:
            return request(self.admin_port, path)
        except OSError:
            return (0, {}, b"")

    def stat(self, name):
        status, _, body = self.admin("/stats?filter=" + re.escape(name) + "$")
        for line in body.decode().splitlines():
            k, _, v = line.partition(": ")
            if k == name:
                return int(v)
        return None

    def index_caught_up(self):
        """Whether the filter applied every change the sidecar's feed has. (The filter's
        `index.lag_changes` is measured against the last page it received, so it reads 0 while
        a newer change is still on its way.) `>=`: compaction may drop the newest tombstone."""
        st = self.stats()
        applied = self.stat("wasmcustom.rendition.index.applied_seq")
        return bool(st) and applied is not None and applied >= st.get("index_last_seq", 1 << 64)

    def is_hit(self, path, headers=None):
        """Whether Envoy answers `path` from a stored variant (the filter's `x-rendition`)."""
        return self.get(path, headers or AVIF_DESKTOP)[1].get("x-rendition", "").startswith("hit")

    def sidecar_log(self):
        """Everything the sidecar has logged so far, as text."""
        with open(os.path.join(self.tmp, "sidecar.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stats(self):
        """The sidecar's /stats counters, or {} while it does not answer."""
        status, _, body = self.get_sidecar("/stats")
        return json.loads(body) if status == 200 else {}

    def peak_rss(self):
        """The sidecar process's peak resident set (VmHWM), in bytes."""
        with open(f"/proc/{self.sidecar.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def host(self):
        return f"127.0.0.1:{self.envoy_port}"

    def origin_url(self, host="127.0.0.1"):
        """The base URL the sidecar fetches originals from (https on the TLS port when on)."""
        if self.https:
            return f"https://{host}:{self.tls_port}"
        return f"http://{host}:{self.origin_port}"


def all_threads_stopped(pid):
    """True when every thread of `pid` is in state T (stopped), from /proc."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        states = []
        for tid in tids:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        return bool(states) and all(st in ("T", "t") for st in states)
    except OSError:
        return False


def request(port, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


def key_of(host, path):
    """The source key id the filter and the sidecar compute (shared/src/key.rs: SHA-256/128 of
    the canonical key), for plain lower-case hosts without default ports and paths without
    queries."""
    return hashlib.sha256((host + path).encode()).hexdigest()[:32]


def wait_for(pred, seconds, what):
    """Polls `pred` until it returns something true, and returns that."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = pred()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"waited {seconds}s for {what}")


def settle(pred, seconds):
    """Polls `pred` like `wait_for`, but running out of time is not an error: returns the last
    value (false on a timeout). For a wait followed by a `check` of the same condition, whose
    message says what was found instead of a bare timeout."""
    deadline = time.time() + seconds
    while True:
        try:
            value = pred()
        except OSError:
            value = None
        if value or time.time() >= deadline:
            return value
        time.sleep(0.1)


def dimensions(body):
    """(format, width, height) of a JPEG, PNG, WebP or AVIF byte string."""
    if body[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 < len(body):
            if body[i] != 0xFF:
                i += 1
                continue
            marker = body[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", body[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", body[i + 5:i + 9])
                return "jpeg", w, h
            i += 2 + length
    if body[:8] == b"\x89PNG\r\n\x1a\n":
        w, h = struct.unpack(">II", body[16:24])
        return "png", w, h
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        chunk = body[12:16]
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", body[26:30])
            return "webp", w & 0x3FFF, h & 0x3FFF
        if chunk == b"VP8L":
            b = int.from_bytes(body[21:25], "little")
            return "webp", (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            w = int.from_bytes(body[24:27], "little") + 1
            h = int.from_bytes(body[27:30], "little") + 1
            return "webp", w, h
    if body[4:8] == b"ftyp" and b"avif" in body[8:32]:
        i = body.find(b"ispe")
        if i > 0:
            w, h = struct.unpack(">II", body[i + 8:i + 16])
            return "avif", w, h
    return "unknown", 0, 0
