#!/usr/bin/python3
"""Interoperability: drives converge's management API from Python's grpcio (Debian's
python3-grpcio), with stubs generated here from the .proto files alone - no Converge code.

  management_client.py <converge-server binary> <protos dir> <scratch dir>

Starts the all-in-one converge-server on a free loopback port, then checks real outcomes of
calls, including the refusals (status codes) for a missing token and bad input. Exit 0 only if
every check passed.
"""
import os
import subprocess
import sys
import time

import grpc

server_bin, protos, scratch, make_certs = sys.argv[1:5]
tls = os.path.join(scratch, "tls")
subprocess.run([make_certs, tls], check=True)
gen = os.path.join(scratch, "gen")
os.makedirs(gen, exist_ok=True)
subprocess.run(["/usr/bin/protoc", f"-I{protos}", f"--python_out={gen}", f"--grpc_python_out={gen}",
                "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                os.path.join(protos, "converge/management/v1/management.proto")], check=True)
sys.path.insert(0, gen)
from converge.management.v1 import management_pb2 as pb  # noqa: E402
from converge.management.v1 import management_pb2_grpc as pb_grpc  # noqa: E402

TOKEN = "interop-token"
port_file = os.path.join(scratch, "server.port")
log = open(os.path.join(scratch, "server.log"), "wb")
server = subprocess.Popen([server_bin, f"--data_dir={scratch}/data", "--listen=127.0.0.1:0",
                           f"--port_file={port_file}", f"--token={TOKEN}", "--service_token=svc",
                           f"--tls_ca={tls}/ca.crt", f"--tls_cert={tls}/service.crt", f"--tls_key={tls}/service.key"],
                          stdout=log, stderr=log)
failures = []


def check(what, cond):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


try:
    for _ in range(400):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.05)
    address = "127.0.0.1:" + open(port_file).read().strip()
    root = open(os.path.join(tls, "ca.crt"), "rb").read()
    channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root))
    grpc.channel_ready_future(channel).result(timeout=20)
    stub = pb_grpc.ManagementServiceStub(channel)
    auth = [("authorization", "Bearer " + TOKEN)]

    user = stub.CreateUser(pb.CreateUserRequest(user_id="pyuser", display_name="From Python"), metadata=auth)
    check("CreateUser returns the user", user.user_id == "pyuser" and user.display_name == "From Python")
    users = stub.ListUsers(pb.ListUsersRequest(), metadata=auth)
    check("ListUsers lists it", [u.user_id for u in users.users] == ["pyuser"])

    reg = stub.RegisterDevice(pb.RegisterDeviceRequest(user_id="pyuser", name="py-laptop"), metadata=auth)
    check("RegisterDevice returns an id and a 64-hex credential",
          reg.device.device_id.startswith("dev-") and len(reg.credential) == 64)
    ns = stub.CreateNamespace(pb.CreateNamespaceRequest(namespace_id="pyns", owner_user_id="pyuser"), metadata=auth)
    check("CreateNamespace", ns.namespace_id == "pyns" and ns.owner_user_id == "pyuser")
    stub.AddDeviceToNamespace(pb.AddDeviceToNamespaceRequest(namespace_id="pyns", device_id=reg.device.device_id),
                              metadata=auth)
    members = stub.ListMembers(pb.ListMembersRequest(namespace_id="pyns"), metadata=auth)
    check("ListMembers has the device", [d.name for d in members.devices] == ["py-laptop"])
    status = stub.GetNamespaceStatus(pb.GetNamespaceStatusRequest(namespace_id="pyns"), metadata=auth)
    check("GetNamespaceStatus: empty namespace, one device at cursor 0",
          status.files == 0 and status.head_seq == 0 and len(status.devices) == 1 and status.devices[0].acked_seq == 0)
    devices = stub.ListDevices(pb.ListDevicesRequest(user_id="pyuser"), metadata=auth)
    check("ListDevices: active, member of pyns",
          devices.devices[0].state == pb.DEVICE_STATE_ACTIVE and devices.devices[0].namespaces[0].namespace_id == "pyns")
    revoked = stub.RevokeDevice(pb.RevokeDeviceRequest(device_id=reg.device.device_id), metadata=auth)
    check("RevokeDevice", revoked.state == pb.DEVICE_STATE_REVOKED)

    def code_of(call):
        try:
            call()
        except grpc.RpcError as e:
            return e.code()
        return grpc.StatusCode.OK

    check("no token: UNAUTHENTICATED",
          code_of(lambda: stub.ListUsers(pb.ListUsersRequest())) == grpc.StatusCode.UNAUTHENTICATED)
    check("wrong token: UNAUTHENTICATED",
          code_of(lambda: stub.ListUsers(pb.ListUsersRequest(), metadata=[("authorization", "Bearer x")]))
          == grpc.StatusCode.UNAUTHENTICATED)
    check("bad user id: INVALID_ARGUMENT",
          code_of(lambda: stub.CreateUser(pb.CreateUserRequest(user_id="../etc"), metadata=auth))
          == grpc.StatusCode.INVALID_ARGUMENT)
    check("duplicate user: ALREADY_EXISTS",
          code_of(lambda: stub.CreateUser(pb.CreateUserRequest(user_id="pyuser"), metadata=auth))
          == grpc.StatusCode.ALREADY_EXISTS)
    check("unknown namespace: NOT_FOUND",
          code_of(lambda: stub.ListMembers(pb.ListMembersRequest(namespace_id="nope"), metadata=auth))
          == grpc.StatusCode.NOT_FOUND)
    check("revoked device cannot rejoin: FAILED_PRECONDITION",
          code_of(lambda: stub.AddDeviceToNamespace(pb.AddDeviceToNamespaceRequest(
              namespace_id="pyns", device_id=reg.device.device_id), metadata=auth))
          == grpc.StatusCode.FAILED_PRECONDITION)
    plain = pb_grpc.ManagementServiceStub(grpc.insecure_channel(address))
    check("plaintext client against the TLS server: UNAVAILABLE",
          code_of(lambda: plain.ListUsers(pb.ListUsersRequest(), metadata=auth, timeout=5))
          == grpc.StatusCode.UNAVAILABLE)
finally:
    server.terminate()
    server.wait(timeout=20)

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
