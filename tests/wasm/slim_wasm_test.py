#!/usr/bin/env python3
"""scripts/slim-wasm.py: the built module exports exactly the callbacks the filter uses, and
the rewrite leaves every other byte alone.

    python3 tests/wasm/slim_wasm_test.py dist/rendition_filter.wasm

Envoy loading the slimmed module (scripts/envoy-validate.sh and every end-to-end suite) is the
proof that it still works; this checks the rewrite itself.
"""

import importlib.util
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
spec = importlib.util.spec_from_file_location("slim_wasm", os.path.join(ROOT, "scripts", "slim-wasm.py"))
slim_wasm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(slim_wasm)


def exports(module):
    """Export names of a module, in order."""
    pos, names = 8, []
    while pos < len(module):
        size, body_at = slim_wasm.read_u32(module, pos + 1)
        if module[pos] == slim_wasm.EXPORT_SECTION:
            body = module[body_at:body_at + size]
            count, p = slim_wasm.read_u32(body, 0)
            for _ in range(count):
                n, p = slim_wasm.read_u32(body, p)
                names.append(body[p:p + n].decode())
                _, p = slim_wasm.read_u32(body, p + n + 1)
        pos = body_at + size
    return names


def main():
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    for n in (0, 1, 127, 128, 300, 2**21, 2**32 - 1):
        check(slim_wasm.read_u32(slim_wasm.write_u32(n), 0) == (n, len(slim_wasm.write_u32(n))), f"LEB128 round trip {n}")
    # A hand-made module: a type section, an export section of three entries, a custom section.
    entry = lambda name, index: slim_wasm.write_u32(len(name)) + name + b"\x00" + slim_wasm.write_u32(index)  # noqa: E731
    export_body = b"\x03" + entry(b"keep_a", 0) + entry(b"drop_me", 1) + entry(b"keep_b", 200)
    types, custom = b"\x01\x04\x01\x60\x00\x00", b"\x00\x05\x04name"
    module = b"\0asm\x01\0\0\0" + types + b"\x07" + slim_wasm.write_u32(len(export_body)) + export_body + custom
    out, dropped = slim_wasm.slim(module, {"keep_a", "keep_b"})
    check(dropped == ["drop_me"] and exports(out) == ["keep_a", "keep_b"], "drops only the unlisted export")
    check(out.startswith(module[:8] + types) and out.endswith(custom), "other sections copied byte for byte")
    check(slim_wasm.slim(module, {"keep_a", "keep_b", "drop_me"})[0] == module, "keeping everything is the identity")
    try:
        slim_wasm.slim(module, {"keep_a", "absent"})
        check(False, "a missing kept export is an error")
    except ValueError as e:
        check("absent" in str(e), "a missing kept export is an error naming it")

    with open(sys.argv[1], "rb") as f:
        built = exports(f.read())
    check(sorted(built) == sorted(slim_wasm.KEEP), f"{sys.argv[1]} exports exactly KEEP ({len(built)} names)")
    check(not any(n.endswith("_body") or n in ("proxy_on_log", "proxy_on_done") for n in built),
          "no body, log or done callbacks: Envoy makes no VM call for them")
    print(f"slim_wasm_test: {len(failures)} failed" if failures else "slim_wasm_test: all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
