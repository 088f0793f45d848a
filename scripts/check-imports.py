#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle.

    python3 scripts/check-imports.py [CRATE_SRC ...]   (default: sidecar/src filter/src shared/src)

A module is a file (`foo.rs` or `foo/mod.rs`). An edge A -> B is a path in A that names B:
`crate::x::y`, `super::y` or `self::y`, in `use` items or inline paths (`crate::store::Store`),
outside `#[cfg(test)]` modules (tests may reach anywhere). A parent declaring its children
(`mod x;`) is not an edge, and neither is a parent re-exporting them (`pub use x::Y`); a parent
calling into a child (`x::f()`, `use x::Y`) is. Prints
every strongly connected component with more than one module, and exits 1 if there is one.
"""

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def modules(src):
    """{module path tuple: file} for every .rs file under src (lib.rs/main.rs are the root)."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
            out.setdefault(tuple(parts), os.path.join(dirpath, f))
    return out


def strip_tests(text):
    """The text without inline `mod x { ... }` blocks (tests, and the generated model trees,
    whose `super::` means the file itself), comments and strings."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    out, i = [], 0
    for m in re.finditer(r"(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def resolve(path, here, mods):
    """The longest known module that `path` (a list of segments) names, seen from `here`."""
    if path[0] == "crate":
        base, rest = (), path[1:]
    elif path[0] == "super":
        base, rest = here, path
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif path[0] == "self":
        base, rest = here, path[1:]
    else:
        return None
    best = None
    for n in range(len(rest) + 1):
        cand = tuple(base) + tuple(rest[:n])
        if cand in mods:
            best = cand
    return best


def expand_use(body):
    """Paths of a `use` tree: `a::{b, c::d}` -> [a::b, a::c::d]."""
    body = re.sub(r"\s+", "", body)

    def walk(prefix, s):
        items, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        if cur:
            items.append(cur)
        out = []
        for it in items:
            it = re.sub(r"\bas\w+$", "", it)
            if "::{" in it and it.endswith("}"):
                head, tail = it.split("::{", 1)
                out += walk(prefix + head.split("::"), tail[:-1])
            elif it.startswith("{") and it.endswith("}"):
                out += walk(prefix, it[1:-1])
            else:
                out.append(prefix + [p for p in it.split("::") if p])
        return out

    return walk([], body)


def edges(mods):
    graph = {m: set() for m in mods}
    for here, file in mods.items():
        with open(file) as f:
            text = strip_tests(f.read())
        children = set(re.findall(r"\bmod\s+(\w+)\s*;", text))
        paths = []
        for m in re.finditer(r"\b(pub(\([^)]*\))?\s+)?use\s+([^;]+);", text):
            if m.group(1):  # a re-export by a parent of its own children is not an edge
                continue
            for p in expand_use(m.group(3)):
                # `use decode::Frame` names the child module `decode` (2018 paths).
                paths.append(["self"] + p if p and p[0] in children else p)
        code = re.sub(r"\buse\s+[^;]+;", "", text)
        for m in re.finditer(r"\b(?:crate|super|self)(?:::\w+)+", code):
            paths.append(m.group(0).split("::"))
        # A module calling into its own child (`decode::decode(..)`) depends on it like on any
        # other module: a parent that defines what its children import and also calls into
        # them makes a circle of files.
        for child in children:
            for m in re.finditer(r"(?<![\w:])" + child + r"(?:::\w+)+", code):
                paths.append(["self"] + m.group(0).split("::"))
        for p in paths:
            if not p or p[0] not in ("crate", "super", "self"):
                continue
            target = resolve(p, here, mods)
            if target is None or target == here:
                continue
            graph[here].add(target)
    return graph


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    srcs = sys.argv[1:] or ["sidecar/src", "filter/src", "shared/src"]
    bad = 0
    for src in srcs:
        mods = modules(os.path.join(ROOT, src))
        graph = edges(mods)
        found = cycles(graph)
        for comp in found:
            bad += 1
            names = ["::".join(m) or "(root)" for m in comp]
            print(f"{src}: import circle of {len(comp)} modules: {', '.join(names)}")
            for m in comp:
                for t in sorted(graph[m] & set(comp)):
                    print(f"    {'::'.join(m) or '(root)'} -> {'::'.join(t) or '(root)'}")
        n_edges = sum(len(v) for v in graph.values())
        verdict = f"{len(found)} circles" if found else "no circles"
        print(f"{src}: {len(mods)} modules, {n_edges} import edges, {verdict}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
