#!/usr/bin/env python3
"""Checks the deployment artifacts (envoy/, sidecar/Dockerfile, .dockerignore) against the
real things they configure. One line per check, `N passed, N failed` at the end, exit 1 on
any failure.

    python3 tests/deploy/check_manifests.py [path/to/rendition]

What it checks:
  * every YAML file under envoy/ parses (all documents);
  * Kubernetes objects, the standalone files and the kustomize overlays as rendered by
    kubectl's kustomize, against the Kubernetes 1.37 JSON schemas in strict mode (unknown
    fields are errors), from the PyPI package kubernetes-validate;
  * Istio objects (WasmPlugin, EnvoyFilter) against Istio 1.29's CRD OpenAPI schemas as
    compiled by the npm package @kubernetes-models/istio (types, enums, required fields),
    plus a strict unknown-field check: the CRD schemas do not forbid unknown fields (the API
    server prunes or, with kubectl's strict field validation, rejects them), so the field
    names allowed at each level are read from the same package's TypeScript declarations;
  * the filter's JSON configurations in the real module inside the real Envoy (`envoy
    --mode validate` runs on_configure): each WasmPlugin's pluginConfig, the EnvoyFilter
    configurations and the pod Envoy config; a bad key must be rejected;
  * every filter option is present with its default (filter/src/config.rs, docs/filter.md);
  * the WasmPlugin form's shared-data claim, live: Envoy with the filter's vm_id left empty
    (as Istio leaves it) sees the index of a singleton with vm_id "", and not of one with
    vm_id "rendition";
  * the wiring between the files: module paths and mounts, ports, probes, vm_ids, cluster
    names, and docs/deploy.md's WasmPlugin overlay (rendered and validated);
  * the sidecar's ConfigMap config is accepted by the real sidecar (it has no check mode:
    it is started on a free loopback port with a temporary data dir until /healthz answers),
    the Deployment's liveness command works against it, and a bad key is refused;
  * the Dockerfiles' basics (stages, [[bin]] name, codec packages, EXPOSE and HEALTHCHECK
    equal to the k8s probe, the single plugin.wasm layer).

Needs scripts/setup.sh (installs .tools/bin/envoy, .tools/py, .tools/npm), dist/rendition_filter.wasm
(make wasm) and a built sidecar binary: argv[1], $RENDITION_BIN, or debug/rendition in
$CARGO_TARGET_DIR, ~/.cache/rendition/target or target/.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY_TOOLS = ROOT / ".tools" / "py"
NPM_TOOLS = ROOT / ".tools" / "npm"
ISTIO_PKG = NPM_TOOLS / "node_modules" / "@kubernetes-models" / "istio"
ENVOY = ROOT / ".tools" / "bin" / "envoy"
KUBECTL = PY_TOOLS / "bin" / "kubectl"
WASM = ROOT / "dist" / "rendition_filter.wasm"
K8S_VERSION = "1.37.0"
BASE_DEPLOYMENT = ROOT / "envoy" / "k8s" / "base" / "deployment.yaml"

sys.path.insert(0, str(PY_TOOLS))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from harness import free_port  # noqa: E402  (ports below the ephemeral range: see there)
try:
    import kubernetes_validate  # noqa: E402
    import yaml  # noqa: E402
except ImportError as e:  # pragma: no cover
    sys.exit(f"check_manifests: {e}: run scripts/setup.sh (installs into .tools/py)")

PASSED: list[str] = []
FAILED: list[str] = []


class CheckError(Exception):
    pass


def check(name: str, fn) -> None:
    """Runs one check; fn returns a short detail string or raises."""
    try:
        detail = fn()
        PASSED.append(name)
        print(f"ok    {name}" + (f": {detail}" if detail else ""), flush=True)
    except CheckError as e:
        FAILED.append(name)
        print(f"FAIL  {name}: {e}", flush=True)
    except Exception:  # a bug in the check itself still counts as a failure
        FAILED.append(name)
        print(f"FAIL  {name}: {traceback.format_exc().strip().splitlines()[-1]}", flush=True)


def fail(msg: str) -> None:
    raise CheckError(msg)


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# ------------------------------------------------------------------------------ loading

YAML_FILES = sorted(p for p in (ROOT / "envoy").rglob("*") if p.suffix in (".yaml", ".yml"))
DOCS: dict[Path, list] = {}


def load_all() -> str:
    n = 0
    for p in YAML_FILES:
        try:
            DOCS[p] = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        except yaml.YAMLError as e:
            fail(f"{rel(p)}: {e}")
        n += len(DOCS[p])
    return f"{len(YAML_FILES)} files, {n} documents"


def objects(kind: str | None = None):
    for p, docs in DOCS.items():
        for d in docs:
            if isinstance(d, dict) and "apiVersion" in d and "kind" in d:
                if kind is None or d["kind"] == kind:
                    yield p, d


def one(kind: str, name: str, path: Path | None = None) -> dict:
    found = [d for p, d in objects(kind) if d["metadata"]["name"] == name and (path is None or p == path)]
    if len(found) != 1:
        fail(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def is_istio(obj: dict) -> bool:
    return obj["apiVersion"].split("/")[0].endswith("istio.io")


def is_kustomize(obj: dict) -> bool:
    return obj["apiVersion"].startswith("kustomize.config.k8s.io/")


def patch_files() -> set[Path]:
    """Files that kustomizations use as patches: partial objects, checked once rendered."""
    out = set()
    for p, d in objects("Kustomization"):
        for patch in d.get("patches", []) or []:
            if "path" in patch:
                out.add((p.parent / patch["path"]).resolve())
    return out


def envoy_config_from_configmap() -> dict:
    cm = one("ConfigMap", "rendition-envoy")
    return yaml.safe_load(cm["data"]["envoy.yaml"])


# ------------------------------------------------------------------------------ Kubernetes


def k8s_validate(obj: dict, where: str) -> None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "/".join(str(x) for x in e.path) if getattr(e, "path", None) else ""
        fail(f"{where}: {obj['kind']} {obj['metadata'].get('name')}: {path}: {e.message}")
    except Exception as e:  # unknown kind/version and the like
        fail(f"{where}: {obj['kind']} {obj['metadata'].get('name')}: {e}")


def check_standalone_k8s() -> str:
    skip = patch_files()
    n = 0
    for p, obj in objects():
        if is_istio(obj) or is_kustomize(obj) or p.resolve() in skip:
            continue
        k8s_validate(obj, rel(p))
        n += 1
    return f"{n} objects valid against the Kubernetes {K8S_VERSION} schemas (strict)"


def k8s_negative() -> str:
    """The schema check is not vacuous: a typo'd field and a wrong type are refused."""
    dep = copy.deepcopy(one("Deployment", "site", BASE_DEPLOYMENT))
    dep["spec"]["template"]["spec"]["containers"][1]["livenesProbe"] = {}
    try:
        k8s_validate(dep, "negative")
    except CheckError:
        pass
    else:
        fail("a Deployment with `livenesProbe` passed the strict schema")
    dep = copy.deepcopy(one("Deployment", "site", BASE_DEPLOYMENT))
    dep["spec"]["replicas"] = "two"
    try:
        k8s_validate(dep, "negative")
    except CheckError:
        return "unknown field and wrong type refused"
    fail("a Deployment with replicas: \"two\" passed the schema")


RENDERED: dict[str, list] = {}


def render_overlay(overlay: str) -> list:
    """kubectl kustomize on a copy of envoy/ with the built module where the base wants it."""
    if overlay in RENDERED:
        return RENDERED[overlay]
    if not KUBECTL.exists():
        fail(f"{KUBECTL} missing: run scripts/setup.sh")
    if not WASM.exists():
        fail(f"{rel(WASM)} missing: run make wasm")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "envoy", Path(tmp) / "envoy", ignore=shutil.ignore_patterns("*.wasm"))
        shutil.copy(WASM, Path(tmp) / "envoy" / "k8s" / "base" / "rendition_filter.wasm")
        r = subprocess.run([str(KUBECTL), "kustomize", str(Path(tmp) / overlay)],
                           capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"kubectl kustomize {overlay}: {r.stderr.strip()}")
    RENDERED[overlay] = [d for d in yaml.safe_load_all(r.stdout) if d]
    return RENDERED[overlay]


