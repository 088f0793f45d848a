#!/usr/bin/env python3
"""Where a hit's cost goes: the filter's decision, the hit route, or the sidecar as upstream.

    python3 benches/filter_hit_paths.py [--rematch] [--repeats 5] [--seconds 2] [path/to/rendition]

benches/filter_bench.py on the hit path (same pinning, same rotating order, the same control
rows), with three more Envoys that take a hit apart one step at a time. None of them has the
filter; the client itself sends the `x-rendition-variant` header the filter would have set
(only possible because there is no filter to remove it), for the variant the shipped row made:

  sidecar     envoy/envoy.yaml without the filter, the hit route sent straight to the plain
              `sidecar` cluster with no retry policy: Envoy proxying the variant from the
              sidecar instead of from the static origin (`none`)
  aggregate   the same with the hit route as shipped (the `sidecar_then_origin` aggregate
              cluster and its retry policy): what failing open to the origin costs
  filter-direct  envoy/envoy.yaml as shipped (the filter decides) but the hit route straight to
              `sidecar` with no retry policy
  route       envoy/envoy.yaml with benches/controls/route.wat in the filter's place: a module
              that decides nothing and makes the host calls the filter makes on a hit (sets the
              header, asks for the route match again, removes the sidecar's marker, sets
              Accept-CH), for the header value of an AVIF desktop client (slot 0x0a)

With --rematch, two more rows where the image route also sends to `sidecar_then_origin`:
`route-same` (the route control) and `route-nomatch` (the same module without its
`clear_route_cache` call). Both reach the sidecar with the header; their difference is the
second route match alone.

So, per request: sidecar - none is the upstream (the sidecar's answer against a static one),
aggregate - sidecar the fail-open routing, rendition - aggregate the filter (its decision,
the header it sets, the second route match), and filter-direct - sidecar the filter again,
without the aggregate cluster; route - aggregate is routing a hit from any module, and
rendition - route the filter's own decision.
"""

import argparse
import functools
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import filter_bench as fb  # noqa: E402
from harness import key_of  # noqa: E402  (filter_bench puts tests/e2e on the path)


def hit_route(cfg):
    for vh in fb.hcm(cfg)["route_config"]["virtual_hosts"]:
        for r in vh["routes"]:
            if r.get("name") == "rendition_hit":
                return r
    raise SystemExit("filter_hit_paths: no rendition_hit route in the config")


def straight_to_sidecar(cfg):
    route = hit_route(cfg)["route"]
    route["cluster"] = "sidecar"
    route.pop("retry_policy", None)
    return cfg


@functools.cache
def variant_header():
    """The `x-rendition-variant` value of the shipped row's hit (key of HOST + IMG, its slot)."""
    shipped = next(r for r in fb.CONTEXT["rows"] if r.name == "rendition")
    debug = fb.request(shipped.port, fb.IMG, fb.AVIF)[1].get("x-rendition", "")
    slot = next(p.split("=", 1)[1] for p in debug.split("; ") if p.startswith("variant="))
    return f"{key_of(fb.HOST, fb.IMG)}/{int(slot, 16):x}"


def client_sent_hit(row):
    return fb.IMG, dict(fb.AVIF, **{"x-rendition-variant": variant_header()})


def route_control(ports):
    cfg = fb.envoy_config("control", ports, module=fb.CONTEXT["controls"]["route"])
    # The module's configuration is the header value it sets: the AVIF desktop slot (0x0a).
    fb.wasm_filter(cfg)["typed_config"]["config"]["configuration"]["value"] = f"{key_of(fb.HOST, fb.IMG)}/a"
    return cfg


def route_everything_to_the_sidecar(cfg):
    """The image route sends to `sidecar_then_origin` as the hit route does, so a request that
    carries the routing header reaches the sidecar whether or not the route is matched again."""
    hit = hit_route(cfg)
    for vh in fb.hcm(cfg)["route_config"]["virtual_hosts"]:
        for r in vh["routes"]:
            if r.get("name") == "rendition_image":
                r["route"] = dict(hit["route"])
    return cfg


def no_rematch_control():
    """benches/controls/route.wat without its `clear_route_cache` call."""
    src = open(os.path.join(fb.CONTROLS, "route.wat")).read()
    call = next(line for line in src.splitlines() if "$call_foreign_function (i32.const 1056)" in line)
    out = os.path.join(os.path.dirname(fb.CONTEXT["controls"]["route"]), "route-norematch.wasm")
    wat = out[:-5] + ".wat"
    with open(wat, "w") as f:
        f.write(src.replace(call, ""))
    subprocess.run(["wat2wasm", wat, "-o", out], check=True)
    return out


def route_control_without_rematch(ports):
    cfg = route_everything_to_the_sidecar(route_control(ports))
    fb.set_modules(cfg, no_rematch_control())
    return cfg


def main():
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--rematch", action="store_true")
    known, rest = ap.parse_known_args()
    argv = ["--paths", "hit"] + rest
    extra = [
        ("sidecar", lambda ports: straight_to_sidecar(fb.envoy_config("none", ports)), False, {"hit": client_sent_hit}),
        ("aggregate", lambda ports: fb.envoy_config("none", ports), False, {"hit": client_sent_hit}),
        ("filter-direct", lambda ports: straight_to_sidecar(fb.envoy_config("rendition", ports)), True),
        ("route", route_control, True),
    ]
    if known.rematch:
        # The second route match alone: the same module with and without `clear_route_cache`,
        # in a config where both routes send to the sidecar, so only the match differs.
        extra += [
            ("route-same", lambda ports: route_everything_to_the_sidecar(route_control(ports)), True),
            ("route-nomatch", route_control_without_rematch, True),
        ]
    fb.main(argv, extra_rows=extra)


if __name__ == "__main__":
    main()
