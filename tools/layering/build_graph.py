"""The C++ build graph as the BUILD files declare it and as the sources' includes need it.

Reads every BUILD.bazel of the checkout (they are Starlark of a simple kind: evaluated here with
stand-ins for the rules) and the `#include "..."` lines of each C++ target's files.
"""
import os
import re
import subprocess

# System libraries: the include prefix, and the //tools/bazel/system target that links it.
SYSTEM = [
    ("absl/", "absl"), ("grpcpp/", "grpc"), ("grpc/", "grpc"), ("google/protobuf/", "protobuf"),
    ("rocksdb/", "rocksdb"), ("spdlog/", "spdlog"), ("fmt/", "spdlog"), ("openssl/", "openssl"),
    ("zstd.h", "zstd"), ("unicode/", "icu"), ("gtest/", "gtest"), ("gmock/", "gtest"),
    ("httplib.h", "httplib"), ("sodium.h", "sodium"), ("fuse3/", "fuse"), ("fiu", "fiu"),
]
CC_RULES = ("cc_library", "cc_binary", "cc_test")


class Target:
    def __init__(self, package, rule, attrs):
        self.package = package
        self.rule = rule
        self.name = attrs["name"]
        self.attrs = attrs
        self.label = "//%s:%s" % (package, self.name)

    def files(self, attr):
        return ["%s/%s" % (self.package, f) for f in self.attrs.get(attr, [])
                if isinstance(f, str) and not f.startswith(":") and not f.startswith("//")]

    def deps(self):
        return [absolute(self.package, d) for d in self.attrs.get("deps", [])]


def absolute(package, label):
    if label.startswith(":"):
        return "//%s%s" % (package, label)
    if label.startswith("//") and ":" not in label:
        return "%s:%s" % (label, label.rsplit("/", 1)[-1])
    return label


def build_files(root):
    out = subprocess.check_output(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                                   "*BUILD.bazel"], cwd=root).decode().split()
    return sorted(f for f in out if os.path.exists(os.path.join(root, f)))


def load_package(root, build_file):
    package = os.path.dirname(build_file)
    targets = []
    macros = {}

    def rule(kind):
        def record(*args, **attrs):
            if "name" in attrs:
                t = Target(package, kind, attrs)
                if kind == "cc_library" and attrs.get("include_prefix"):
                    # Generated headers included under a prefix (protos/etcd: "etcd/...").
                    t.generated_headers = ["%s/%s" % (attrs["include_prefix"], h) for h in attrs.get("hdrs", [])]
                targets.append(t)
        return record

    def converge_proto(name, src, deps=(), grpc=True, visibility=None):
        stem = src[:-len(".proto")]
        prefix = package[len("protos/"):]
        hdrs = [stem + ".pb.h"] + ([stem + ".grpc.pb.h", stem + "_mock.grpc.pb.h"] if grpc else [])
        t = Target(package, "cc_library", {"name": name, "deps": list(deps),
                                            "visibility": visibility or []})
        t.generated_headers = ["%s/%s" % (prefix, h) for h in hdrs]
        targets.append(t)

    env = {k: rule(k) for k in CC_RULES + ("genrule", "filegroup", "sh_test", "sh_binary", "py_test",
                                           "py_binary", "exports_files", "test_suite", "alias")}
    env.update(package=lambda **kw: None, glob=lambda *a, **kw: [], select=lambda d: [], PROTO_USERS=[],
               converge_proto=converge_proto, load=lambda *a, **kw: None)
    src = open(os.path.join(root, build_file)).read()
    src = re.sub(r'^load\(.*?\)\s*$', "", src, flags=re.M | re.S)
    exec(compile(src, build_file, "exec"), env)
    return targets


def load_graph(root):
    targets = []
    for f in build_files(root):
        targets.extend(load_package(root, f))
    header_owner = {}
    for t in targets:
        if t.rule != "cc_library":
            continue
        for h in getattr(t, "generated_headers", []) + t.files("hdrs"):
            header_owner.setdefault(h, t.label)
    return targets, header_owner


INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^>"]+)[>"]', re.M)


def includes(root, path):
    try:
        text = open(os.path.join(root, path)).read()
    except (OSError, UnicodeDecodeError):
        return []
    return INCLUDE.findall(text)


def needed_deps(root, target, header_owner):
    """The labels target's files include, and the includes no target provides."""
    need, unknown = {}, []
    own = set(target.files("srcs") + target.files("hdrs"))
    for f in sorted(own):
        for inc in includes(root, f):
            if inc in own:
                continue
            label = header_owner.get(inc)
            if label is None:
                for prefix, lib in SYSTEM:
                    if inc.startswith(prefix):
                        label = "//tools/bazel/system:" + lib
                        break
            if label is None:
                if "/" in inc and os.path.exists(os.path.join(root, inc)):
                    unknown.append((f, inc))
                continue
            if label != target.label:
                need.setdefault(label, f)
    return need, unknown
