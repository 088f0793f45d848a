#!/usr/bin/env python3
"""Drop the proxy-wasm callbacks the filter does not implement from the module's exports.

    scripts/slim-wasm.py IN.wasm OUT.wasm

Why: the Rust SDK exports every callback of the ABI, so Envoy calls into the VM for each one:
every response body chunk (`proxy_on_response_body`, several per image), `proxy_on_log` and
`proxy_on_done` on every stream, and so on. Each entry into V8 costs more than the filter's
whole decision. Envoy (proxy-wasm-cpp-host) skips a callback the module does not export, so
removing these exports removes the calls; the functions stay in the code section, unused.
Measured side by side on the miss path (benches/filter_bench.py, docs/benchmarks.md):
requests/s with the filter went from 0.78 to 0.88-0.94 of Envoy without it.

KEEP lists what the filter uses (filter/src/lib.rs, http.rs, sync.rs). Implementing another
callback means adding its export here; the build fails if a kept export is missing.

The rewrite touches only the export section (id 7): every other section is copied byte for
byte. Format: https://webassembly.github.io/spec/core/binary/modules.html#export-section
"""

import sys

KEEP = {
    # module plumbing
    "memory", "_initialize", "proxy_abi_version_0_2_1", "proxy_on_memory_allocate",
    # root contexts: the filter's and the index-sync singleton's
    "proxy_on_vm_start", "proxy_on_configure", "proxy_on_tick", "proxy_on_http_call_response",
    # HTTP contexts
    "proxy_on_context_create", "proxy_on_request_headers", "proxy_on_response_headers", "proxy_on_delete",
}
EXPORT_SECTION = 7


def read_u32(data, pos):
    """Unsigned LEB128 at `pos`: (value, position after it)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos
        if shift > 28:
            raise ValueError(f"LEB128 at {pos} longer than a u32")


def write_u32(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def slim_exports(section, keep):
    """The export section's body with only the `keep` entries: (body, kept names, dropped names)."""
    count, pos = read_u32(section, 0)
    entries, kept, dropped = [], [], []
    for _ in range(count):
        start = pos
        name_len, pos = read_u32(section, pos)
        name = section[pos:pos + name_len].decode("utf-8")
        pos += name_len + 1  # the name, then the export kind byte
        _, pos = read_u32(section, pos)  # the index
        if name in keep:
            entries.append(section[start:pos])
            kept.append(name)
        else:
            dropped.append(name)
    if pos != len(section):
        raise ValueError("export section has trailing bytes")
    return write_u32(len(entries)) + b"".join(entries), kept, dropped


def slim(module, keep=KEEP):
    if module[:4] != b"\0asm":
        raise ValueError("not a wasm module")
    out, pos, kept, dropped = bytearray(module[:8]), 8, [], []
    while pos < len(module):
        section_id = module[pos]
        size, body_at = read_u32(module, pos + 1)
        body = module[body_at:body_at + size]
        if len(body) != size:
            raise ValueError(f"section {section_id} runs past the end")
        if section_id == EXPORT_SECTION:
            body, kept, dropped = slim_exports(body, keep)
            out += bytes([section_id]) + write_u32(len(body)) + body
        else:
            out += module[pos:body_at + size]
        pos = body_at + size
    missing = sorted(keep - set(kept))
    if missing:
        raise ValueError(f"the module does not export {', '.join(missing)} (KEEP lists what the filter uses)")
    return bytes(out), dropped


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    with open(sys.argv[1], "rb") as f:
        module = f.read()
    try:
        slimmed, dropped = slim(module)
    except ValueError as e:
        sys.exit(f"slim-wasm: {sys.argv[1]}: {e}")
    with open(sys.argv[2], "wb") as f:
        f.write(slimmed)
    print(f"slim-wasm: dropped {len(dropped)} unused callback exports")


if __name__ == "__main__":
    main()
