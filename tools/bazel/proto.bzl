"""converge_proto: compiles one .proto with Debian's protoc and grpc_cpp_plugin."""

# Who may include generated code: wire conversion, the engine's gRPC clients, control plane and
# daemon, the services (their *_service and *_client files: tools/layering/check_architecture.py),
# tests and tools. Sync logic, the model and the base libraries never see a protobuf type.
PROTO_USERS = [
    "//common/wire:__pkg__",
    "//engine/client:__pkg__",
    "//engine/control:__pkg__",
    "//engine/daemon:__pkg__",
    "//protos:__subpackages__",
    "//services:__subpackages__",
    "//tests:__subpackages__",
    "//tools:__subpackages__",
]

def converge_proto(name, src, deps = [], grpc = True):
    """Generates <name> (cc_library) from src; deps are other converge_proto targets.

    Generated headers are included as "converge/<pkg>/v1/<stem>.pb.h" (and .grpc.pb.h,
    _mock.grpc.pb.h when grpc = True). Visible to PROTO_USERS only.
    """
    stem = src[:-len(".proto")]
    outs = [stem + ".pb.h", stem + ".pb.cc"]
    if grpc:
        outs += [stem + ".grpc.pb.h", stem + ".grpc.pb.cc", stem + "_mock.grpc.pb.h"]
    dep_srcs = [d + "_srcs" for d in deps]
    native.filegroup(name = name + "_srcs", srcs = [src] + dep_srcs, visibility = ["//visibility:public"])
    grpc_flags = ""
    if grpc:
        grpc_flags = (" --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin" +
                      " --grpc_out=generate_mock_code=true:$(GENDIR)/protos")
    native.genrule(
        name = name + "_gen",
        srcs = [src] + dep_srcs,
        outs = outs,
        cmd = ("/usr/bin/protoc -Iprotos --cpp_out=$(GENDIR)/protos" + grpc_flags +
               " protos/" + native.package_name()[len("protos/"):] + "/" + src),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        include_prefix = native.package_name()[len("protos/"):],
        deps = deps + ["//tools/bazel/system:protobuf"] +
               (["//tools/bazel/system:grpc"] if grpc else []),
        visibility = PROTO_USERS,
    )