def check_overlay(overlay: str, want: set[str]) -> str:
    docs = render_overlay(overlay)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    n = 0
    for d in docs:
        if is_istio(d):
            continue
        k8s_validate(d, overlay)
        n += 1
    have = {d["kind"] for d in docs}
    if not want <= have:
        fail(f"{overlay}: missing kinds {sorted(want - have)}")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    cms = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    for v in vols.values():
        if "configMap" in v and v["configMap"]["name"] not in cms:
            fail(f"{overlay}: volume {v['name']} names ConfigMap {v['configMap']['name']}, not rendered")
    wasm_cm = next(d for d in docs if d["metadata"]["name"].startswith("rendition-filter-wasm"))
    if "rendition_filter.wasm" not in wasm_cm.get("binaryData", {}):
        fail(f"{overlay}: the module is not in the ConfigMap's binaryData")
    return f"{len(docs)} objects ({', '.join(kinds)}); {n} Kubernetes objects valid (strict)"


def check_envoy_overlay_wiring() -> str:
    docs = render_overlay("envoy/k8s/envoy")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    svc = next(d for d in docs if d["kind"] == "Service")
    spec = dep["spec"]["template"]["spec"]
    envoy = next(c for c in spec["containers"] if c["name"] == "envoy")
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    target = svc["spec"]["ports"][0]["targetPort"]
    cfg = envoy_config_from_configmap()
    listeners = {l["name"]: l["address"]["socket_address"] for l in cfg["static_resources"]["listeners"]}
    if ports.get(target) != listeners["ingress"]["port_value"]:
        fail(f"Service targetPort {target} -> {ports.get(target)}, Envoy listens on {listeners['ingress']}")
    if listeners["ingress"]["address"] != "0.0.0.0":
        fail("the pod's Envoy listener must bind 0.0.0.0 to be reachable from the Service")
    if envoy["readinessProbe"]["httpGet"]["port"] not in ports or ports[envoy["readinessProbe"]["httpGet"]["port"]] != listeners["health"]["port_value"]:
        fail("Envoy's readiness probe does not target the health listener")
    mounts = {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}
    wasm_paths = set(wasm_filenames(cfg))
    if wasm_paths != {mounts["rendition-wasm"] + "/rendition_filter.wasm"}:
        fail(f"Envoy config loads {wasm_paths}, the module is mounted at {mounts['rendition-wasm']}")
    if "/etc/envoy/envoy.yaml" not in envoy["args"] or mounts["envoy-config"] != "/etc/envoy/envoy.yaml":
        fail("Envoy's -c path and the config mount disagree")
    np_ports = {p["port"] for d in docs if d["kind"] == "NetworkPolicy" for r in d["spec"]["ingress"] for p in r["ports"]}
    if np_ports != {listeners["ingress"]["port_value"]}:
        fail(f"NetworkPolicy admits {np_ports}, Envoy listens on {listeners['ingress']['port_value']}")
    return f"Service -> {target} ({ports[target]}) = Envoy listener; module mounted where the config loads it"


def check_istio_overlay_wiring() -> str:
    docs = render_overlay("envoy/istio")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    tmpl = dep["spec"]["template"]
    ann = tmpl["metadata"]["annotations"]
    pc = yaml.safe_load(ann["proxy.istio.io/config"])
    if pc.get("proxyMetadata", {}).get("BOOTSTRAP_XDS_AGENT") != "true":
        fail("BOOTSTRAP_XDS_AGENT=true missing: istiod would not apply the BOOTSTRAP patch")
    mounts = json.loads(ann["sidecar.istio.io/userVolumeMount"])
    vols = {v["name"] for v in tmpl["spec"]["volumes"]}
    mount = next(m for m in mounts if m["name"] == "rendition-wasm")
    if mount["name"] not in vols:
        fail("userVolumeMount names a volume the pod does not have")
    want = mount["mountPath"] + "/rendition_filter.wasm"
    paths = set()
    for d in docs:
        if d["kind"] == "EnvoyFilter":
            paths |= set(wasm_filenames(d))
    file_url = one("WasmPlugin", "rendition", ROOT / "envoy/istio/wasmplugin-file.yaml")["spec"]["url"]
    paths.add(file_url.removeprefix("file://"))
    if paths != {want}:
        fail(f"module paths {sorted(paths)} != mounted {want}")
    svc = next(d for d in docs if d["kind"] == "Service")
    sp = svc["spec"]["ports"][0]
    app = next(c for c in tmpl["spec"]["containers"] if c["name"] == "app")
    app_port = next(p["containerPort"] for p in app["ports"] if p["name"] == sp["targetPort"])
    if not (sp["port"] == app_port == 8080 and sp["name"].startswith("http")):
        fail(f"Service port {sp} must be http, port = targetPort = 8080 (the EnvoyFilters match 8080)")
    return f"BOOTSTRAP_XDS_AGENT on, module at {want} for filter, singleton and file:// WasmPlugin"


# ------------------------------------------------------------------------------ Istio

NODE_VALIDATE = r"""
import { readFileSync } from "node:fs";
const [pkg] = process.argv.slice(1);
const objs = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const o of objs) {
  const [group, version] = o.apiVersion.split("/");
  try {
    const mod = await import(`${pkg}/${group}/${version}/${o.kind}.js`);
    new mod[o.kind](o).validate();
    out.push({ ok: true });
  } catch (e) {
    out.push({ ok: false, error: String(e && e.message || e) });
  }
}
process.stdout.write(JSON.stringify(out));
"""


