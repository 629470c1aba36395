#!/usr/bin/env python3
"""check_deps: every C++ target declares what it includes, in sorted lists.

Fails when a file includes a header whose target is not a direct dependency of the file's own
target (Bazel's layering check, which this toolchain cannot run), when a target depends on a
project target none of its files include, when a header in a BUILD file's hdrs is missing or
included from no target, or when a srcs/hdrs/deps list is not sorted. --fix adds the missing
dependencies, drops the unused ones and sorts the lists in place.

Usage: tools/layering/check_deps.py [--fix]
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_graph  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# A dependency that provides another's headers too.
PROVIDES = {"//tools/bazel/system:gtest_main": "//tools/bazel/system:gtest"}
LIST = re.compile(r'^(    (srcs|hdrs|deps) = )\[(.*?)\]', re.M | re.S)


def short(package, label):
    prefix = "//%s:" % package
    return ":" + label[len(prefix):] if label.startswith(prefix) else label


def sort_key(item):
    return (not item.startswith(":"), item)


def format_list(head, items):
    if len(items) == 1 and len(head) + len(items[0]) < 90:
        return '%s["%s"]' % (head, items[0])
    return head + "[\n" + "".join('        "%s",\n' % i for i in items) + "    ]"


def rule_blocks(text):
    """(start, end, name) of each rule call at the top level of a BUILD file."""
    for m in re.finditer(r'^\w+\(\n(.*?)^\)', text, re.M | re.S):
        name = re.search(r'^    name = "([^"]+)"', m.group(1), re.M)
        if name:
            yield m.start(), m.end(), name.group(1)


def fix_file(path, package, missing_by_name, unused_by_name):
    text = open(path).read()
    out, last = [], 0
    for start, end, name in rule_blocks(text):
        block = text[start:end]
        add = missing_by_name.get(name, [])
        if add and "    deps = " not in block:
            block = block[:-2] + "\n    deps = [],\n)" if not block.endswith(",\n)") else \
                block[:-1] + "    deps = [],\n)"

        def rewrite(m):
            items = re.findall(r'"([^"]+)"', m.group(3))
            if m.group(2) == "deps":
                items += [short(package, a) for a in add]
                drop = {short(package, a) for a in unused_by_name.get(name, [])}
                items = [i for i in items if i not in drop]
            return format_list(m.group(1), sorted(set(items), key=sort_key))
        if re.search(r'\b(glob|select)\(', block) is None:
            block = LIST.sub(rewrite, block)
        out.append(text[last:start] + block)
        last = end
    out.append(text[last:])
    new = "".join(out)
    if new != text:
        open(path, "w").write(new)


def main(argv):
    fix = "--fix" in argv
    targets, header_owner = build_graph.load_graph(ROOT)
    problems = []
    missing = {}
    unused = {}
    for t in targets:
        if t.rule not in build_graph.CC_RULES or getattr(t, "generated_headers", None):
            continue
        for attr in ("srcs", "hdrs", "deps"):
            items = t.attrs.get(attr, [])
            if isinstance(items, list) and items != sorted(items, key=sort_key):
                problems.append("%s: %s is not sorted" % (t.label, attr))
        for h in t.files("hdrs"):
            if not os.path.exists(os.path.join(ROOT, h)):
                problems.append("%s: no file %s" % (t.label, h))
        declared = set(t.deps())
        declared |= {PROVIDES[d] for d in declared if d in PROVIDES}
        need, unknown = build_graph.needed_deps(ROOT, t, header_owner)
        for f, inc in unknown:
            problems.append("%s: %s includes %s, which no target's hdrs list" % (t.label, f, inc))
        for label, f in sorted(need.items()):
            if label not in declared:
                problems.append("%s: %s includes a header of %s, not a direct dependency" % (t.label, f, label))
                missing.setdefault((t.package, t.name), []).append(label)
        for label in sorted(set(t.deps()) - set(need) - set(PROVIDES)):
            if not label.startswith("//tools/bazel/system:"):
                problems.append("%s: depends on %s but includes none of its headers" % (t.label, label))
                unused.setdefault((t.package, t.name), []).append(label)
    if fix:
        by_package, unused_by_package = {}, {}
        for (package, name), labels in missing.items():
            by_package.setdefault(package, {})[name] = labels
        for (package, name), labels in unused.items():
            unused_by_package.setdefault(package, {})[name] = labels
        for build_file in build_graph.build_files(ROOT):
            package = os.path.dirname(build_file)
            fix_file(os.path.join(ROOT, build_file), package, by_package.get(package, {}),
                     unused_by_package.get(package, {}))
        return main([])
    for p in problems:
        print(p)
    checked = sum(1 for t in targets if t.rule in build_graph.CC_RULES)
    print("check_deps: %d C++ targets, %d problem(s)" % (checked, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
