#!/usr/bin/env python3
"""check_architecture: docs/architecture.md's package table is the BUILD graph.

The table under "## Packages" lists every package with C++ libraries or binaries and the
packages it depends on. This check computes the same from the BUILD files (libraries and
binaries; tests and test fixtures beside the code may depend on more) and fails on any
difference. It also fails when a file of a
service includes generated protobuf code outside its *_service and *_client files (and main.cc):
the services' logic classes know no gRPC.

Usage: tools/layering/check_architecture.py
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_graph  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOC = os.path.join(ROOT, "docs", "architecture.md")
ROW = re.compile(r"^\| `([^`]+)` \|[^|]*\| ([^|]*) \|$")
PROTO_FILES = re.compile(r"(_service|_client)\.(h|cc)$|/main\.cc$")


def node(package):
    if package.startswith("protos/"):
        return "protos"
    if package.startswith("tools/bazel"):
        return None
    return package


def graph(targets):
    edges = {}
    for t in targets:
        if t.rule not in ("cc_library", "cc_binary") or getattr(t, "generated_headers", None):
            continue
        if t.attrs.get("testonly") and not t.package.startswith("tests"):
            continue  # a test fixture beside the code it tests
        a = node(t.package)
        if a is None:
            continue
        edges.setdefault(a, set())
        for d in t.deps():
            b = node(d[2:].split(":")[0])
            if b and b != a:
                edges[a].add(b)
    return edges


def documented():
    text = open(DOC).read()
    section = text.split("## Packages", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        m = ROW.match(line.strip())
        if m:
            deps = set(re.findall(r"`([^`]+)`", m.group(2)))
            table[m.group(1)] = deps
    return table


def main():
    targets, _ = build_graph.load_graph(ROOT)
    built, doc = graph(targets), documented()
    problems = []
    for pkg in sorted(set(built) | set(doc)):
        if pkg == "protos":
            continue
        if pkg not in doc:
            problems.append("package %s is built but not in docs/architecture.md's table" % pkg)
        elif pkg not in built:
            problems.append("docs/architecture.md lists %s, which has no C++ library or binary" % pkg)
        else:
            for extra in sorted(built[pkg] - doc[pkg]):
                problems.append("%s depends on %s; the table does not say so" % (pkg, extra))
            for gone in sorted(doc[pkg] - built[pkg]):
                problems.append("the table says %s depends on %s; the BUILD files do not" % (pkg, gone))
    for t in targets:
        if not t.package.startswith("services/") or t.rule == "cc_test":
            continue
        for f in t.files("srcs") + t.files("hdrs"):
            if PROTO_FILES.search(f):
                continue
            for inc in build_graph.includes(ROOT, f):
                if inc.endswith(".pb.h"):
                    problems.append("%s includes %s: only *_service, *_client and main files see protos" % (f, inc))
    for p in problems:
        print(p)
    print("check_architecture: %d packages, %d problem(s)" % (len(built), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