def node_validate(objs: list[dict]) -> list[dict]:
    if not (ISTIO_PKG / "package.json").exists():
        fail(f"{ISTIO_PKG} missing: run scripts/setup.sh")
    node = shutil.which("node")
    if not node:
        fail("node missing: run scripts/setup.sh")
    r = subprocess.run([node, "--input-type=module", "-e", NODE_VALIDATE, "--", str(ISTIO_PKG)],
                       input=json.dumps(objs), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"node: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


# Allowed field names per level, from the package's TypeScript declarations of the same CRDs.
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[A-Za-z_$][\w$.]*|\S')
OPEN = "open"  # any keys (free-form object, map, or a type we do not descend into)


def dts_tree(dts: Path, iface: str):
    text = re.sub(r"/\*.*?\*/", "", dts.read_text(), flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    toks = TOKEN.findall(text)
    i = toks.index(iface)
    while toks[i] != "{":
        i += 1
    tree, _ = _dts_object(toks, i)
    return tree


def _dts_object(toks, i):
    """toks[i] == '{'; returns ({name: subtree} or OPEN, index after the matching '}')."""
    i += 1
    fields: dict = {}
    open_ = False
    while toks[i] != "}":
        if toks[i] == "[":  # index signature: [key: string]: T;
            open_ = True
            depth = 0
            while not (toks[i] == ";" and depth == 0):
                depth += toks[i] in "{(<[" and len(toks[i]) == 1
                depth -= toks[i] in "})>]" and len(toks[i]) == 1
                i += 1
            i += 1
            continue
        name = toks[i].strip('"')
        i += 1
        if toks[i] == "?":
            i += 1
        assert toks[i] == ":", toks[i - 3:i + 3]
        i += 1
        sub, i = _dts_type(toks, i)
        fields[name] = sub
    if open_ or not fields:
        return OPEN, i + 1
    return fields, i + 1


def _dts_type(toks, i):
    """Parses a member's type up to its ';'. The subtree is the first object literal at the
    top level or inside Array<...>; the rest (`& (Exclude<...>)` oneOf helpers) is skipped."""
    sub = None
    depth = 0
    while not (toks[i] == ";" and depth == 0):
        t = toks[i]
        if t == "{" and sub is None and depth <= 1 and (depth == 0 or toks[i - 1] == "<"):
            sub, i = _dts_object(toks, i)
            continue
        if t in ("{", "(", "<", "["):
            depth += 1
        elif t in ("}", ")", ">", "]"):
            depth -= 1
        i += 1
    return (sub if sub is not None else None), i + 1


def unknown_fields(value, tree, path="") -> list[str]:
    if tree is None or tree == OPEN:
        return []
    out = []
    if isinstance(value, list):
        for n, v in enumerate(value):
            out += unknown_fields(v, tree, f"{path}[{n}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in tree:
                out.append(f"{path}.{k}".lstrip("."))
            else:
                out += unknown_fields(v, tree[k], f"{path}.{k}")
    return out


def istio_tree(obj: dict):
    group, version = obj["apiVersion"].split("/")
    return dts_tree(ISTIO_PKG / group / version / f"{obj['kind']}.d.ts", f"I{obj['kind']}")


def istio_errors(objs: list[dict]) -> list[str]:
    errs = []
    for o, res in zip(objs, node_validate(objs)):
        name = f"{o['kind']} {o['metadata']['name']}"
        if not res["ok"]:
            errs.append(f"{name}: {res['error']}")
        for f in unknown_fields(o, istio_tree(o)):
            errs.append(f"{name}: unknown field {f}")
    return errs


def check_istio_schema() -> str:
    objs = [o for _, o in objects() if is_istio(o)]
    errs = istio_errors(objs)
    if errs:
        fail("; ".join(errs))
    version = json.loads((ISTIO_PKG / "package.json").read_text())["version"]
    kinds = sorted({o["kind"] for o in objs})
    return f"{len(objs)} objects ({', '.join(kinds)}) valid against @kubernetes-models/istio {version} (+ unknown-field check)"


def istio_negative() -> str:
    wp = copy.deepcopy(one("WasmPlugin", "rendition", ROOT / "envoy/istio/wasmplugin-oci.yaml"))
    wp["spec"]["phase"] = "AUTHX"
    ef = copy.deepcopy(one("EnvoyFilter", "rendition-filter"))
    ef["spec"]["configPatches"][0]["patch"]["operation"] = "INSERT_SOMEWHERE"
    typo = copy.deepcopy(one("WasmPlugin", "rendition", ROOT / "envoy/istio/wasmplugin-oci.yaml"))
    typo["spec"]["failStratgy"] = typo["spec"].pop("failStrategy")
    ef_typo = copy.deepcopy(one("EnvoyFilter", "rendition-hit-route"))
    ef_typo["spec"]["configPatches"][0]["match"]["routeConfiguration"]["vhost"]["rout"] = {}
    results = node_validate([wp, ef])
    if any(r["ok"] for r in results):
        fail(f"bad enum values passed the CRD schema: {results}")
    if not unknown_fields(typo, istio_tree(typo)) or not unknown_fields(ef_typo, istio_tree(ef_typo)):
        fail("misspelled fields passed the unknown-field check")
    return "bad enums refused by the schema, misspelled fields by the field check"


# ------------------------------------------------------------------------------ filter config


def wasm_filenames(obj) -> list[str]:
    out = []
    if isinstance(obj, dict):
        if "filename" in obj and str(obj["filename"]).endswith(".wasm"):
            out.append(obj["filename"])
        for v in obj.values():
            out += wasm_filenames(v)
    elif isinstance(obj, list):
        for v in obj:
            out += wasm_filenames(v)
    return out


def set_wasm_filename(obj, path: str):
    if isinstance(obj, dict):
        if "filename" in obj and str(obj["filename"]).endswith(".wasm"):
            obj["filename"] = path
        for v in obj.values():
            set_wasm_filename(v, path)
    elif isinstance(obj, list):
        for v in obj:
            set_wasm_filename(v, path)


def demo_config() -> dict:
    cfg = yaml.safe_load((ROOT / "envoy" / "envoy.yaml").read_text())
    set_wasm_filename(cfg, str(WASM))
    return cfg


def http_wasm(cfg: dict) -> dict:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm")["typed_config"]["config"]


def singleton(cfg: dict) -> dict:
    return cfg["bootstrap_extensions"][0]["typed_config"]["config"]


def envoy_validate(cfg: dict) -> tuple[bool, str]:
    if not ENVOY.exists():
        fail(f"{ENVOY} missing: run scripts/setup.sh")
    if not WASM.exists():
        fail(f"{rel(WASM)} missing: run make wasm")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(cfg, f)
    try:
        r = subprocess.run([str(ENVOY), "--mode", "validate", "-c", f.name, "--log-level", "warn"],
                           capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(f.name)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def with_filter_json(value: str) -> dict:
    """envoy/envoy.yaml with the HTTP filter's configuration replaced. The module parses
    either role's configuration in on_configure, and validate mode runs on_configure for
    the HTTP filter only (not for bootstrap singletons), so index_sync configurations are
    checked in the filter's slot too."""
    cfg = demo_config()
    http_wasm(cfg)["configuration"]["value"] = value
    return cfg


def envoy_error(out: str) -> str:
    """The line of Envoy's log that says why: the filter's own `configuration: ...` error
    (it names the key) when there is one, else the last line."""
    lines = out.splitlines()
    return next((l[l.index("configuration:"):] for l in lines if "configuration:" in l),
                lines[-1] if lines else "")


def must_accept(value: str, what: str) -> None:
    ok, out = envoy_validate(with_filter_json(value))
    if not ok:
        fail(f"{what} refused by the filter in Envoy: {envoy_error(out)}")


def wasmplugins() -> list[tuple[Path, dict]]:
    return list(objects("WasmPlugin"))


def plugin_json(wp: dict) -> str:
    return json.dumps(wp["spec"]["pluginConfig"], separators=(",", ":"))


def check_pluginconfig_in_envoy() -> str:
    seen = {}
    for p, wp in wasmplugins():
        seen.setdefault(plugin_json(wp), []).append(rel(p))
    for value, files in seen.items():
        must_accept(value, f"pluginConfig of {', '.join(files)}")
    return f"{len(wasmplugins())} pluginConfigs ({len(seen)} distinct) accepted by on_configure"


def check_bad_key_rejected() -> str:
    _, wp = wasmplugins()[0]
    bad = dict(wp["spec"]["pluginConfig"], debug_headr=False)
    ok, out = envoy_validate(with_filter_json(json.dumps(bad)))
    if ok:
        fail("a pluginConfig with `debug_headr` was accepted: the check above proves nothing")
    if "debug_headr" not in out:
        fail("refused, but Envoy's log does not name the key")
    bad_sync = '{"index_sync": {"bukets": 65536}}'
    ok, out = envoy_validate(with_filter_json(bad_sync))
    if ok or "bukets" not in out:
        fail("an index_sync configuration with `bukets` was not refused by name")
    return "`debug_headr` and index_sync `bukets` refused, the log names them"


def ef_filter_json() -> str:
    ef = one("EnvoyFilter", "rendition-filter")
    return ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]["configuration"]["value"]


def ef_sync_json() -> str:
    ef = one("EnvoyFilter", "rendition-index-sync")
    ext = ef["spec"]["configPatches"][0]["patch"]["value"]["bootstrap_extensions"][0]
    return ext["typed_config"]["config"]["configuration"]["value"]


def demo_image_regex() -> str:
    routes = hcm_of(demo_config())["route_config"]["virtual_hosts"][0]["routes"]
    return next(r["match"]["safe_regex"]["regex"] for r in routes if r.get("name") == "rendition_image")


def hcm_of(cfg: dict) -> dict:
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def check_envoyfilter_configs_in_envoy() -> str:
    must_accept(ef_filter_json(), "EnvoyFilter rendition-filter configuration")
    must_accept(ef_sync_json(), "EnvoyFilter rendition-index-sync configuration")
    # The patches, put where Istio puts them, form a valid Envoy config around the module.
    cfg = demo_config()
    sync_patch = one("EnvoyFilter", "rendition-index-sync")["spec"]["configPatches"][0]["patch"]["value"]
    cfg["bootstrap_extensions"] = copy.deepcopy(sync_patch["bootstrap_extensions"])
    filt = copy.deepcopy(one("EnvoyFilter", "rendition-filter")["spec"]["configPatches"][0]["patch"]["value"])
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [filt] + [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.wasm"]
    clusters = [c["patch"]["value"] for c in one("EnvoyFilter", "rendition-clusters")["spec"]["configPatches"]]
    cfg["static_resources"]["clusters"] = copy.deepcopy(clusters)
    routes = [p["patch"]["value"] for p in one("EnvoyFilter", "rendition-hit-route")["spec"]["configPatches"]]
    # Scoped like envoy/envoy.yaml: the filter off in the chain, on in the two image routes
    # (by its name in the chain), which match the shipped config's image paths.
    if not filt.get("disabled"):
        fail("EnvoyFilter rendition-filter: the filter must be `disabled: true` (the image routes enable it)")
    shipped_regex = demo_image_regex()
    for r in routes:
        if filt["name"] not in r.get("typed_per_filter_config", {}):
            fail(f"EnvoyFilter route {r['name']}: typed_per_filter_config must enable {filt['name']!r}")
        if r["match"].get("safe_regex", {}).get("regex") != shipped_regex:
            fail(f"EnvoyFilter route {r['name']}: image paths differ from envoy/envoy.yaml's {shipped_regex!r}")
    names = {r["name"] for r in routes}
    vh = hcm["route_config"]["virtual_hosts"][0]
    vh["routes"] = copy.deepcopy(routes) + [r for r in vh["routes"] if r.get("name") not in names]
    set_wasm_filename(cfg, str(WASM))
    ok, out = envoy_validate(cfg)
    if not ok:
        fail(f"the EnvoyFilter patches as an Envoy config: {envoy_error(out)}")
    return ("filter and index_sync JSON accepted; the patched values form a valid Envoy 1.40 config; "
            "the filter is disabled in the chain and enabled on the two image routes")


def check_pod_envoy_config() -> str:
    cfg = envoy_config_from_configmap()
    set_wasm_filename(cfg, str(WASM))
    ok, out = envoy_validate(cfg)
    if not ok:
        fail(f"envoy-config.yaml: {envoy_error(out)}")
    must_accept(http_wasm(cfg)["configuration"]["value"], "pod filter configuration")
    must_accept(singleton(cfg)["configuration"]["value"], "pod index_sync configuration")
    return "envoy/k8s/envoy/envoy-config.yaml valid in Envoy 1.40 with the real module"


# Every option, with its default: the Rust struct, docs/filter.md's tables, the manifests.


def rust_fields(struct: str) -> list[str]:
    src = (ROOT / "filter" / "src" / "config.rs").read_text()
    body = re.search(rf"pub struct {struct} \{{(.*?)\n\}}", src, re.S).group(1)
    return re.findall(r"^\s*pub (\w+):", body, re.M)


def doc_defaults(after_heading: str, first_col_prefix: str = "") -> dict:
    text = (ROOT / "docs" / "filter.md").read_text()
    section = text[text.index(after_heading):]
    rows = {}
    started = False
    for line in section.splitlines():
        m = re.match(r"\| `(\w+)` \| `(.+?)` \|", line)
        if m:
            started = True
            rows[m.group(1)] = json.loads(m.group(2))
        elif started and not line.startswith("|"):
            break
    return rows


def check_every_option() -> str:
    filter_fields = rust_fields("FilterConfig")
    sync_fields = rust_fields("SyncConfig")
    docs_filter = doc_defaults("The filter (`configuration` of `envoy.filters.http.wasm`")
    docs_sync = doc_defaults("The sync (`configuration` of the bootstrap service")
    if set(docs_filter) != set(filter_fields) or set(docs_sync) != set(sync_fields):
        fail("docs/filter.md's tables and filter/src/config.rs disagree on the keys")
    configs = {rel(p): wp["spec"]["pluginConfig"] for p, wp in wasmplugins()}
    configs["envoyfilter.yaml rendition-filter"] = json.loads(ef_filter_json())
    for where, conf in configs.items():
        if list(conf) != filter_fields:
            fail(f"{where}: keys {list(conf)} != FilterConfig fields {filter_fields} (all, in order)")
        for k, v in conf.items():
            if v != docs_filter[k]:
                fail(f"{where}: {k} = {v!r}, default is {docs_filter[k]!r}")
    sync = json.loads(ef_sync_json())["index_sync"]
    if list(sync) != sync_fields or any(sync[k] != docs_sync[k] for k in sync):
        fail(f"rendition-index-sync: {sync} is not every SyncConfig field with its default")
    return f"{len(filter_fields)} filter options and {len(sync_fields)} index_sync options, all with defaults"


def check_istio_wiring() -> str:
    ef = one("EnvoyFilter", "rendition-filter")["spec"]["configPatches"][0]
    sync = one("EnvoyFilter", "rendition-index-sync")["spec"]["configPatches"][0]
    fvm = ef["patch"]["value"]["typed_config"]["config"]["vm_config"]["vm_id"]
    ext = sync["patch"]["value"]["bootstrap_extensions"][0]["typed_config"]
    svm = ext["config"]["vm_config"]["vm_id"]
    if fvm != svm or not fvm:
        fail(f"filter vm_id {fvm!r} and singleton vm_id {svm!r} must be equal (shared data is per vm_id)")
    if not ext.get("singleton") or sync["patch"]["operation"] != "MERGE":
        fail("the index sync must be a singleton WasmService, patched with MERGE")
    clusters = {c["patch"]["value"]["name"]: c for c in one("EnvoyFilter", "rendition-clusters")["spec"]["configPatches"]}
    for c in clusters.values():
        if c["match"].get("context") not in ("SIDECAR_INBOUND", "SIDECAR_OUTBOUND"):
            fail(f"cluster {c['patch']['value']['name']}: context ANY would add it twice")
    agg = clusters["sidecar_then_origin"]["patch"]["value"]["cluster_type"]["typed_config"]["clusters"]
    if not set(agg) <= set(clusters):
        fail(f"aggregate cluster references {agg}, added: {sorted(clusters)}")
    route = one("EnvoyFilter", "rendition-hit-route")["spec"]["configPatches"][0]
    if route["patch"]["value"]["route"]["cluster"] not in clusters:
        fail("the hit route's cluster is not added")
    for conf in [json.loads(ef_filter_json()), json.loads(ef_sync_json())["index_sync"]] + [wp["spec"]["pluginConfig"] for _, wp in wasmplugins()]:
        if conf["sidecar_cluster"] not in clusters:
            fail(f"sidecar_cluster {conf['sidecar_cluster']!r} is not an added cluster")
    port = ef["match"]["listener"]["portNumber"]
    if route["match"]["routeConfiguration"]["portNumber"] != port:
        fail("the filter and the hit route match different ports")
    for p, wp in wasmplugins():
        s = wp["spec"]
        if s.get("failStrategy") != "FAIL_OPEN" or s.get("phase") != "AUTHN":
            fail(f"{rel(p)}: failStrategy FAIL_OPEN and phase AUTHN expected")
        if [x["number"] for m in s["match"] for x in m["ports"]] != [port]:
            fail(f"{rel(p)}: match ports differ from the EnvoyFilters' {port}")
        if s["selector"]["matchLabels"] != ef_selector():
            fail(f"{rel(p)}: selector differs from the EnvoyFilters'")
    urls = sorted(wp["spec"]["url"].split(":")[0] for _, wp in wasmplugins())
    if urls != ["file", "oci"]:
        fail(f"want one oci:// and one file:// WasmPlugin, have {urls}")
    return f"vm_id {fvm!r} shared; clusters {sorted(clusters)}; filter, route and WasmPlugins on port {port}"


def check_wasmplugin_overlay_doc() -> str:
    """docs/deploy.md's kustomization for the WasmPlugin form, rendered against this tree:
    the filter EnvoyFilter gone, the singleton on vm_id "", the WasmPlugin in, all valid."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S)
              if "kind: Kustomization" in b and "wasmplugin-oci.yaml" in b]
    if len(blocks) != 1:
        fail(f"docs/deploy.md: want one yaml Kustomization block using wasmplugin-oci.yaml, found {len(blocks)}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "envoy", Path(tmp) / "envoy", ignore=shutil.ignore_patterns("*.wasm"))
        shutil.copy(WASM, Path(tmp) / "envoy" / "k8s" / "base" / "rendition_filter.wasm")
        overlay = Path(tmp) / "rendition-wasmplugin"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(blocks[0])
        shutil.copy(ROOT / "envoy" / "istio" / "wasmplugin-oci.yaml", overlay)
        r = subprocess.run([str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"kubectl kustomize: {r.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    if ("EnvoyFilter", "rendition-filter") in names or ("WasmPlugin", "rendition") not in names:
        fail(f"rendered {sorted(names)}: want the WasmPlugin instead of EnvoyFilter rendition-filter")
    sync = next(d for d in docs if d["metadata"]["name"] == "rendition-index-sync")
    vm_id = sync["spec"]["configPatches"][0]["patch"]["value"]["bootstrap_extensions"][0]["typed_config"]["config"]["vm_config"]["vm_id"]
    if vm_id != "":
        fail(f"the singleton's vm_id is {vm_id!r}; Istio leaves the WasmPlugin's empty")
    for d in docs:
        if not is_istio(d):
            k8s_validate(d, "docs/deploy.md overlay")
    errs = istio_errors([d for d in docs if is_istio(d)])
    if errs:
        fail("; ".join(errs))
    return f"{len(docs)} objects: WasmPlugin in, rendition-filter out, singleton vm_id \"\", all valid"


def ef_selector() -> dict:
    sels = {json.dumps(e["spec"]["workloadSelector"]["labels"], sort_keys=True) for _, e in objects("EnvoyFilter")}
    if len(sels) != 1:
        fail(f"EnvoyFilters select different workloads: {sels}")
    return json.loads(sels.pop())


# ------------------------------------------------------------------------------ sidecar + live Envoy


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def sidecar_bin() -> Path:
    cands = []
    if len(sys.argv) > 1:
        cands.append(Path(sys.argv[1]))
    if os.environ.get("RENDITION_BIN"):
        cands.append(Path(os.environ["RENDITION_BIN"]))
    if os.environ.get("CARGO_TARGET_DIR"):
        cands.append(Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "rendition")
    cands += [Path.home() / ".cache/rendition/target/debug/rendition", ROOT / "target/debug/rendition"]
    for c in cands:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    fail(f"no sidecar binary (tried {', '.join(map(str, cands))}): build it or pass its path")


class Sidecar:
    """The real sidecar with the ConfigMap's file; only listen and data_dir are overridden
    (flags win over the file), so every other value is the file's."""

    def __init__(self, config_text: str):
        self.dir = tempfile.mkdtemp(prefix="rendition-deploy-")
        self.config = Path(self.dir) / "rendition.toml"
        self.config.write_text(config_text)
        self.port = free_port()
        self.log = open(Path(self.dir) / "sidecar.log", "w+")
        self.proc = subprocess.Popen(
            [str(sidecar_bin()), "serve", "--config", str(self.config),
             "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(Path(self.dir) / "data")],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})

    def wait_healthy(self, seconds: float = 30) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if self.proc.poll() is not None:
                fail(f"sidecar exited {self.proc.returncode}: {self.output()[-400:]}")
            try:
                if http_get(f"http://127.0.0.1:{self.port}/healthz", 1)[0] == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.1)
        fail("sidecar: no 200 from /healthz in 30 s")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


SIDECAR: list[Sidecar] = []


def configmap_toml() -> str:
    return one("ConfigMap", "rendition-sidecar")["data"]["rendition.toml"]


def check_sidecar_accepts_configmap() -> str:
    text = configmap_toml()
    tomllib.loads(text)  # a syntax error here gives the clearer message
    sc = Sidecar(text)
    SIDECAR.append(sc)
    took = sc.wait_healthy()
    return f"`rendition serve --config` with the ConfigMap's file answers /healthz after {took:.1f} s"


def check_probe_against_sidecar() -> str:
    """The Deployment's liveness command, pointed at the test's sidecar, succeeds; and fails
    once nothing listens (so it can notice a dead sidecar)."""
    if not SIDECAR or SIDECAR[0].proc.poll() is not None:
        fail("needs the running sidecar of the check before")
    cmd, port = sidecar_probe()
    live = cmd[:-1] + [cmd[-1].replace(f"/127.0.0.1/{port}", f"/127.0.0.1/{SIDECAR[0].port}")]
    r = subprocess.run(live, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        fail(f"probe against the running sidecar: exit {r.returncode} {r.stderr.strip()}")
    dead = cmd[:-1] + [cmd[-1].replace(f"/127.0.0.1/{port}", f"/127.0.0.1/{free_port()}")]
    if subprocess.run(dead, capture_output=True, timeout=10).returncode == 0:
        fail("the probe succeeds with nothing listening")
    return "exit 0 against the sidecar, non-zero with nothing listening"


def check_sidecar_refuses_bad_key() -> str:
    sc = Sidecar(configmap_toml() + "\ncache_sise_bytes = 5\n")
    try:
        code = sc.proc.wait(30)
        out = sc.output()
    finally:
        sc.stop()
    if code != 2 or "cache_sise_bytes" not in out:
        fail(f"a config with `cache_sise_bytes` gave exit {code}: {out[-300:]}")
    return "exit 2 naming `cache_sise_bytes`"


def sidecar_probe() -> tuple[list[str], int]:
    """The rendition container's liveness probe command and the port it connects to."""
    dep = one("Deployment", "site", BASE_DEPLOYMENT)
    rc = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "rendition")
    cmd = rc["livenessProbe"]["exec"]["command"]
    m = re.search(r"/dev/tcp/127\.0\.0\.1/(\d+)\b.*GET /healthz ", cmd[-1])
    if not m:
        fail(f"the liveness probe {cmd} does not GET /healthz on 127.0.0.1")
    return cmd, int(m.group(1))


def check_configmap_matches_pod() -> str:
    conf = tomllib.loads(configmap_toml())
    dep = one("Deployment", "site", BASE_DEPLOYMENT)
    spec = dep["spec"]["template"]["spec"]
    rc = next(c for c in spec["containers"] if c["name"] == "rendition")
    app = next(c for c in spec["containers"] if c["name"] == "app")
    host, port = conf["listen"].rsplit(":", 1)
    _, probe_port = sidecar_probe()
    if host != "127.0.0.1" or int(port) != probe_port:
        fail(f"listen {conf['listen']} vs the probe's 127.0.0.1:{probe_port}: keep the sidecar on the pod's loopback")
    if rc.get("ports"):
        fail("the sidecar declares container ports, but it listens on loopback only")
    mounts = {m["name"]: m["mountPath"] for m in rc["volumeMounts"]}
    if conf["data_dir"] != mounts["rendition-data"]:
        fail(f"data_dir {conf['data_dir']} is not the data volume ({mounts['rendition-data']})")
    cm_mount = mounts["rendition-config"]
    if rc["args"] != ["--config", f"{cm_mount}/rendition.toml"]:
        fail(f"args {rc['args']} do not point at the mounted ConfigMap")
    app_port = app["ports"][0]["containerPort"]
    if conf["origins"]["default"] != f"http://127.0.0.1:{app_port}":
        fail(f"origins.default {conf['origins']['default']} is not the app on the pod's loopback")
    pod_envoy = envoy_config_from_configmap()
    endpoints = {c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                 for c in pod_envoy["static_resources"]["clusters"] if "load_assignment" in c}
    if endpoints["sidecar"]["port_value"] != int(port) or endpoints["origin"]["port_value"] != app_port:
        fail(f"pod Envoy clusters {endpoints} vs sidecar {port} / app {app_port}")
    ef_clusters = {c["patch"]["value"]["name"]: c["patch"]["value"] for c in one("EnvoyFilter", "rendition-clusters")["spec"]["configPatches"]}
    ef_sidecar = ef_clusters["sidecar"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    if ef_sidecar["port_value"] != int(port):
        fail("the Istio sidecar cluster does not point at the sidecar's port")
    filt = json.loads(ef_filter_json())
    if filt["max_source_bytes"] != conf["limits"]["max_source_bytes"]:
        fail("the filter's max_source_bytes differs from the sidecar's limits.max_source_bytes")
    return f"listen {conf['listen']} = probe; data_dir on the volume; origin = app :{app_port}; proxies -> :{port}"


class LiveEnvoy:
    def __init__(self, cfg: dict):
        self.admin, self.listen = free_port(), free_port()
        cfg["admin"]["address"]["socket_address"]["port_value"] = self.admin
        cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = self.listen
        self.dir = tempfile.mkdtemp(prefix="rendition-deploy-envoy-")
        path = Path(self.dir) / "envoy.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.log = open(Path(self.dir) / "envoy.log", "w")
        self.proc = subprocess.Popen([str(ENVOY), "-c", str(path), "--disable-hot-restart",
                                      "--concurrency", "1", "--log-level", "warn"],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def stats(self) -> dict:
        _, body = http_get(f"http://127.0.0.1:{self.admin}/stats?filter=rendition", 2)
        out = {}
        for line in body.decode().splitlines():
            k, _, v = line.partition(": ")
            if v.strip().lstrip("-").isdigit():
                out[k.removeprefix("wasmcustom.")] = int(v)
        return out

    def wait(self, pred, seconds: float, what: str) -> dict:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if self.proc.poll() is not None:
                fail(f"envoy exited {self.proc.returncode}: {Path(self.dir, 'envoy.log').read_text()[-400:]}")
            try:
                s = self.stats()
                if pred(s):
                    return s
            except OSError:
                pass
            time.sleep(0.1)
        fail(f"envoy: {what} not seen in {seconds} s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def index_visible(filter_vm_id: str, sync_vm_id: str, requests: int = 3) -> dict:
    """Envoy configured like the WasmPlugin form: the pluginConfig in a filter whose vm_id
    is `filter_vm_id`, the EnvoyFilter's sync configuration in a singleton with
    `sync_vm_id`, following the real sidecar. Returns the filter's stats after
    `requests` image requests (the origin port is closed: the responses are 503)."""
    if not SIDECAR or SIDECAR[0].proc.poll() is not None:
        fail("needs the running sidecar of the check before")
    cfg = demo_config()
    _, wp = wasmplugins()[0]
    http_wasm(cfg)["configuration"]["value"] = plugin_json(wp)
    http_wasm(cfg)["vm_config"]["vm_id"] = filter_vm_id
    singleton(cfg)["configuration"]["value"] = ef_sync_json()
    singleton(cfg)["vm_config"]["vm_id"] = sync_vm_id
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] in ("sidecar", "origin"):
            port = SIDECAR[0].port if c["name"] == "sidecar" else free_port()
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = port
    env = LiveEnvoy(cfg)
    try:
        env.wait(lambda s: s.get("rendition.index.polls", 0) >= 1, 15, "a first index poll")
        for n in range(requests):
            http_get(f"http://127.0.0.1:{env.listen}/img/deploy-check-{n}.jpg", 5)
        return env.wait(lambda s: s.get("rendition.requests", 0) >= requests, 5, f"{requests} requests counted")
    finally:
        env.stop()


def check_wasmplugin_vm_id() -> str:
    same = index_visible("", "")
    if same.get("rendition.index_unavailable", 0) != 0:
        fail(f"filter and singleton both with vm_id \"\": index_unavailable = {same['rendition.index_unavailable']}")
    other = index_visible("", "rendition")
    if other.get("rendition.index_unavailable", 0) < 3:
        fail("with vm_ids \"\" and \"rendition\" the filter still saw the index: the check proves nothing")
    return ('filter vm_id "" + singleton "" -> index seen (index_unavailable 0); '
            f'singleton "rendition" -> not seen (index_unavailable {other["rendition.index_unavailable"]})')


DASHBOARD = ROOT / "envoy" / "k8s" / "grafana" / "rendition-dashboard.json"


def exposition_names(text: str) -> set[str]:
    """Series names in Prometheus text exposition."""
    return {m.group(0) for line in text.splitlines() if line and not line.startswith("#")
            if (m := re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line))}


def dashboard_exprs(dash: dict) -> list[str]:
    exprs = []
    for p in dash["panels"]:
        for inner in [p, *p.get("panels", [])]:
            exprs += [t["expr"] for t in inner.get("targets", [])]
    return exprs


def envoy_prometheus() -> str:
    """Envoy's /stats/prometheus with the real filter and singleton, following the real
    sidecar: the names the filter's counters get in Prometheus."""
    if not SIDECAR or SIDECAR[0].proc.poll() is not None:
        fail("needs the running sidecar of the checks before")
    cfg = demo_config()
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] in ("sidecar", "origin"):
            port = SIDECAR[0].port if c["name"] == "sidecar" else free_port()
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = port
    env = LiveEnvoy(cfg)
    try:
        env.wait(lambda s: s.get("rendition.index.polls", 0) >= 1, 15, "a first index poll")
        http_get(f"http://127.0.0.1:{env.listen}/img/dashboard-check.jpg", 5)
        env.wait(lambda s: s.get("rendition.requests", 0) >= 1, 5, "the request counted")
        status, body = http_get(f"http://127.0.0.1:{env.admin}/stats/prometheus", 5)
        if status != 200:
            fail(f"envoy /stats/prometheus: {status}")
        return body.decode()
    finally:
        env.stop()


def check_dashboard() -> str:
    """envoy/k8s/grafana/rendition-dashboard.json is valid JSON, a Grafana dashboard with a
    Prometheus datasource variable, and every metric its queries name exists: in the real
    sidecar's /metrics or in the real Envoy's /stats/prometheus with the real filter."""
    dash = json.loads(DASHBOARD.read_text())
    if not dash.get("uid") or not dash.get("title") or not dash.get("panels"):
        fail("not a dashboard: uid, title and panels are required")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("query") != "prometheus":
        fail("no `datasource` variable of type prometheus")
    exprs = dashboard_exprs(dash)
    if len(exprs) < 10:
        fail(f"only {len(exprs)} queries")
    for p in dash["panels"]:
        if p["type"] != "row" and p.get("datasource", {}).get("uid") != "${datasource}":
            fail(f"panel {p['title']!r} does not use the datasource variable")
    wanted = {n for e in exprs for n in re.findall(r"\b(rendition_[a-z0-9_]+)\b", e)}
    status, body = http_get(f"http://127.0.0.1:{SIDECAR[0].port}/metrics", 5)
    if status != 200:
        fail(f"sidecar /metrics: {status}")
    sidecar = exposition_names(body.decode())
    envoy = exposition_names(envoy_prometheus())
    envoy = {n for n in envoy if n.startswith("rendition_")}
    if sidecar & envoy:
        fail(f"sidecar and filter metrics share names: {sorted(sidecar & envoy)}")
    missing = sorted(wanted - sidecar - envoy)
    if missing:
        fail(f"the dashboard queries metrics that exist nowhere: {missing}")
    if "rendition_hitz" in sidecar | envoy:
        fail("the name check is vacuous")
    for needed in ("rendition_served_bytes_total", "rendition_served_original_bytes_total",
                   "rendition_serve_seconds_bucket", "rendition_encode_seconds_bucket", "rendition_hits"):
        if needed not in wanted:
            fail(f"the dashboard does not use {needed}")
    from_sidecar = len(wanted & sidecar)
    return (f"{len(exprs)} queries, {len(wanted)} metrics: {from_sidecar} from the sidecar's /metrics, "
            f"{len(wanted) - from_sidecar} from Envoy's /stats/prometheus (the filter)")


def check_sidecar_stops_cleanly() -> str:
    if not SIDECAR:
        fail("the sidecar did not start")
    code = SIDECAR.pop().stop()
    if code != 0:
        fail(f"SIGTERM: exit {code}")
    return "SIGTERM -> exit 0"


# ------------------------------------------------------------------------------ how it is applied, and the persistent store

# Client-side `kubectl apply` stores the whole object, as JSON, in the
# kubectl.kubernetes.io/last-applied-configuration annotation, and the API server refuses an
# object whose annotations pass 256 KiB (TotalAnnotationSizeLimitB in apimachinery's
# validation). The module's ConfigMap is far past that, so every documented apply must be
# server-side (which keeps no such annotation).
ANNOTATIONS_LIMIT = 256 * 1024
CONFIGMAP_LIMIT = 1024 * 1024  # a ConfigMap's data + binaryData
APPLY_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
              *sorted((ROOT / "examples").rglob("README.md")), *YAML_FILES]


def last_applied_bytes(obj: dict) -> int:
    """The size of the annotation client-side apply would add: the object as compact JSON
    (kubectl strips the annotation itself before encoding), plus the existing annotations."""
    bare = copy.deepcopy(obj)
    bare.get("metadata", {}).get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    encoded = len(json.dumps(bare, separators=(",", ":"))) + 1
    others = sum(len(k) + len(v) for k, v in (obj["metadata"].get("annotations") or {}).items())
    return encoded + others


def too_big_for_client_side(docs: list) -> list[tuple[str, int]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", n) for d in docs
            if (n := last_applied_bytes(d)) > ANNOTATIONS_LIMIT]


def client_side_applies(text: str) -> list[str]:
    """`kubectl apply` commands of a kustomization (-k, --kustomize) without --server-side."""
    out = []
    for line in text.splitlines():
        for cmd in re.findall(r"kubectl\s+apply\b[^`|;&\n]*", line):
            if re.search(r"(^|\s)(-k|--kustomize)(\s|=)", cmd) and "--server-side" not in cmd:
                out.append(cmd.strip())
    return out


def documented_applies() -> tuple[int, list[str]]:
    total, bad = 0, []
    for p in APPLY_DOCS:
        text = p.read_text()
        total += len(re.findall(r"kubectl\s+apply\b", text))
        bad += [f"{rel(p)}: {c}" for c in client_side_applies(text)]
    return total, bad


def check_apply_as_documented() -> str:
    big = []
    for overlay in ("envoy/k8s/envoy", "envoy/istio", "envoy/k8s/envoy-persistent"):
        docs = render_overlay(overlay)
        big += [(overlay, name, n) for name, n in too_big_for_client_side(docs)]
        for d in docs:
            if d["kind"] == "ConfigMap":
                size = sum(len(v) for v in (d.get("data") or {}).values()) + sum(
                    len(base64.b64decode(v)) for v in (d.get("binaryData") or {}).values())
                if size > CONFIGMAP_LIMIT:
                    fail(f"{overlay}: ConfigMap {d['metadata']['name']} holds {size} bytes, past 1 MiB")
    total, bad = documented_applies()
    if big and bad:
        worst = max(big, key=lambda b: b[2])
        fail(f"{worst[1]} needs a {worst[2] // 1024} KiB last-applied annotation (limit 256 KiB), "
             f"so client-side apply fails; documented without --server-side: {bad}")
    if not big:
        return f"every object fits client-side apply; {total} documented applies"
    worst = max(big, key=lambda b: b[2])
    return (f"{worst[1]} is {worst[2] // 1024} KiB as JSON (> 256 KiB for client-side apply): "
            f"all {total} documented `kubectl apply` commands are --server-side")


def check_apply_check_catches_client_side() -> str:
    """The old instructions (the module ConfigMap applied client-side) fail the check above."""
    old = "cp dist/rendition_filter.wasm envoy/k8s/base/\nkubectl apply -k envoy/k8s/envoy\n"
    if client_side_applies(old) != ["kubectl apply -k envoy/k8s/envoy"]:
        fail(f"the old command was not recognized: {client_side_applies(old)}")
    if client_side_applies("kubectl apply --server-side -k envoy/k8s/envoy"):
        fail("a server-side apply was flagged")
    big = too_big_for_client_side(render_overlay("envoy/k8s/envoy"))
    if not any(name.startswith("ConfigMap/rendition-filter-wasm") for name, _ in big):
        fail(f"the module ConfigMap was not found too big for client-side apply: {big}")
    return "`kubectl apply -k envoy/k8s/envoy` with the module ConfigMap is refused"


def pod_without(template: dict, volume: str) -> dict:
    t = copy.deepcopy(template)
    t["spec"]["volumes"] = [v for v in t["spec"]["volumes"] if v["name"] != volume]
    return t


def check_persistent(docs: list, deployment_docs: list, where: str) -> str:
    for d in docs:
        if not is_istio(d):
            k8s_validate(d, where)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    if ("Deployment", "site") in kinds or ("StatefulSet", "site") not in kinds:
        fail(f"{where}: want StatefulSet site instead of Deployment site, have {sorted(kinds)}")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    dep = next(d for d in deployment_docs if d["kind"] == "Deployment")
    if pod_without(sts["spec"]["template"], "rendition-data") != pod_without(dep["spec"]["template"], "rendition-data"):
        fail(f"{where}: the StatefulSet's pod differs from the Deployment's beyond the data volume")
    if any(v["name"] == "rendition-data" for v in sts["spec"]["template"]["spec"]["volumes"]):
        fail(f"{where}: the emptyDir rendition-data is still in the pod (the claim must replace it)")
    if sts["spec"]["replicas"] != dep["spec"]["replicas"]:
        fail(f"{where}: replicas {sts['spec']['replicas']} != the Deployment's {dep['spec']['replicas']}")
    claims = {c["metadata"]["name"]: c for c in sts["spec"]["volumeClaimTemplates"]}
    claim = claims.get("rendition-data")
    if claim is None or claim["spec"]["accessModes"] != ["ReadWriteOnce"]:
        fail(f"{where}: want one ReadWriteOnce claim rendition-data, have {sorted(claims)}")
    rc = next(c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "rendition")
    mounts = {m["name"]: m["mountPath"] for m in rc["volumeMounts"]}
    conf = tomllib.loads(configmap_toml())
    if mounts.get("rendition-data") != conf["data_dir"]:
        fail(f"{where}: the claim is mounted at {mounts.get('rendition-data')}, data_dir is {conf['data_dir']}")
    empty = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "rendition-data")
    if claim["spec"]["resources"]["requests"]["storage"] != empty["emptyDir"]["sizeLimit"]:
        fail(f"{where}: claim {claim['spec']['resources']['requests']['storage']} != the emptyDir's sizeLimit")
    svc = next((d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == sts["spec"]["serviceName"]), None)
    if svc is None or svc["spec"].get("clusterIP") != "None":
        fail(f"{where}: serviceName {sts['spec']['serviceName']} is not a headless Service in the render")
    if svc["spec"]["selector"] != sts["spec"]["selector"]["matchLabels"]:
        fail(f"{where}: the headless Service selects other pods")
    return (f"StatefulSet site x{sts['spec']['replicas']} = the Deployment's pod, claim rendition-data "
            f"{claim['spec']['resources']['requests']['storage']} at {conf['data_dir']}, headless {svc['metadata']['name']}")


def check_persistent_envoy() -> str:
    return check_persistent(render_overlay("envoy/k8s/envoy-persistent"), render_overlay("envoy/k8s/envoy"),
                            "envoy/k8s/envoy-persistent")


def check_persistent_istio_doc() -> str:
    """docs/deploy.md's overlay for Istio with the persistent store, rendered against this tree."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S)
              if "kind: Kustomization" in b and "envoy/k8s/persistent" in b]
    if len(blocks) != 1:
        fail(f"docs/deploy.md: want one yaml Kustomization block with envoy/k8s/persistent, found {len(blocks)}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "envoy", Path(tmp) / "envoy", ignore=shutil.ignore_patterns("*.wasm"))
        shutil.copy(WASM, Path(tmp) / "envoy" / "k8s" / "base" / "rendition_filter.wasm")
        overlay = Path(tmp) / "site-istio-persistent"
        overlay.mkdir()
        (overlay / "kustomization.yaml").write_text(blocks[0])
        r = subprocess.run([str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"kubectl kustomize: {r.stderr.strip()}")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    errs = istio_errors([d for d in docs if is_istio(d)])
    if errs:
        fail("; ".join(errs))
    return check_persistent(docs, render_overlay("envoy/istio"), "docs/deploy.md Istio + persistent")


def check_sidecar_readiness() -> str:
    """The decision, in the manifests and both docs: the sidecar has a liveness probe and no
    readiness probe (a sick optimizer must not take the site out of its Service)."""
    dep = one("Deployment", "site", BASE_DEPLOYMENT)
    rc = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "rendition")
    if "readinessProbe" in rc or "livenessProbe" not in rc:
        fail("the rendition container must have a livenessProbe and no readinessProbe")
    said = "no readiness probe on the sidecar"
    for doc in ("docs/operations.md", "docs/deploy.md"):
        text = " ".join((ROOT / doc).read_text().split())
        if said not in text:
            fail(f"{doc} does not say `{said}`")
        if re.search(r"/healthz[^.]*\bfor (liveness and )?readiness\b", text):
            fail(f"{doc} still advises /healthz for readiness")
    return "liveness only, in the Deployment, docs/operations.md and docs/deploy.md"


# ------------------------------------------------------------------------------ Dockerfiles


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out, cur = [], ""
    for line in path.read_text().splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        cur += (" " if cur else "") + s.rstrip("\\").strip()
        if not s.endswith("\\"):
            ins, _, args = cur.partition(" ")
            out.append((ins.upper(), args.strip()))
            cur = ""
    if cur:
        fail(f"{rel(path)}: dangling line continuation")
    return out


def check_sidecar_dockerfile() -> str:
    path = ROOT / "sidecar" / "Dockerfile"
    ins = dockerfile(path)
    known = {"FROM", "RUN", "COPY", "ADD", "WORKDIR", "USER", "ENV", "ARG", "EXPOSE", "VOLUME",
             "HEALTHCHECK", "ENTRYPOINT", "CMD", "LABEL", "STOPSIGNAL", "SHELL"}
    bad = [i for i, _ in ins if i not in known]
    if bad:
        fail(f"unknown instructions {bad}")
    froms = [a for i, a in ins if i == "FROM"]
    if len(froms) != 2 or not froms[0].startswith("rust:1-bookworm") or froms[1] != "debian:bookworm-slim":
        fail(f"want FROM rust:1-bookworm AS build, then debian:bookworm-slim; have {froms}")
    stage = froms[0].split()[-1]
    cargo = tomllib.loads((ROOT / "sidecar" / "Cargo.toml").read_text())
    bin_name = cargo["bin"][0]["name"]
    pkg = cargo["package"]["name"]
    runs = " ".join(a for i, a in ins if i == "RUN")
    # The build stage runs scripts/build-sidecar.sh (tests/deploy/check_dockerfiles.py runs
    # the same script outside Docker): release by default, this package, this binary.
    if "scripts/build-sidecar.sh /out" not in runs:
        fail("the build stage does not run `scripts/build-sidecar.sh /out`")
    script = (ROOT / "scripts" / "build-sidecar.sh").read_text()
    if "PROFILE=release" not in script or f'cargo build --locked --profile "$PROFILE" -p {pkg}' not in script:
        fail(f"scripts/build-sidecar.sh does not build {pkg} with --locked, release by default")
    if f'"$OUT/{bin_name}"' not in script or f"/{bin_name}\"" not in script:
        fail(f"scripts/build-sidecar.sh does not install the binary {bin_name} ([[bin]] name in sidecar/Cargo.toml)")
    copies = [a for i, a in ins if i == "COPY" and a.startswith(f"--from={stage}")]
    if not copies or copies[0].split()[-2] != f"/out/{bin_name}" or not copies[0].endswith(f"/usr/local/bin/{bin_name}"):
        fail(f"runtime stage does not install /out/{bin_name} as /usr/local/bin/{bin_name}")
    entry = json.loads(next(a for i, a in ins if i == "ENTRYPOINT"))
    if entry[:2] != [bin_name, "serve"]:
        fail(f"ENTRYPOINT {entry} is not [{bin_name!r}, 'serve']")
    # The codec -dev packages of scripts/setup.sh are all installed in the build stage.
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    m = re.search(r"# codec build deps[^\n]*\n\s*([^\n]+)", setup)
    wanted = set(m.group(1).split())
    build_runs = " ".join(a for n, (i, a) in enumerate(ins) if i == "RUN" and n < [j for j, (x, _) in enumerate(ins) if x == "FROM"][1])
    if not wanted <= set(build_runs.split()):
        fail(f"build stage lacks {sorted(wanted - set(build_runs.split()))} (scripts/setup.sh)")
    exposed = [int(p.split("/")[0]) for i, a in ins if i == "EXPOSE" for p in a.split()]
    probe_cmd, probe_port = sidecar_probe()
    if exposed != [probe_port]:
        fail(f"EXPOSE {exposed} != the k8s probe port {probe_port}")
    hc = next((a for i, a in ins if i == "HEALTHCHECK"), "")
    hc_cmd = json.loads(hc[hc.index("CMD") + 3:])
    if hc_cmd != probe_cmd:
        fail(f"HEALTHCHECK {hc_cmd} differs from the k8s liveness probe {probe_cmd}")
    dep = one("Deployment", "site", BASE_DEPLOYMENT)
    rc = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "rendition")
    user = [a for i, a in ins if i == "USER"]
    if not user or user[-1].split(":")[0] in ("0", "root"):
        fail("the runtime stage must run as a non-root USER")
    if str(rc["securityContext"]["runAsUser"]) != user[-1].split(":")[0]:
        fail(f"USER {user[-1]} differs from the pod's runAsUser {rc['securityContext']['runAsUser']}")
    return (f"2 stages ({froms[0]} -> {froms[1]}), binary `{bin_name}` = [[bin]] of {pkg}, "
            f"EXPOSE {exposed[0]} = probe port, USER {user[-1]}")


def check_wasm_dockerfile() -> str:
    path = ROOT / "envoy" / "wasm-oci" / "Dockerfile"
    ins = dockerfile(path)
    if [a for i, a in ins if i == "FROM"] != ["scratch"]:
        fail("must be FROM scratch (one stage)")
    layers = [(i, a) for i, a in ins if i in ("COPY", "ADD", "RUN")]
    if len(layers) != 1 or layers[0][0] != "COPY":
        fail(f"the compat Wasm image needs exactly one layer (one COPY), have {layers}")
    src, dst = layers[0][1].split()[-2:]
    if os.path.basename(dst) != "plugin.wasm" or src != WASM.name:
        fail(f"COPY {src} {dst}: want {WASM.name} copied to plugin.wasm")
    ignore = (ROOT / ".dockerignore").read_text().split()
    for must in (".git", "**/target", ".tools"):
        if must not in ignore:
            fail(f".dockerignore does not exclude {must}")
    return "FROM scratch, one COPY rendition_filter.wasm -> plugin.wasm; .dockerignore drops target/.tools/.git"


# ------------------------------------------------------------------------------ main


def main() -> int:
    t0 = time.monotonic()
    check("yaml: every file under envoy/ parses", load_all)
    if FAILED:
        print(f"{len(PASSED)} passed, {len(FAILED)} failed")
        return 1
    check("k8s: standalone objects, strict schema", check_standalone_k8s)
    check("k8s: the schema check refuses bad objects", k8s_negative)
    check("k8s: overlay envoy/k8s/envoy renders and validates",
          lambda: check_overlay("envoy/k8s/envoy", {"Deployment", "Service", "ConfigMap", "NetworkPolicy"}))
    check("k8s: overlay envoy/istio renders and validates",
          lambda: check_overlay("envoy/istio", {"Deployment", "Service", "ConfigMap", "EnvoyFilter"}))
    check("k8s: the documented `kubectl apply` works (server-side)", check_apply_as_documented)
    check("k8s: client-side apply of the module ConfigMap is refused", check_apply_check_catches_client_side)
    check("k8s: overlay envoy/k8s/envoy-persistent (StatefulSet, a PVC per pod)", check_persistent_envoy)
    check("k8s: Istio with the persistent store (docs/deploy.md)", check_persistent_istio_doc)
    check("k8s: sidecar readiness, one decision everywhere", check_sidecar_readiness)
    check("k8s: plain-Envoy pod wiring", check_envoy_overlay_wiring)
    check("k8s: Istio pod wiring", check_istio_overlay_wiring)
    check("istio: WasmPlugin/EnvoyFilter against the CRD schemas", check_istio_schema)
    check("istio: the schema checks refuse bad objects", istio_negative)
    check("istio: EnvoyFilter and WasmPlugin wiring", check_istio_wiring)
    check("istio: the WasmPlugin overlay in docs/deploy.md", check_wasmplugin_overlay_doc)
    check("filter: every option present, with its default", check_every_option)
    check("filter: WasmPlugin pluginConfig accepted by the real filter", check_pluginconfig_in_envoy)
    check("filter: a bad key is refused", check_bad_key_rejected)
    check("filter: EnvoyFilter configurations and patches in Envoy", check_envoyfilter_configs_in_envoy)
    check("filter: pod Envoy config (envoy/k8s/envoy)", check_pod_envoy_config)
    check("sidecar: ConfigMap agrees with the pod spec", check_configmap_matches_pod)
    check("sidecar: real sidecar accepts the ConfigMap's config", check_sidecar_accepts_configmap)
    check("sidecar: the liveness probe works", check_probe_against_sidecar)
    check("live: WasmPlugin form shares the index only with vm_id \"\"", check_wasmplugin_vm_id)
    check("grafana: the dashboard's metrics exist (live sidecar and Envoy)", check_dashboard)
    check("sidecar: stops cleanly", check_sidecar_stops_cleanly)
    check("sidecar: a bad key is refused", check_sidecar_refuses_bad_key)
    check("docker: sidecar/Dockerfile", check_sidecar_dockerfile)
    check("docker: envoy/wasm-oci/Dockerfile and .dockerignore", check_wasm_dockerfile)
    for sc in SIDECAR:
        sc.stop()
    print(f"deploy checks took {time.monotonic() - t0:.1f} s")
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
