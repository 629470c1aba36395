#!/usr/bin/env python3
"""Converge side by side with rsync, unison and Syncthing, in one run, on this machine.

  tools/bench/run --mode quick     # small sizes, a few minutes (CI runs this)
  tools/bench/run --mode full      # the real figures (run by hand; results go under bench/results/)

Every tool syncs folder A to folder B on loopback. Time is measured from the change on A until
B's folder is identical (for continuously running tools: until the harness sees B match A; for
rsync and unison: the command's run). Bytes are bytes on the wire, both directions. Each
scenario is repeated; the report gives the median, min-max and the ratio Converge/peer, plus
CPU seconds and peak memory of every process. See docs/benchmark.md.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import stat
import socket
import statistics
import subprocess
import sys
import tarfile
import threading
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "bazel-bin")
MiB = 1 << 20
ON_DEMAND_SMALL = 1000  # S13: small files copied into an on-demand folder
# rsync's quick check compares whole seconds by default: a same-size file rewritten within the
# second (S11's checkouts) would be skipped. A negative window compares nanoseconds too.
RSYNC_EXACT = ["--modify-window=-1"]
STEADY = " [steady]"  # scenario names measured on a store and engines that have been running
CLK_TCK = os.sysconf("SC_CLK_TCK")

MODES = {
    "quick": dict(reps=2, many=(1000, 1024, 10), few=(200, 4096), big=8 * MiB, huge=32 * MiB,
                  corpus_limit=8 * MiB, latency_edits=15, sustained_s=3, rescan_files=3000, first_scan_limit=120, ingest_mib=32,
                  commits=300, fanout=[100], timeout=120,
                  steady=dict(commits=300, files=3000), history_steps=12, history_timeout=60, on_demand_entries=2000,
                  million_files=20000),
    "full": dict(reps=3, many=(10000, 1024, 10), few=(2000, 4096), big=100 * MiB, huge=1024 * MiB,
                 corpus_limit=None, latency_edits=200, sustained_s=10, rescan_files=100000, first_scan_limit=300, ingest_mib=512,
                 commits=3000, fanout=[100, 1000], timeout=900,
                 steady=dict(commits=5000, files=50000), history_steps=None, history_timeout=120,
                 on_demand_entries=100000, million_files=200000),
}
IGNORED = {".converge", ".stfolder", ".stversions"}


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def random_bytes(n):
    out = bytearray()
    while len(out) < n:
        out += os.urandom(min(64 * MiB, n - len(out)))
    return bytes(out)


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ----- what a folder holds ------------------------------------------------------------------

def manifest(root, scope):
    """{relative path: (size, mtime_ns) or 'dir'} below root/scope, skipping tools' own files."""
    out = {}
    base = os.path.join(root, scope)
    if not os.path.exists(base):
        return out
    if os.path.isfile(base):
        st = os.stat(base)
        return {scope: (st.st_size, st.st_mtime_ns)}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in IGNORED]
        rel = os.path.relpath(dirpath, root)
        if rel != scope:
            out[rel] = "dir"
        for name in filenames:
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


def content_hashes(root, scope):
    out = {}
    for rel, what in manifest(root, scope).items():
        if what == "dir":
            out[rel] = "dir"
            continue
        h = hashlib.sha256()
        with open(os.path.join(root, rel), "rb") as f:
            for block in iter(lambda: f.read(4 * MiB), b""):
                h.update(block)
        out[rel] = h.hexdigest()
    return out


def same(a, b, exact_mtime):
    if a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        if v == "dir" or w == "dir":
            if v != w:
                return False
        elif v[0] != w[0] or (exact_mtime and v[1] != w[1]):
            return False
    return True


# ----- per-process CPU, memory and TCP bytes --------------------------------------------------

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def process_tree(pid):
    """pid and its live descendants (a daemon may run its work in child processes)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(entry)[1]), []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_cpu(pid):
    """CPU seconds of pid's tree (live descendants, and reaped children of each)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = _stat_fields(p)
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def _status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def proc_mem(pid, field):
    """The largest `field` (VmRSS, VmHWM) in pid's tree."""
    return max([_status(p, field) for p in process_tree(pid)] or [0])


def reset_peak(pid):
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def tcp_bytes(pids):
    """Bytes sent + received over the established TCP sockets of pids (kernel counters)."""
    if not pids:
        return 0
    out = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True, text=True).stdout
    total, owner = 0, None
    wanted = {str(p) for p in pids}
    for line in out.splitlines():
        if not line.startswith(("\t", " ")) or "users:" in line:
            m = re.search(r"pid=(\d+)", line)
            owner = m.group(1) if m else None
            continue
        if owner in wanted:
            for key in ("bytes_sent", "bytes_received"):
                m = re.search(key + r":(\d+)", line)
                if m:
                    total += int(m.group(1))
    return total


class CountingRelay:
    """TCP relay 127.0.0.1:port -> target that counts bytes both ways (for unison)."""

    def __init__(self, target_port):
        self.target = target_port
        self.total = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(1 << 20)
                if not data:
                    break
                dst.sendall(data)
                with self.lock:
                    self.total += len(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def tree_bytes(path):
    """Bytes of every file below path (as allocated: what the disk holds)."""
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total


def stat_walk_seconds(path):
    """A bare walk of the tree that stats every entry (find -printf of each size), timed."""
    t0 = time.perf_counter()
    subprocess.run(["find", path, "-printf", "%s\n"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_measured(argv, timeout):
    """Runs argv to the end; returns its stderr and its peak RSS in bytes (VmHWM, read while it
    runs: a child's ru_maxrss starts from its parent's, this harness's, at the fork)."""
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        peak = 0
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                p.kill()
                raise RuntimeError(f"{argv[0]} ran past {timeout} s")
            time.sleep(0.005)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if p.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {stderr[-2000:]}")
        return stderr, peak


def absl_seconds(text):
    """Seconds of an absl duration as printed ("1.5s", "812.3ms", "1m2.5s", "950us")."""
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(h|m(?!s)|s|ms|us|ns)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    return total


# ----- the tools --------------------------------------------------------------------------------

class Tool:
    """A way to sync a.* to b.*; subclasses start daemons or run commands."""
    name = "?"
    continuous = False  # True: runs all the time and notices changes itself
    selective = False  # S12 drives keep_out and bring_back
    on_demand = False  # S13 drives mount_on_demand and unmount_on_demand
    exact_mtime = True

    def __init__(self, work):
        self.work = os.path.join(work, self.name)
        shutil.rmtree(self.work, ignore_errors=True)
        self.a = os.path.join(self.work, "a")
        self.b = os.path.join(self.work, "b")
        os.makedirs(self.a)
        os.makedirs(self.b)
        self.daemons = {}  # label -> Popen
        self.last_client = None  # (cpu seconds, max rss bytes) of the last command run
        self.seed = None  # steady state: {commits, files} of history A and B start with
        self.seeded = None  # Converge: what converge-bench history made

    def start(self):
        pass

    def stop(self):
        for p in self.daemons.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.daemons.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def pids(self):
        return {label: p.pid for label, p in self.daemons.items() if p.poll() is None}

    def approve_deletes(self):
        pass

    def kick(self):
        """Continuous tools: hint that A changed (Syncthing: explicit scan)."""

    def sync(self):
        """Command tools: run one sync A -> B."""

    def wire_bytes(self):
        return 0

    def keep_out(self, scope, timeout):
        """S12 (tools with `selective`): makes B keep no copy of scope."""

    def mount_on_demand(self, shows, timeout):
        """S13 (tools with `on_demand`): a third device's folder on demand; returns its path once
        it shows `shows`."""

    def unmount_on_demand(self):
        """S13: stops the third device."""

    def bring_back(self, scope):
        """S12: the change that has B hold scope again after keep_out."""

    new_device = False  # S14 drives join_new_device and leave_new_device

    def join_new_device(self, c, scope, want, timeout):
        """S14: brings the empty folder c up to A's scope (manifest `want`) as a new device would;
        returns the new device's peak RSS in bytes (0: not measured)."""
        raise NotImplementedError(f"{self.name}: S14's new device is not driven here")

    def leave_new_device(self, c):
        """S14: stops the new device and removes its folder."""
        shutil.rmtree(c, ignore_errors=True)

    def hop_bytes(self):
        """Tools that relay through a server: bytes of each device's own link; None: one link."""
        return None

    def run_client(self, argv, env=None):
        """Runs a client command; records its CPU and peak memory; returns its output.

        GNU time measures it: a child forked by this (large) Python process would report the
        harness's memory as its own peak."""
        report = os.path.join(self.work, "time.out")
        p = subprocess.run(["/usr/bin/time", "-o", report, "-f", "%U %S %M", *argv],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {p.returncode}: {p.stdout[-2000:]}")
        user, system, max_kib = open(report).read().split()[-3:]
        self.last_client = (float(user) + float(system), int(max_kib) * 1024)
        return p.stdout


class Converge(Tool):
    name = "converge"
    continuous = True
    selective = True
    on_demand = True
    new_device = True

    def __init__(self, work):
        super().__init__(work)
        self.token = "bench-token"
        self.service_token = "bench-service-token"

    def _spawn(self, label, argv):
        logf = open(os.path.join(self.work, f"{label}.log"), "ab")
        self.daemons[label] = subprocess.Popen(argv, stdout=logf, stderr=logf)

    def _port(self, name):
        path = os.path.join(self.work, name + ".port")
        for _ in range(400):
            if os.path.exists(path) and open(path).read().strip():
                return int(open(path).read())
            time.sleep(0.05)
        raise RuntimeError(f"converge: no port in {path}")

    def ctl(self, *args):
        subprocess.run([f"{BIN}/tools/convergectl/convergectl", f"--management={self.management}",
                        f"--token={self.token}", f"--tls_ca={self.tls}/ca.crt", *args], check=True, capture_output=True)

    def start(self):
        w = self.work
        # As deployed: TLS on every hop, device tokens signed by management.
        self.tls = os.path.join(w, "tls")
        subprocess.run([os.path.join(ROOT, "tools/certs/make-certs"), self.tls], check=True)
        self.service_tls = [f"--tls_ca={self.tls}/ca.crt", f"--tls_cert={self.tls}/service.crt",
                            f"--tls_key={self.tls}/service.key"]
        verify = f"--token_verify_key={self.tls}/token-verify.pub"
        self._spawn("notify", [f"{BIN}/services/notification/converge-notify",
                               f"--port_file={w}/notify.port", f"--service_token={self.service_token}",
                               verify, *self.service_tls])
        self.notify = f"127.0.0.1:{self._port('notify')}"
        self._spawn("store", [f"{BIN}/services/store/converge-store", f"--data_dir={w}/data/store",
                              f"--notify={self.notify}", f"--port_file={w}/store.port",
                              f"--service_token={self.service_token}", verify, *self.service_tls])
        self.store = f"127.0.0.1:{self._port('store')}"
        self._spawn("management", [f"{BIN}/services/management/converge-management",
                                   f"--data_dir={w}/data/management", f"--store={self.store}",
                                   f"--notify={self.notify}", f"--port_file={w}/management.port",
                                   f"--token={self.token}", f"--service_token={self.service_token}",
                                   f"--token_signing_key={self.tls}/token-signing.key", *self.service_tls])
        self.management = f"127.0.0.1:{self._port('management')}"
        self.ctl("users", "create", "bench")
        self.create_namespace()
        if self.seed:
            self.seed_history()
        for side, folder in (("engine_a", self.a), ("engine_b", self.b)):
            self._spawn(side, self.engine_argv(folder, "bench", side))
        self.engines_started()
        # Ready when a file from A shows up on B: after both engines applied the seeded history
        # (50,000 files in full mode), so that gets minutes.
        write_file(os.path.join(self.a, ".ready"), b"ready")
        deadline = time.time() + (900 if self.seed else 60)
        while not os.path.exists(os.path.join(self.b, ".ready")):
            if time.time() > deadline:
                raise RuntimeError("converge engines did not start; see " + self.work)
            time.sleep(0.02)
        if self.seed:
            self.wait_seeded()

    def create_namespace(self):
        self.ctl("namespaces", "create", "bench", "--owner=bench")

    def engines_started(self):
        pass

    def seed_history(self):
        """Steady state: the namespace gets a history of its own before the engines join (a third
        device's commits, made by converge-bench history straight against the store)."""
        started = time.time()
        out = subprocess.run([f"{BIN}/tools/bench/converge-bench", "history", f"--store={self.store}",
                              f"--service_token={self.service_token}", *self.service_tls,
                              f"--token_signing_key={self.tls}/token-signing.key", "--namespace_id=bench",
                              "--user_id=bench", f"--commits={self.seed['commits']}", f"--files={self.seed['files']}"],
                             check=True, capture_output=True, text=True).stdout
        self.seeded = json.loads(out)
        log(f"converge       seeded: {self.seeded['commits']} commits, {self.seeded['live_files']} live files, "
            f"{self.seeded['bytes'] / MiB:.0f} MiB written, in {time.time() - started:.1f}s")

    def wait_seeded(self):
        """Both engines pull the seeded history: B and A hold every live file, with its content."""
        started = time.time()
        deadline = started + 3600
        want = self.seeded["live_files"]
        while True:
            a, b = manifest(self.a, "seed"), manifest(self.b, "seed")
            if sum(1 for v in a.values() if v != "dir") == want and same(b, a, True):
                break
            if time.time() > deadline:
                raise RuntimeError(f"converge: engines hold {len(a)}/{len(b)} of {want} seeded files after an hour")
            time.sleep(0.5)
        if content_hashes(self.a, "seed") != content_hashes(self.b, "seed"):
            raise RuntimeError("converge: A and B differ after pulling the seeded history")
        log(f"converge       engines indexed the seeded {want} files in {time.time() - started:.1f}s")

    def approve_deletes(self):
        now = time.time()
        if now - getattr(self, "_last_approval", 0) < 0.2:
            return
        self._last_approval = now
        out = subprocess.run([f"{BIN}/tools/convergectl/convergectl", f"--management={self.management}",
                              f"--token={self.token}", f"--tls_ca={self.tls}/ca.crt", "--json", "deletes", "list"],
                             capture_output=True, text=True).stdout
        try:
            held = json.loads(out or "{}").get("deletes", [])
        except ValueError:
            return  # the next call asks again
        for d in held:
            if d.get("state") == "pending":
                self.ctl("deletes", "approve", d["namespace_id"], d["id"])

    def engine_argv(self, folder, namespace, name, *extra):
        return [f"{BIN}/engine/converge-engine", f"--folder={folder}", f"--management={self.management}",
                f"--token={self.token}", f"--tls_ca={self.tls}/ca.crt", "--user=bench", f"--namespace_id={namespace}",
                f"--device_name={name}", *extra]  # watcher on, verifying scan every 10 s

    def wire_bytes(self):
        return tcp_bytes([self.daemons["engine_a"].pid, self.daemons["engine_b"].pid])

    def select(self, flag, scope):
        subprocess.run([f"{BIN}/engine/converge-engine", "select", f"--folder={self.b}", f"{flag}={scope}"],
                       check=True, stdout=subprocess.DEVNULL)

    def keep_out(self, scope, timeout):
        self.select("--exclude", scope)
        deadline = time.time() + timeout
        while os.path.exists(os.path.join(self.b, scope)):
            if time.time() > deadline:
                raise RuntimeError(f"{self.name}: {scope} still on B after select --exclude")
            time.sleep(0.05)

    def bring_back(self, scope):
        self.select("--include", scope)

    def mount_on_demand(self, shows, timeout):
        c = os.path.join(self.work, "c")
        os.makedirs(c, exist_ok=True)
        self._spawn("engine_c", self.engine_argv(c, "bench", "engine_c", "--on_demand", "--cache_budget=4G"))
        deadline = time.time() + timeout
        while not os.path.exists(os.path.join(c, shows)):
            if time.time() > deadline or self.daemons["engine_c"].poll() is not None:
                raise RuntimeError(f"converge: the on-demand folder {c} does not show {shows}; see its log")
            time.sleep(0.02)
        return c

    def unmount_on_demand(self):
        p = self.daemons.pop("engine_c")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)

    def join_new_device(self, c, scope, want, timeout):
        # A third device enrolls into the namespace and pulls it: done when its engine says it is
        # up to date at A's cursor and its folder holds every file of the scope.
        with open(os.path.join(self.a, ".converge", "status.json")) as f:
            cursor = json.load(f).get("cursor", 0)
        self._spawn("engine_c", self.engine_argv(c, "bench", "engine_c"))
        status = os.path.join(c, ".converge", "status.json")
        deadline = time.time() + timeout
        while True:
            if time.time() > deadline or self.daemons["engine_c"].poll() is not None:
                raise RuntimeError(f"converge: the new device did not catch up in {timeout}s; see its log")
            try:
                with open(status) as f:
                    st = json.load(f)
                if st.get("state") == "up to date" and int(st.get("cursor", 0)) >= int(cursor):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        if not same(manifest(c, scope), want, self.exact_mtime):
            raise RuntimeError("converge: the new device says it is up to date but its folder differs from A's")
        return proc_mem(self.daemons["engine_c"].pid, "VmHWM")

    def leave_new_device(self, c):
        p = self.daemons.pop("engine_c")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
        shutil.rmtree(c, ignore_errors=True)

    def namespace_status_seconds(self):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            self.ctl("namespaces", "status", "bench")
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def hop_bytes(self):
        # Every byte crosses two links, A -> store and store -> B: wire_bytes counts both.
        return {"a": tcp_bytes([self.daemons["engine_a"].pid]), "b": tcp_bytes([self.daemons["engine_b"].pid])}


class RsyncLocal(Tool):
    name = "rsync_local"
    selective = True
    new_device = True

    total = 0

    def keep_out(self, scope, timeout):
        # rsync has no selection: the subtree is gone from B, and the next run copies it back.
        shutil.rmtree(os.path.join(self.b, scope))

    def sync(self):
        out = self.run_client(["rsync", "-a", "--delete", "--no-whole-file", "--stats", *RSYNC_EXACT, self.a + "/", self.b + "/"])
        self.total += rsync_stat_bytes(out)

    def join_new_device(self, c, scope, want, timeout):
        self.run_client(["rsync", "-a", "--delete", *RSYNC_EXACT, self.a + "/", c + "/"])
        return self.last_client[1]

    def wire_bytes(self):
        return self.total


def rsync_stat_bytes(out):
    total = 0
    for key in ("Total bytes sent", "Total bytes received"):
        m = re.search(key + r": ([\d,]+)", out)
        if m:
            total += int(m.group(1).replace(",", ""))
    return total


class RsyncDaemon(RsyncLocal):
    name = "rsync_daemon"
    new_device = False  # S14 sets Converge against rsync_local

    def start(self):
        self.port = free_port()
        conf = os.path.join(self.work, "rsyncd.conf")
        with open(conf, "w") as f:
            f.write(f"use chroot = false\npid file = {self.work}/rsyncd.pid\n[dst]\n  path = {self.b}\n"
                    "  read only = false\n  uid = root\n  gid = root\n")
        self.daemons["rsyncd"] = subprocess.Popen(
            ["rsync", "--daemon", "--no-detach", f"--config={conf}", "--address=127.0.0.1", f"--port={self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_tcp(self.port)

    def sync(self):
        out = self.run_client(["rsync", "-a", "--delete", "--stats", *RSYNC_EXACT, self.a + "/", f"rsync://127.0.0.1:{self.port}/dst/"])
        self.total += rsync_stat_bytes(out)


class RsyncDaemonZ(RsyncDaemon):
    """rsync over its daemon protocol with -z: the peer for compressible data."""
    name = "rsync_daemon_z"

    def sync(self):
        out = self.run_client(["rsync", "-az", "--delete", "--stats", *RSYNC_EXACT, self.a + "/",
                               f"rsync://127.0.0.1:{self.port}/dst/"])
        self.total += rsync_stat_bytes(out)


class UnisonSocket(Tool):
    name = "unison_socket"
    exact_mtime = False
    # Unison's fast check (size, mtime, inode) misses same-size in-place edits on this machine
    # (seen even with edits 1.1 s apart); the edit scenarios set this to hash file contents.
    careful = False

    def start(self):
        self.port = free_port()
        env = dict(os.environ, UNISON=os.path.join(self.work, "home_server"))
        self.daemons["unison_server"] = subprocess.Popen(
            ["unison", "-socket", str(self.port), "-listen", "127.0.0.1"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_tcp(self.port)
        self.relay = CountingRelay(self.port)

    def stop(self):
        super().stop()
        self.relay.close()

    def sync(self):
        env = dict(os.environ, UNISON=os.path.join(self.work, "home_client"))
        self.run_client(["unison", self.a, f"socket://127.0.0.1:{self.relay.port}/{self.b}", "-batch", "-auto",
                         "-times", "-silent", "-confirmbigdel=false", "-ui", "text",
                         "-fastcheck", "false" if self.careful else "default"], env=env)

    def wire_bytes(self):
        time.sleep(0.05)  # let the relay finish counting the last bytes
        return self.relay.total


class Syncthing(Tool):
    name = "syncthing"
    continuous = True
    folder = "bench"

    def _api(self, who, method, path, data=None, timeout=600):
        req = urllib.request.Request(f"http://{self.gui[who]}{path}", method=method, data=data,
                                     headers={"X-API-Key": "bench-apikey"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def start(self):
        env = dict(os.environ, STNOUPGRADE="1", STNORESTART="1", STNODEFAULTFOLDER="1")
        self.gui = {"a": f"127.0.0.1:{free_port()}", "b": f"127.0.0.1:{free_port()}"}
        ports = {"a": free_port(), "b": free_port()}
        ids = {}
        for n in ("a", "b"):
            home = os.path.join(self.work, "home_" + n)
            os.makedirs(os.path.join(getattr(self, n), ".stfolder"), exist_ok=True)
            subprocess.run(["syncthing", "generate", f"--home={home}", "--no-default-folder", "--skip-port-probing"],
                           check=True, capture_output=True, env=env)
            ids[n] = subprocess.run(["syncthing", "serve", f"--home={home}", "--device-id"], check=True,
                                    capture_output=True, text=True, env=env).stdout.strip()
        self.ids = ids
        for me, other in (("a", "b"), ("b", "a")):
            self._configure(me, other, ids, ports)
        for n in ("a", "b"):
            home = os.path.join(self.work, "home_" + n)
            logf = open(os.path.join(self.work, f"syncthing_{n}.log"), "ab")
            self.daemons["syncthing_" + n] = subprocess.Popen(
                ["syncthing", "serve", f"--home={home}", "--no-browser", "--no-restart", "--no-upgrade",
                 f"--gui-address=http://{self.gui[n]}", "--gui-apikey=bench-apikey"],
                stdout=logf, stderr=logf, env=env)
        deadline = time.time() + 120
        while True:
            try:
                conns = self._api("a", "GET", "/rest/system/connections")["connections"]
                if conns.get(ids["b"], {}).get("connected"):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("syncthing A and B never connected")
            time.sleep(0.2)
        log(f"syncthing connected after {120 - (deadline - time.time()):.1f}s")

    def _configure(self, me, other, ids, ports):
        path = os.path.join(self.work, "home_" + me, "config.xml")
        tree = ET.parse(path)
        root = tree.getroot()
        opts = root.find("options")

        def setopt(parent, tag, val):
            el = parent.find(tag)
            if el is None:
                el = ET.SubElement(parent, tag)
            el.text = str(val)

        for el in opts.findall("listenAddress"):
            opts.remove(el)
        ET.SubElement(opts, "listenAddress").text = f"tcp://127.0.0.1:{ports[me]}"
        for tag, val in [("globalAnnounceEnabled", "false"), ("localAnnounceEnabled", "false"),
                         ("relaysEnabled", "false"), ("natEnabled", "false"), ("startBrowser", "false"),
                         ("urAccepted", "-1"), ("urSeen", "3"), ("urURL", "http://127.0.0.1:1/"),
                         ("crashReportingEnabled", "false"), ("crashReportingURL", "http://127.0.0.1:1/"),
                         ("autoUpgradeIntervalH", "0"), ("releasesURL", "http://127.0.0.1:1/"),
                         ("stunServer", "127.0.0.1:1"), ("stunKeepaliveStartS", "0"),
                         ("globalAnnounceServer", "http://127.0.0.1:1/"), ("setLowPriority", "false"),
                         ("progressUpdateIntervalS", "-1"), ("restartOnWakeup", "false")]:
            setopt(opts, tag, val)
        gui = root.find("gui")
        setopt(gui, "address", self.gui[me])
        setopt(gui, "apikey", "bench-apikey")
        for d in root.findall("device"):
            root.remove(d)
        for did, name, addr in ((ids[me], me, "dynamic"), (ids[other], other, f"tcp://127.0.0.1:{ports[other]}")):
            d = ET.Element("device", {"id": did, "name": name, "compression": "metadata", "introducer": "false",
                                      "skipIntroductionRemovals": "false", "introducedBy": ""})
            ET.SubElement(d, "address").text = addr
            ET.SubElement(d, "paused").text = "false"
            ET.SubElement(d, "autoAcceptFolders").text = "false"
            root.insert(0, d)
        for f in root.findall("folder"):
            root.remove(f)
        f = ET.Element("folder", {"id": self.folder, "label": self.folder, "path": getattr(self, me),
                                  "type": "sendreceive", "rescanIntervalS": "3600", "fsWatcherEnabled": "true",
                                  "fsWatcherDelayS": "1", "ignorePerms": "false", "autoNormalize": "true"})
        ET.SubElement(f, "filesystemType").text = "basic"
        for did in (ids[me], ids[other]):
            ET.SubElement(f, "device", {"id": did, "introducedBy": ""})
        ET.SubElement(f, "markerName").text = ".stfolder"
        root.insert(0, f)
        tree.write(path)

    def kick(self, timeout=600):
        self._api("a", "POST", f"/rest/db/scan?folder={self.folder}", timeout=timeout)

    def wire_bytes(self):
        t = self._api("b", "GET", "/rest/system/connections")["total"]
        return t["inBytesTotal"] + t["outBytesTotal"]

    def stop(self):
        for n in ("a", "b"):
            try:
                self._api(n, "POST", "/rest/system/shutdown")
            except OSError:
                pass
        super().stop()


def wait_tcp(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class ConvergeEncrypted(Converge):
    """Converge on an end-to-end encrypted namespace (docs/security.md): the same deployment,
    every name, chunk and version sealed on the engines, every commit signed and checked. Fresh
    state only (converge-bench history commits plaintext straight into the store)."""
    name = "converge_e2e"
    steady_ok = False
    scenarios = {"S1", "S2", "S3", "S4", "S5", "S6", "S10"}

    def create_namespace(self):
        self.ctl("namespaces", "create", "bench", "--owner=bench", "--encrypted")

    def engines_started(self):
        # The user's steps: A makes the keyring; B asks; A approves B by the fingerprint B shows;
        # B accepts by A's.
        def keys(folder, *args):
            deadline = time.time() + 60
            while True:
                r = subprocess.run([f"{BIN}/engine/converge-engine", "keys", *args, f"--folder={folder}"],
                                   capture_output=True, text=True,
                                   env=dict(os.environ, CONVERGE_RECOVERY_PASSPHRASE="bench passphrase"))
                if r.returncode == 0:
                    return r.stdout
                if time.time() > deadline:
                    raise RuntimeError(f"converge_e2e: keys {args[0]}: {r.stderr.strip()}")
                time.sleep(0.2)  # the engine's control socket is not up yet

        def fingerprint(out):
            for line in out.splitlines():
                if "this device's key: " in line:
                    return line.split("this device's key: ", 1)[1].strip()
            raise RuntimeError("converge_e2e: no fingerprint in: " + out)

        a_fp = fingerprint(keys(self.a, "init"))
        b_fp = fingerprint(keys(self.b, "request"))
        device_b = None
        for line in keys(self.a, "status").splitlines():  # "  NAME (DEVICE-ID)  waiting ... fingerprint FP"
            m = re.match(r"\s+\S+ \((\S+)\)\s", line)
            if m and line.replace(" ", "").endswith(b_fp.replace(" ", "")):
                device_b = m.group(1)
        if device_b is None:
            raise RuntimeError("converge_e2e: B is not listed as waiting")
        keys(self.a, "approve", device_b, f"--fingerprint={b_fp}")
        keys(self.b, "accept", f"--fingerprint={a_fp}")


TOOLS = {"converge": Converge, "converge_e2e": ConvergeEncrypted, "rsync_local": RsyncLocal, "rsync_daemon": RsyncDaemon,
         "rsync_daemon_z": RsyncDaemonZ, "unison_socket": UnisonSocket, "syncthing": Syncthing}


# ----- measuring one change --------------------------------------------------------------------

def check_sample(a, b, scope, want, n=200):
    """S14: a folder too large to hash whole is checked by its manifest (taken by the caller)
    and the content of n files picked at random."""
    files = [rel for rel, what in want.items() if what != "dir"]
    for rel in random.Random(14).sample(files, min(n, len(files))):
        with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
            if fa.read() != fb.read():
                raise RuntimeError(f"{b}: {rel} differs from A's")


def measure(tool, change, scope, timeout, verify=True):
    """Makes `change` on A and returns the record of how tool brought B in line."""
    pids = tool.pids()
    for pid in pids.values():
        reset_peak(pid)
    cpu0 = {label: proc_cpu(pid) for label, pid in pids.items()}
    bytes0 = tool.wire_bytes()
    hops0 = tool.hop_bytes()
    t0 = time.perf_counter()
    change()
    if tool.continuous:
        tool.kick()
        want = manifest(tool.a, scope)
        seconds = wait_until_same(tool, scope, want, timeout) - t0
    else:
        tool.sync()
        seconds = time.perf_counter() - t0
    record = {"seconds": seconds, "bytes": tool.wire_bytes() - bytes0,
              "cpu_s": {label: round(proc_cpu(pid) - cpu0[label], 3) for label, pid in pids.items()},
              "peak_rss": {label: proc_mem(pid, "VmHWM") for label, pid in pids.items()}}
    if hops0 is not None:
        hops = {k: v - hops0[k] for k, v in tool.hop_bytes().items()}
        record["hops"] = hops
        record["link_bytes"] = max(hops.values())
    if tool.last_client is not None:
        record["cpu_s"]["client"] = round(tool.last_client[0], 3)
        record["peak_rss"]["client"] = tool.last_client[1]
        tool.last_client = None
    if verify:
        a, b = content_hashes(tool.a, scope), content_hashes(tool.b, scope)
        if a != b:
            raise RuntimeError(f"{tool.name}: B differs from A in {scope} after sync")
    return record


def wait_until_same(tool, scope, want, timeout):
    """Waits until B's scope matches `want` (A's manifest) and returns when it first did.

    A walk of 10,000 files costs Python ~0.15 CPU s: walking B back to back would take one of the
    machine's two cores from the tool being measured. Each poll instead stats the paths not yet
    seen matching, in A's order, and stops at the first that does not match (a few stats a poll
    while B fills in). When every path has matched, one full walk confirms the whole scope (no
    entry missing or extra, none changed since); the time is that of the last match. If the walk
    disagrees (an extra entry, say a peer's temp file), the stats start over after a pause as long
    as the walk took, so the harness never takes more than half a core."""
    deadline = time.time() + timeout
    pending = list(reversed(want.items()))  # popped from the end: A's walk order
    while True:
        if time.time() > deadline:
            raise RuntimeError(f"{tool.name}: B did not match A within {timeout}s for {scope}")
        while pending and entry_matches(tool, *pending[-1]):
            pending.pop()
        pause = 0.002
        if not pending:
            matched_at = time.perf_counter()
            if same(manifest(tool.b, scope), want, tool.exact_mtime):
                return matched_at
            pause = max(pause, time.perf_counter() - matched_at)
            pending = list(reversed(want.items()))
        time.sleep(pause)


def entry_matches(tool, rel, expected):
    try:
        st = os.lstat(os.path.join(tool.b, rel))
    except OSError:
        return False
    if expected == "dir":
        return stat.S_ISDIR(st.st_mode)
    return (stat.S_ISREG(st.st_mode) and st.st_size == expected[0] and
            (not tool.exact_mtime or st.st_mtime_ns == expected[1]))


def remove_scope(tool, scope, timeout):
    """Untimed cleanup: removes scope on A and waits until B has dropped it too."""
    path = os.path.join(tool.a, scope)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    if tool.continuous:
        tool.kick()
        deadline = time.time() + timeout
        while os.path.exists(os.path.join(tool.b, scope)):
            if time.time() > deadline:
                raise RuntimeError(f"{tool.name}: {scope} not removed on B")
            # Converge's store holds a delete of most of the namespace until an operator
            # approves it: the harness is that operator.
            tool.approve_deletes()
            time.sleep(0.01)
    else:
        tool.sync()


# ----- scenarios --------------------------------------------------------------------------------

class Bench:
    def __init__(self, mode, work, tools):
        self.cfg = MODES[mode]
        self.mode = mode
        self.work = work
        self.stage = os.path.join(work, "stage")
        self.tool_names = tools
        self.results = []  # {scenario, tool, runs: [...]} or extra figures
        self.notes = []
        self.only = set()  # scenario tags to run (S1..S13); empty: all
        self.states = ["fresh"]  # and/or "steady"
        self.figures = []  # S11's converged steps
        self.seeded = None  # what converge-bench history made (steady state)
        self.state = "fresh"

    def add(self, scenario, tool, record):
        if self.state == "steady":
            scenario += STEADY
        for r in self.results:
            if r["scenario"] == scenario and r["tool"] == tool:
                r["runs"].append(record)
                return
        self.results.append({"scenario": scenario, "tool": tool, "runs": [record]})

    def staged(self, name, build):
        """Builds content in a staging folder (same filesystem) and returns a change() that moves
        it into A at once."""
        src = os.path.join(self.stage, name)
        shutil.rmtree(src, ignore_errors=True)
        build(src)
        return src

    def initial(self, tool, scenario, scope, build):
        timeout = self.cfg["timeout"]
        for rep in range(self.cfg["reps"]):
            src = self.staged(scope, build)
            dst = os.path.join(tool.a, scope)
            rec = measure(tool, lambda: os.rename(src, dst), scope, timeout)
            self.add(scenario, tool.name, rec)
            log(f"{tool.name:14s} {scenario:32s} {rec['seconds']:8.3f}s {rec['bytes']:>12,d} B")
            remove_scope(tool, scope, timeout)

    def run_tool(self, tool):
        cfg = self.cfg
        # What this tool is measured in (converge_e2e: the scenarios encryption is set against).
        want = lambda tag: self.want(tag) and tag in getattr(tool, "scenarios", {tag})
        n, size, dirs = cfg["many"]

        def many_files(count, size, folders):
            def build(root):
                for i in range(count):
                    write_file(os.path.join(root, f"d{i % folders:02d}", f"f{i:06d}.bin"), os.urandom(size))
            return build

        if want("S1"):
            self.initial(tool, f"S1 initial {n}x{size // 1024}KiB", "s1", many_files(n, size, dirs))
        n2, size2 = cfg["few"]
        if want("S2"):
            self.initial(tool, f"S2 initial {n2}x{size2 // 1024}KiB", "s2", many_files(n2, size2, 1))
        big_label = f"{cfg['big'] // MiB}MiB"
        if want("S3"):
            self.initial(tool, f"S3a initial {big_label} file", "s3a",
                         lambda root: write_file(os.path.join(root, "big.bin"), random_bytes(cfg["big"])))
            self.initial(tool, f"S3b initial {cfg['huge'] // MiB}MiB file", "s3b",
                         lambda root: write_file(os.path.join(root, "huge.bin"), random_bytes(cfg["huge"])))
            if self.state == "fresh":
                self.initial(tool, "S3c initial compressible corpus", "s3c", self.build_corpus)
        if want("S4") or want("S5"):
            self.edits(tool, big_label)
        if tool.continuous and want("S6"):
            self.latency(tool)
        if tool.continuous and want("S10") and self.state == "fresh":
            self.sustained(tool)
        if want("S11"):
            self.real_history(tool)
        if want("S12") and self.state == "fresh":
            self.selective(tool, n2, size2)
        if want("S13"):
            self.on_demand(tool)
        if want("S14") and self.state == "fresh":
            self.million(tool)
        # Last: a Syncthing whose first scan of S7's tree runs past its limit is still indexing
        # when rescan returns, and would time out whatever came after it.
        if want("S7") and self.state == "fresh":
            self.rescan(tool)

    def on_demand(self, tool):
        """S13 (tools with `on_demand`): once A's files reached B, a third device mounts the
        namespace on demand (FUSE) and is timed there: the first byte at never-fetched offsets of a
        big file, a cold sequential read of another (its rate set against B's full download of that
        file, timed in this run), and ls -lR of a tree of many entries against ls -lR of A's copy."""
        cfg, timeout, scope = self.cfg, self.cfg["timeout"], "s13"
        if not tool.on_demand:
            self.notes.append(f"S13: {tool.name} has no on-demand folders (not measured)")
            return
        big, count, reps = cfg["big"], cfg["on_demand_entries"], max(cfg["reps"], 3)

        def build(root):
            write_file(os.path.join(root, "first.bin"), random_bytes(big))
            for i in range(count):
                write_file(os.path.join(root, "tree", f"d{i % 100:03d}", f"f{i:06d}"), b"x")

        src = self.staged(scope, build)
        measure(tool, lambda: os.rename(src, os.path.join(tool.a, scope)), scope, timeout, verify=False)
        cold = self.staged(scope + "-cold", lambda root: write_file(os.path.join(root, "cold.bin"), random_bytes(big)))
        download = measure(tool, lambda: os.rename(os.path.join(cold, "cold.bin"), os.path.join(tool.a, scope, "cold.bin")),
                           scope, timeout, verify=False)["seconds"]
        c = tool.mount_on_demand(os.path.join(scope, "cold.bin"), timeout)
        try:
            with open(os.path.join(tool.a, scope, "first.bin"), "rb") as f:
                want = f.read()
            firsts = []
            for rep in range(reps):  # each at an offset no read has fetched yet
                offset = rep * (big // reps)
                t0 = time.perf_counter()
                fd = os.open(os.path.join(c, scope, "first.bin"), os.O_RDONLY)
                got = os.pread(fd, 1, offset)
                firsts.append(time.perf_counter() - t0)
                os.close(fd)
                if got != want[offset:offset + 1]:
                    raise RuntimeError(f"{tool.name}: S13 first byte at {offset} differs from A's")
            h = hashlib.sha256()
            t0 = time.perf_counter()
            with open(os.path.join(c, scope, "cold.bin"), "rb", buffering=0) as f:
                while block := f.read(MiB):
                    h.update(block)
            cold_s = time.perf_counter() - t0
            with open(os.path.join(tool.a, scope, "cold.bin"), "rb") as f:
                a_digest = hashlib.sha256(f.read()).hexdigest()
            if h.hexdigest() != a_digest:
                raise RuntimeError(f"{tool.name}: S13 cold read differs from A's file")
            ls_c, ls_a = [], []
            for rep in range(reps):
                for where, times in ((c, ls_c), (tool.a, ls_a)):
                    t0 = time.perf_counter()
                    subprocess.run(["ls", "-lR", os.path.join(where, scope, "tree")], check=True,
                                   stdout=subprocess.DEVNULL)
                    times.append(time.perf_counter() - t0)
            written_s, small_s = self.write_on_demand(tool, c, scope)
        finally:
            tool.unmount_on_demand()
        rec = {"seconds": 0, "first_byte_s": firsts, "cold_read_s": cold_s, "full_download_s": download,
               "bytes": big, "entries": count + 100, "ls_on_demand_s": ls_c, "ls_local_s": ls_a,
               "written_up_s": written_s, "small_written_up_s": small_s, "small_files": ON_DEMAND_SMALL}
        self.add_figure("S13 on demand", tool.name, rec)
        log(f"{tool.name:14s} {'S13 first byte (median)':32s} {statistics.median(firsts) * 1000:8.1f}ms")
        log(f"{tool.name:14s} {'S13 cold read vs full download':32s} {cold_s:8.3f}s vs {download:.3f}s")
        log(f"{tool.name:14s} {'S13 ls -lR on demand vs local':32s} {statistics.median(ls_c):8.3f}s vs "
            f"{statistics.median(ls_a):.3f}s")
        log(f"{tool.name:14s} {'S13 written through the mount':32s} {statistics.median(written_s):8.3f}s on A "
            f"(A to B: {download:.3f}s); "
            f"{ON_DEMAND_SMALL} small files {small_s:.3f}s")
        remove_scope(tool, scope, timeout)

    def million(self, tool):
        """S14 (issue 24): a folder of many 1 KiB files, ten a directory (1,000,000 in 100,000
        directories by hand: --million-files): the first sync A to B; what each file costs the
        engines (peak RSS, index on disk) and the store (peak RSS); a new device catching up from
        nothing (Converge: a third engine joining, from the store's file table; rsync: a run into
        an empty folder); and, for Converge, how fast an operator's namespace status answers."""
        if not tool.new_device:
            self.notes.append(f"S14: {tool.name} not measured (its new device is not driven here)")
            return
        count, scope = self.cfg["million_files"], "s14"
        timeout = max(self.cfg["timeout"], count // 200)
        scenario = f"S14 {count:,} files first sync"

        def build(root):
            for i in range(count):
                write_file(os.path.join(root, f"d{i // 10:06d}", f"f{i:07d}"), f"{i:07d}".encode() * 128)

        t_build = time.perf_counter()
        src = self.staged(scope, build)
        want = manifest(self.stage, scope)
        log(f"{tool.name:14s} S14 staged {count:,} files in {time.perf_counter() - t_build:.1f}s")
        pids = tool.pids()
        for pid in pids.values():
            reset_peak(pid)
        t0 = time.perf_counter()
        os.rename(src, os.path.join(tool.a, scope))
        if tool.continuous:
            tool.kick()
            first = wait_until_same(tool, scope, want, timeout) - t0
        else:
            tool.sync()
            first = time.perf_counter() - t0
        rec = {"seconds": first, "files": count, "peak_rss": {label: proc_mem(pid, "VmHWM") for label, pid in pids.items()}}
        check_sample(tool.a, tool.b, scope, want)
        c = os.path.join(self.work, "c14")
        shutil.rmtree(c, ignore_errors=True)
        os.makedirs(c)
        t0 = time.perf_counter()
        rss_c = tool.join_new_device(c, scope, want, timeout)
        rec["new_device_s"] = time.perf_counter() - t0
        if rss_c:
            rec["peak_rss"]["engine_c"] = rss_c
        check_sample(tool.a, c, scope, want)
        if isinstance(tool, Converge):
            rec["index_bytes"] = {side: tree_bytes(os.path.join(folder, ".converge", "index.rocksdb"))
                                  for side, folder in (("a", tool.a), ("b", tool.b), ("c", c))}
            rec["status_s"] = tool.namespace_status_seconds()
        tool.leave_new_device(c)
        self.add(scenario, tool.name, rec)
        per = lambda b: f"{b / count:.0f} B/file"
        extra = ""
        if "index_bytes" in rec:
            extra = (f"; engine RSS A {per(rec['peak_rss'].get('engine_a', 0))}, B {per(rec['peak_rss'].get('engine_b', 0))}, "
                     f"C {per(rec['peak_rss'].get('engine_c', 0))}; index A {per(rec['index_bytes']['a'])}, "
                     f"B {per(rec['index_bytes']['b'])}; store RSS {rec['peak_rss'].get('store', 0) / MiB:.0f} MiB; "
                     f"status {rec['status_s'] * 1000:.0f} ms")
        log(f"{tool.name:14s} {'S14 first sync / new device':32s} {first:8.3f}s / {rec['new_device_s']:.3f}s{extra}")
        remove_scope(tool, scope, timeout)

    def write_on_demand(self, tool, c, scope):
        """S13: a big file copied into the on-demand folder, then a folder of small files, each
        timed from the copy's start until A holds all of it (verified)."""
        timeout, big = self.cfg["timeout"], self.cfg["big"]
        staged = self.staged(scope + "-w", lambda root: (
            write_file(os.path.join(root, "written.bin"), random_bytes(big)),
            [write_file(os.path.join(root, "small", f"s{i:04d}"), random_bytes(4096)) for i in range(ON_DEMAND_SMALL)]))
        with open(os.path.join(staged, "written.bin"), "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()

        def arrived(path):
            try:
                if os.path.getsize(path) != big:
                    return False
                with open(path, "rb") as f:
                    return hashlib.sha256(f.read()).hexdigest() == want
            except OSError:
                return False

        def small_arrived(d):
            try:
                names = os.listdir(d)
                return len(names) == ON_DEMAND_SMALL and all(os.path.getsize(os.path.join(d, n)) == 4096 for n in names)
            except OSError:
                return False

        times, copies = [], []
        reps = max(self.cfg["reps"], 3)
        runs = [(lambda n=n: shutil.copyfile(os.path.join(staged, "written.bin"), os.path.join(c, scope, f"written-{n}.bin")),
                 lambda n=n: arrived(os.path.join(tool.a, scope, f"written-{n}.bin"))) for n in range(reps)]
        runs.append((lambda: shutil.copytree(os.path.join(staged, "small"), os.path.join(c, scope, "small")),
                     lambda: small_arrived(os.path.join(tool.a, scope, "small"))))
        for src, check in runs:
            t0 = time.perf_counter()
            src()
            copies.append(time.perf_counter() - t0)
            deadline = t0 + timeout
            while not check():
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{tool.name}: S13 what was written through the mount did not reach A")
                time.sleep(0.005)
            times.append(time.perf_counter() - t0)
        strip = lambda hashes: {os.path.basename(k): v for k, v in hashes.items()}
        if strip(content_hashes(staged, "small")) != strip(content_hashes(tool.a, os.path.join(scope, "small"))):
            raise RuntimeError(f"{tool.name}: S13 small files written through the mount differ on A")
        log(f"{tool.name:14s} {'S13 copies into the mount took':32s} {statistics.median(copies[:-1]):8.3f}s and "
            f"{copies[-1]:.3f}s")
        return times[:-1], times[-1]

    def selective(self, tool, count, size):
        """S12: a synced subtree of count x size files kept off B (Converge: select --exclude on B,
        its copies removed; rsync: the subtree deleted on B), then brought back (select --include;
        an rsync run): until B holds it again, verified."""
        timeout, scope = self.cfg["timeout"], "s12"
        scenario = f"S12 {count}x{size // 1024}KiB subtree brought back to B"

        def build(root):
            for i in range(count):
                write_file(os.path.join(root, f"d{i % 20:02d}", f"f{i:06d}.bin"), os.urandom(size))

        if not tool.selective:
            self.notes.append(f"S12: {tool.name} not measured (its selective sync is not driven here)")
            return
        src = self.staged(scope, build)
        measure(tool, lambda: os.rename(src, os.path.join(tool.a, scope)), scope, timeout)
        for rep in range(self.cfg["reps"]):
            tool.keep_out(scope, timeout)
            rec = measure(tool, lambda: tool.bring_back(scope), scope, timeout)
            self.add(scenario, tool.name, rec)
            log(f"{tool.name:14s} {'S12 subtree brought back':32s} {rec['seconds']:8.3f}s {rec['bytes']:>12,d} B")
        remove_scope(tool, scope, timeout)

    def want(self, tag):
        return not self.only or tag in self.only

    def build_corpus(self, root):
        """A tar of /usr/share/doc behind a first member of random bytes and random length, its
        bytes then mapped through a random permutation of the 256 byte values: the same
        redundancy for every compressor (repeats stay repeats), but new bytes every run, so that
        no run reuses chunks an earlier run stored (content-defined chunking would otherwise find
        the shared members, and runs after the first would measure dedup, not a first sync)."""
        os.makedirs(root)
        path = os.path.join(root, "corpus.tar")
        limit = self.cfg["corpus_limit"]
        with tarfile.open(path, "w") as tar:
            nonce = os.path.join(self.stage, "nonce.bin")
            write_file(nonce, os.urandom(1 + int.from_bytes(os.urandom(2), "little") % 8191))
            tar.add(nonce, arcname="nonce.bin")
            total = 0
            for dirpath, _, files in sorted(os.walk("/usr/share/doc")):
                for name in sorted(files):
                    p = os.path.join(dirpath, name)
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    tar.add(p, arcname=os.path.relpath(p, "/usr/share"))
                    total += os.path.getsize(p)
                    if limit and total >= limit:
                        break
                if limit and total >= limit:
                    break
        perm = list(range(256))
        random.shuffle(perm)
        with open(path, "rb") as f:
            data = f.read().translate(bytes(perm))
        with open(path, "wb") as f:
            f.write(data)

    def edits(self, tool, big_label):
        """S4/S5: a big file already on both sides; 1 MiB overwritten mid-file, 1 KiB inserted."""
        cfg, timeout = self.cfg, self.cfg["timeout"]
        scope = "s45"
        src = self.staged(scope, lambda root: write_file(os.path.join(root, "big.bin"), random_bytes(cfg["big"])))
        measure(tool, lambda: os.rename(src, os.path.join(tool.a, scope)), scope, timeout)
        path = os.path.join(tool.a, scope, "big.bin")
        tool.careful = True
        for rep in range(cfg["reps"]):
            time.sleep(1.1)  # unison's fast check compares mtimes in whole seconds

            def overwrite():
                with open(path, "r+b") as f:
                    f.seek(cfg["big"] // 2)
                    f.write(os.urandom(MiB))

            rec = measure(tool, overwrite, scope, timeout)
            self.add(f"S4 1MiB overwritten in {big_label}", tool.name, rec)
            log(f"{tool.name:14s} {'S4 overwrite 1MiB':32s} {rec['seconds']:8.3f}s {rec['bytes']:>12,d} B")
            time.sleep(1.1)
            data = open(path, "rb").read()
            off = len(data) // 2 + 17
            staged_file = os.path.join(self.stage, "insert.bin")
            write_file(staged_file, data[:off] + os.urandom(1024) + data[off:])
            rec = measure(tool, lambda: os.replace(staged_file, path), scope, timeout)
            self.add(f"S5 1KiB inserted in {big_label}", tool.name, rec)
            log(f"{tool.name:14s} {'S5 insert 1KiB':32s} {rec['seconds']:8.3f}s {rec['bytes']:>12,d} B")
        tool.careful = False
        remove_scope(tool, scope, timeout)

    def latency(self, tool):
        """S6: one small edit at a time on A, until B has it; continuous tools only."""
        path_a = os.path.join(tool.a, "latency.txt")
        path_b = os.path.join(tool.b, "latency.txt")
        staged_file = os.path.join(self.stage, "latency.txt")
        samples = []
        for i in range(self.cfg["latency_edits"]):
            token = f"edit {i} {os.urandom(8).hex()}\n".encode()
            write_file(staged_file, token)
            t0 = time.perf_counter()
            os.replace(staged_file, path_a)  # editors' save: write a temp file, rename over
            deadline = time.time() + 30
            while True:
                try:
                    with open(path_b, "rb") as f:
                        if f.read() == token:
                            break
                except FileNotFoundError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"{tool.name}: edit {i} never reached B")
                time.sleep(0.0005)
            samples.append(time.perf_counter() - t0)
            time.sleep(0.01)
        samples.sort()
        q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))]
        rec = {"seconds": q(0.5), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "edits": len(samples)}
        self.add("S6 single small edit latency", tool.name, rec)
        log(f"{tool.name:14s} {'S6 latency':32s} p50 {rec['p50'] * 1000:.1f}ms p95 {rec['p95'] * 1000:.1f}ms "
            f"p99 {rec['p99'] * 1000:.1f}ms")

    def sustained(self, tool):
        """S10: 100 edits/s on A (each a new small file, written in place) for sustained_s seconds;
        the lag of each edit until B has it, and whether the lag grows (last second vs first)."""
        n = 100 * self.cfg["sustained_s"]
        folder_a = os.path.join(tool.a, "sustained")
        folder_b = os.path.join(tool.b, "sustained")
        os.makedirs(folder_a)
        written = [None] * n
        lag = [None] * n

        def writer():
            start = time.perf_counter()
            for i in range(n):
                delay = start + i / 100 - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                written[i] = time.perf_counter()
                write_file(os.path.join(folder_a, f"e{i:05d}"), f"edit {i}\n".encode())

        t = threading.Thread(target=writer)
        t.start()
        nxt = 0
        deadline = time.time() + self.cfg["sustained_s"] + 120
        # Files may arrive out of order (a tool is free to batch); poll each outstanding one.
        while nxt < n and time.time() < deadline:
            now = time.perf_counter()
            for i in range(nxt, n):
                if lag[i] is None and written[i] is not None and os.path.exists(os.path.join(folder_b, f"e{i:05d}")):
                    lag[i] = now - written[i]
                if written[i] is None:
                    break
            while nxt < n and lag[nxt] is not None:
                nxt += 1
            time.sleep(0.0005)
        t.join()
        if nxt < n:
            raise RuntimeError(f"{tool.name}: only {nxt} of {n} sustained edits reached B")
        ordered = sorted(lag)
        q = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))]
        rec = {"seconds": q(lag, 0.5), "p50": q(lag, 0.5), "p95": q(lag, 0.95), "p99": q(lag, 0.99),
               "edits": n, "first_p95": q(lag[:100], 0.95), "last_p95": q(lag[-100:], 0.95),
               "max": ordered[-1]}
        self.add("S10 sustained 100 edits/s lag", tool.name, rec)
        log(f"{tool.name:14s} {'S10 100 edits/s':32s} p50 {rec['p50'] * 1000:.1f}ms p99 {rec['p99'] * 1000:.1f}ms "
            f"first-second p95 {rec['first_p95'] * 1000:.1f}ms last-second p95 {rec['last_p95'] * 1000:.1f}ms")
        remove_scope(tool, "sustained", self.cfg["timeout"])

    def rescan(self, tool):
        """S7: a no-op sync over many files: time, and files hashed where the tool tells."""
        count = self.cfg["rescan_files"]
        scenario = f"S7 no-op rescan of {count} files"
        folder = os.path.join(self.work, "rescan_" + tool.name)
        if not os.path.exists(os.path.join(folder, "done")):
            shutil.rmtree(folder, ignore_errors=True)
            for i in range(count):
                write_file(os.path.join(folder, "data", f"d{i // 1000:03d}", f"f{i:06d}"), b"x" * 100)
            open(os.path.join(folder, "done"), "w").close()
        data = os.path.join(folder, "data")
        if isinstance(tool, Converge):
            target = os.path.join(self.work, "rescan_converge_folder")
            if not os.path.exists(target):
                shutil.copytree(data, target)
                tool.ctl("namespaces", "create", "rescan", "--owner=bench")
            argv = tool.engine_argv(target, "rescan", "rescanner", "--once")
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, timeout=3600)  # first sync: untimed
            first = time.perf_counter() - t0
            # What a file costs the engine: its index on disk, and the memory of a run that scans
            # them all; and the scan against a bare walk that stats every entry (find).
            index_bytes = tree_bytes(os.path.join(target, ".converge", "index.rocksdb"))
            walk_s = min(stat_walk_seconds(target) for _ in range(3))
            # The verifying scan a running engine makes every --rescan_interval (the engine is
            # not running: converge-bench runs it alone), best of three.
            verifies = [json.loads(subprocess.run([f"{BIN}/tools/bench/converge-bench", "verify", f"--folder={target}"],
                                                  check=True, capture_output=True, text=True, timeout=600).stdout)
                        for _ in range(3)]
            verify = min(verifies, key=lambda v: v["seconds"])
            for _ in range(self.cfg["reps"]):
                t0 = time.perf_counter()
                stderr, rss = run_measured(argv, timeout=600)
                total = time.perf_counter() - t0
                m = re.search(r"scanned (\d+) entries in ([^,]+), (\d+) files hashed", stderr)
                rec = {"seconds": total, "entries": int(m.group(1)), "scan": m.group(2),
                       "files_hashed": int(m.group(3)), "first_pass_s": first,
                       "index_bytes_per_file": index_bytes / count, "rss_bytes_per_file": rss / count,
                       "engine_rss": rss, "stat_walk_s": walk_s,
                       "scan_vs_stat_walk": absl_seconds(m.group(2)) / walk_s,
                       "verify_s": verify["seconds"], "verify_vs_stat_walk": verify["seconds"] / walk_s,
                       "verify_rss_bytes_per_file": verify["max_rss_bytes"] / count}
                self.add(scenario, tool.name, rec)
                log(f"{tool.name:14s} {'S7 rescan':32s} {total:8.3f}s scan {rec['scan']} hashed {rec['files_hashed']} "
                    f"(x{rec['scan_vs_stat_walk']:.2f} a stat walk of {walk_s:.3f}s; index {rec['index_bytes_per_file']:.0f} "
                    f"B/file, RSS {rec['rss_bytes_per_file']:.0f} B/file; verifying scan {verify['seconds']:.3f}s "
                    f"x{rec['verify_vs_stat_walk']:.2f}, RSS {rec['verify_rss_bytes_per_file']:.0f} B/file)")
        elif isinstance(tool, Syncthing):
            # Index the files on A alone (B paused), then time a scan that finds nothing new.
            self._pause_b(tool, True)
            shutil.copytree(data, os.path.join(tool.a, "s7"))
            t0 = time.perf_counter()
            limit = self.cfg["first_scan_limit"]
            try:
                tool.kick(timeout=limit)  # the first scan indexes every file
            except OSError:
                note = (f"syncthing: the first scan of {count} files did not finish within {limit} s "
                        "(no S7 figure)")
                self.notes.append(note)
                log(note)
                return  # the instance is still busy indexing; stop() ends it
            first = time.perf_counter() - t0
            for _ in range(self.cfg["reps"]):
                t0 = time.perf_counter()
                tool.kick()
                rec = {"seconds": time.perf_counter() - t0, "files_hashed": None, "first_pass_s": first}
                self.add(scenario, tool.name, rec)
                log(f"{tool.name:14s} {'S7 rescan':32s} {rec['seconds']:8.3f}s")
            shutil.rmtree(os.path.join(tool.a, "s7"))
            tool.kick()
            self._pause_b(tool, False)
        else:
            shutil.copytree(data, os.path.join(tool.a, "s7"))
            t0 = time.perf_counter()
            tool.sync()
            first = time.perf_counter() - t0
            for _ in range(self.cfg["reps"]):
                t0 = time.perf_counter()
                tool.sync()
                rec = {"seconds": time.perf_counter() - t0, "files_hashed": None, "first_pass_s": first}
                self.add(scenario, tool.name, rec)
                log(f"{tool.name:14s} {'S7 rescan':32s} {rec['seconds']:8.3f}s")
            shutil.rmtree(os.path.join(tool.a, "s7"))
            tool.sync()

    def _pause_b(self, tool, paused):
        tool._api("a", "POST", f"/rest/system/{'pause' if paused else 'resume'}?device={tool.ids['b']}")

    def service_load(self, converge):
        """S8 store ingest and S9 notification fan-out, against Converge's running services."""
        cfg = self.cfg
        bench = f"{BIN}/tools/bench/converge-bench"
        pids = converge.pids()
        for label in ("store", "notify", "management"):
            reset_peak(pids[label])
        cpu0 = {label: proc_cpu(pid) for label, pid in pids.items()}
        load_auth = [*converge.service_tls, f"--token_signing_key={converge.tls}/token-signing.key"]
        out = subprocess.run([bench, "ingest", f"--store={converge.store}", f"--service_token={converge.service_token}",
                              *load_auth,
                              f"--mib={cfg['ingest_mib']}", "--streams=2", f"--commits={cfg['commits']}", "--threads=8"],
                             check=True, capture_output=True, text=True).stdout
        rec = json.loads(out)
        rec["seconds"] = rec["ingest_seconds"]
        rec["cpu_s"] = {label: round(proc_cpu(pid) - cpu0[label], 3) for label, pid in pids.items()}
        rec["peak_rss"] = {label: proc_mem(pid, "VmHWM") for label, pid in pids.items()}
        self.add("S8 store ingest (durable)", "converge", rec)
        log(f"converge       S8 ingest {rec['ingest_mb_per_s']:.0f} MB/s, {rec['commits_per_s']:.0f} commits/s")
        for n in cfg["fanout"]:
            notify_pid = pids["notify"]
            reset_peak(notify_pid)
            rss0 = proc_mem(notify_pid, "VmRSS")
            cpu0 = proc_cpu(notify_pid)
            p = subprocess.Popen([bench, "fanout", f"--notify={converge.notify}", *load_auth,
                                  f"--service_token={converge.service_token}", f"--subscribers={n}", "--events=7"],
                                 stdout=subprocess.PIPE, text=True)
            peak = 0
            while p.poll() is None:
                peak = max(peak, proc_mem(notify_pid, "VmRSS"))
                time.sleep(0.01)
            rec = json.loads(p.stdout.read())
            rec["seconds"] = rec["fanout_median_ms"] / 1000
            rec["notify_rss_before"] = rss0
            rec["notify_rss_peak"] = max(peak, proc_mem(notify_pid, "VmHWM"))
            rec["store_rss"] = proc_mem(pids["store"], "VmRSS")
            rec["management_rss"] = proc_mem(pids["management"], "VmRSS")
            rec["cpu_s"] = {"notify": round(proc_cpu(notify_pid) - cpu0, 3)}
            self.add(f"S9 fan-out to {n} engines", "converge", rec)
            log(f"converge       S9 {n} engines: fan-out median {rec['fanout_median_ms']:.2f} ms, "
                f"max {rec['fanout_max_ms']:.2f} ms, notify peak RSS {rec['notify_rss_peak'] / MiB:.1f} MiB")

    def run(self):
        os.makedirs(self.stage, exist_ok=True)
        for state in self.states:
            self.state = state
            for name in self.tool_names:
                if state == "steady" and not getattr(TOOLS[name], "steady_ok", True):
                    continue
                tool = TOOLS[name](self.work)
                log(f"--- {name} ({state})")
                if state == "steady":
                    tool.seed = self.cfg["steady"]
                tool.start()
                try:
                    if state == "steady" and isinstance(tool, Converge):
                        self.seeded = tool.seeded
                    if state == "steady" and not isinstance(tool, Converge):
                        self.seed_peer(tool)
                    self.run_tool(tool)
                    if state == "fresh" and name == "converge" and (self.want("S8") or self.want("S9")):
                        self.service_load(tool)
                finally:
                    tool.stop()
                shutil.rmtree(tool.work, ignore_errors=True)

    def seeded_text(self):
        if "steady" not in self.states:
            return None
        st = self.cfg["steady"]
        text = f"peers start from a synced tree of {st['files']:,} files"
        if self.seeded:
            sd = self.seeded
            text = (f"Converge's store holds a namespace of {sd['commits']:,} commits ({sd['versions']:,} file "
                    f"versions, {sd['bytes'] / MiB:,.0f} MiB written over its history) that both engines pulled "
                    f"and index ({sd['live_files']:,} live files); " + text)
        return text

    def seed_peer(self, tool):
        """Steady state for a peer: the same shape of tree as Converge's seeded history (its live
        files, sizes drawn the same way), synced once, untimed."""
        started = time.time()
        rng = random.Random(20261205)
        files = self.cfg["steady"]["files"]
        for i in range(files):
            r = rng.randrange(100)
            size = (1024 + rng.randrange(7 << 10) if r < 85 else
                    (8 << 10) + rng.randrange(56 << 10) if r < 99 else MiB + rng.randrange(4 * MiB))
            write_file(os.path.join(tool.a, "seed", f"d{i % 200}", f"f{i}.bin"), os.urandom(size))
        if tool.continuous:
            tool.kick()
            deadline = time.time() + 3600
            while not same(manifest(tool.b, "seed"), manifest(tool.a, "seed"), tool.exact_mtime):
                if time.time() > deadline:
                    raise RuntimeError(f"{tool.name}: the seeded tree did not reach B within an hour")
                time.sleep(0.5)
        else:
            tool.sync()
        log(f"{tool.name:14s} seeded {files} files in {time.time() - started:.1f}s")

    def real_history(self, tool):
        """S11: Converge's own git history, first-parent commits checked out one after another into
        A (git read-tree -u -m, a private index); each step timed until B matches and verified."""
        cfg = self.cfg
        try:
            commits = subprocess.run(["git", "-C", ROOT, "rev-list", "--first-parent", "--reverse", "HEAD"],
                                     check=True, capture_output=True, text=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            commits = []
        if len(commits) < 2:
            self.notes.append("S11 skipped: no git history here")
            return
        n = cfg["history_steps"]
        if n and len(commits) > n + 1:
            commits = [commits[round(i * (len(commits) - 1) / n)] for i in range(n + 1)]
        scope = "s11"
        tree = os.path.join(tool.a, scope)
        os.makedirs(tree)
        env = dict(os.environ, GIT_INDEX_FILE=os.path.join(tool.work, "s11.index"))
        git = ["git", "-C", ROOT, f"--work-tree={tree}", "read-tree", "-u"]
        measure(tool, lambda: subprocess.run(git + ["-m", commits[0]], check=True, env=env), scope, cfg["timeout"])
        converged = 0
        steps = list(zip(commits, commits[1:]))
        tool.careful = True  # unison: its fast check compares whole seconds too
        for old, new in steps:
            try:
                rec = measure(tool, lambda: subprocess.run(git + ["-m", old, new], check=True, env=env), scope,
                              cfg["history_timeout"])
            except RuntimeError as e:
                log(f"{tool.name:14s} S11 step {new[:8]}: {e}")
                continue
            converged += 1
            rec["commit"] = new[:10]
            self.add("S11 real history step", tool.name, rec)
        self.add_figure("S11 steps converged", tool.name, {"seconds": 0, "converged": converged, "steps": len(steps)})
        tool.careful = False
        log(f"{tool.name:14s} {'S11 real history':32s} {converged}/{len(steps)} steps converged")
        remove_scope(tool, scope, cfg["timeout"])

    def add_figure(self, scenario, tool, record):
        """A figure that is not a timed run (kept apart from ratios)."""
        self.figures.append({"scenario": scenario + (STEADY if self.state == "steady" else ""), "tool": tool,
                             **record})


# ----- targets ----------------------------------------------------------------------------------

def _find(results, prefix, tool, steady):
    for r in results:
        name = r["scenario"]
        if r["tool"] == tool and name.split(" ")[0] == prefix and name.endswith(STEADY) == steady:
            return r
    return None


def _cpu_per_100mib(r, label, size):
    vals = [run["cpu_s"][label] for run in r["runs"] if label in run.get("cpu_s", {})]
    return statistics.median(vals) * 100 * MiB / size if vals else None


def targets(results, figures, cfg):
    """Rows of (target, state, measured, verdict): issue 23's targets, each met or not in this run."""
    rows = []
    for steady in (False, True):
        state = "steady" if steady else "fresh"
        if not any(r["scenario"].endswith(STEADY) == steady for r in results + figures):
            continue

        def ratio(prefix, peer="rsync_local"):
            c, p = _find(results, prefix, "converge", steady), _find(results, prefix, peer, steady)
            return c["median_s"] / p["median_s"] if c and p and p["median_s"] else None

        def verdict(value, limit, text):
            if value is None:
                rows.append((text, state, "not measured", "not measured"))
            else:
                rows.append((text, state, value[1] if isinstance(value, tuple) else f"{value:.2f}",
                             "met" if (value[0] if isinstance(value, tuple) else value) <= limit else "not met"))

        sizes = (("S3a", cfg["big"]), ("S3b", cfg["huge"]))
        for labels, limit, text in ((("store",), 0.35, "store CPU s per 100 MiB (S3a, S3b) <= 0.35"),
                                    (("engine_a", "engine_b"), 0.25, "each engine's CPU s per 100 MiB <= 0.25")):
            vals = []
            for prefix, size in sizes:
                r = _find(results, prefix, "converge", steady)
                for label in labels:
                    v = _cpu_per_100mib(r, label, size) if r else None
                    if v is not None:
                        vals.append((v, f"{prefix} {label} {v:.2f}"))
            worst = max(vals) if vals else None
            verdict((worst[0], ", ".join(v[1] for v in vals)) if worst else None, limit, text)
        for prefixes, limit, text in ((("S3a", "S3b"), 3.0, "new 100 MiB and 1 GiB file: time <= 3.0x rsync_local"),
                                      (("S1", "S2"), 1.5, "many small new files: time <= 1.5x rsync_local"),
                                      (("S4", "S5"), 1.2, "1 MiB overwrite, 1 KiB insert: time <= 1.2x rsync_local"),
                                      (("S11",), 1.5,
                                       "real history: per-step median <= 1.5x rsync_local")):
            vals = [(ratio(p), p) for p in prefixes]
            vals = [(v, f"{p} x{v:.2f}") for v, p in vals if v is not None]
            worst = max(vals) if vals else None
            verdict((worst[0], ", ".join(v[1] for v in vals)) if worst else None, limit, text)
        st = ratio("S11", "syncthing")
        verdict((st * 5, f"x{st:.2f} Syncthing's per-step median") if st else None, 1.0,
                "real history: >= 5x faster than Syncthing")
        done = [f for f in figures if f["tool"] == "converge" and f["scenario"].startswith("S11")
                and f["scenario"].endswith(STEADY) == steady]
        if done:
            f = done[0]
            rows.append(("real history: every step converges", state, f"{f['converged']}/{f['steps']}",
                         "met" if f["converged"] == f["steps"] else "not met"))
        else:
            rows.append(("real history: every step converges", state, "not measured", "not measured"))
        r = _find(results, "S6", "converge", steady)
        if r:
            run = r["runs"][0]
            ok = run["p50"] <= 0.015 and run["p99"] <= 0.050
            rows.append(("single small edit: p50 <= 15 ms, p99 <= 50 ms", state,
                         f"p50 {run['p50'] * 1000:.1f} ms, p99 {run['p99'] * 1000:.1f} ms", "met" if ok else "not met"))
        else:
            rows.append(("single small edit: p50 <= 15 ms, p99 <= 50 ms", state, "not measured", "not measured"))
        rows.extend(on_demand_targets(figures, state, steady))
        rows.extend(million_targets(results, state, steady))
    return rows


def million_targets(results, state, steady):
    """Issue 24's targets, from S14 (at the size the run used; the issue's are at 1,000,000 files)."""
    c, r = _find(results, "S14", "converge", steady), _find(results, "S14", "rsync_local", steady)
    if not c:
        return []
    run = c["runs"][0]
    n = run["files"]
    size = f"{n:,} files"
    rows = []
    engine_rss = max(run["peak_rss"].get(k, 0) for k in ("engine_a", "engine_b", "engine_c")) / n
    index = max(run["index_bytes"].values()) / n
    rows.append((f"{size}: engine <= 300 B of RAM a file", state, f"{engine_rss:.0f} B (peak RSS of the largest engine)",
                 "met" if engine_rss <= 300 else "not met"))
    rows.append((f"{size}: engine <= 300 B of index on disk a file", state, f"{index:.0f} B",
                 "met" if index <= 300 else "not met"))
    store = run["peak_rss"].get("store", 0)
    rows.append((f"{size}: store memory <= 512 MiB while serving it", state, f"{store / MiB:.0f} MiB",
                 "met" if store <= 512 * MiB else "not met"))
    rows.append((f"{size}: convergectl namespaces status < 1 s", state, f"{run['status_s'] * 1000:.0f} ms",
                 "met" if run["status_s"] < 1 else "not met"))
    if r:
        rr = r["runs"][0]
        for label, key in (("first sync", "seconds"), ("new device catch-up", "new_device_s")):
            ratio = run[key] / rr[key]
            rows.append((f"{size}: {label} <= 2x rsync_local", state,
                         f"x{ratio:.2f} ({run[key]:.1f} s against {rr[key]:.1f} s)", "met" if ratio <= 2 else "not met"))
    return rows


def on_demand_targets(figures, state, steady):
    """Issue 27's on-demand targets, from S13's figure (fresh state only)."""
    found = [f for f in figures if f["tool"] == "converge" and f["scenario"].startswith("S13")
             and f["scenario"].endswith(STEADY) == steady]
    if not found:
        return []
    f = found[0]
    first = statistics.median(f["first_byte_s"])
    ls_ratio = statistics.median(f["ls_on_demand_s"]) / statistics.median(f["ls_local_s"])
    rate_share = f["full_download_s"] / f["cold_read_s"]
    size = f"{f['bytes'] // MiB} MiB"
    return [
        (f"on demand: first byte of a never-fetched {size} file <= 50 ms", state,
         f"{first * 1000:.1f} ms (median of {len(f['first_byte_s'])})", "met" if first <= 0.050 else "not met"),
        (f"on demand: ls -lR of {f['entries']:,} entries <= 1.5x a local ls -lR", state,
         f"x{ls_ratio:.2f} ({statistics.median(f['ls_on_demand_s']):.3f} s against "
         f"{statistics.median(f['ls_local_s']):.3f} s; first, cold: {f['ls_on_demand_s'][0]:.3f} s)",
         "met" if ls_ratio <= 1.5 else "not met"),
        (f"on demand: cold sequential read of {size} >= 50% of the full-download rate", state,
         f"{rate_share * 100:.0f}% ({f['cold_read_s']:.3f} s against B's download in {f['full_download_s']:.3f} s)",
         "met" if rate_share >= 0.5 else "not met"),
    ] + written_target(f, state, size)


def written_target(f, state, size):
    """S13's writes through the mount, set against A to B of a file of the same size."""
    if "written_up_s" not in f:
        return []
    up = f["written_up_s"]
    up = statistics.median(up) if isinstance(up, list) else up
    n = len(f["written_up_s"]) if isinstance(f["written_up_s"], list) else 1
    return [(f"on demand: a {size} file written through the mount reaches A <= 1.5x a synced folder's A to B", state,
             f"x{up / f['full_download_s']:.2f} ({up:.3f} s, median of {n}, against {f['full_download_s']:.3f} s; "
             f"{f['small_files']:,} x 4 KiB files {f['small_written_up_s']:.3f} s)",
             "met" if up <= 1.5 * f["full_download_s"] else "not met")]


def targets_table(rows):
    if not rows:
        return []
    lines = ["| target | state | measured | |", "|---|---|---|---|"]
    for target, state, measured, verdict in rows:
        lines.append(f"| {target} | {state} | {measured} | {verdict} |")
    return lines


def targets_brief(rows):
    """One line per target, a column per state: met or not (the README's short form)."""
    states, verdicts = [], {}
    for target, state, _, verdict in rows:
        if state not in states:
            states.append(state)
        verdicts.setdefault(target, {})[state] = verdict
    if not verdicts:
        return []
    lines = ["| target | " + " | ".join(states) + " |", "|---" * (len(states) + 1) + "|"]
    for target, by_state in verdicts.items():
        lines.append(f"| {target} | " + " | ".join(by_state.get(s, "-") for s in states) + " |")
    return lines


# ----- report -----------------------------------------------------------------------------------

def summarize(results):
    for r in results:
        secs = [run["seconds"] for run in r["runs"]]
        r["median_s"] = statistics.median(secs)
        r["min_s"], r["max_s"] = min(secs), max(secs)
        b = [run["bytes"] for run in r["runs"] if run.get("bytes") is not None]
        r["median_bytes"] = statistics.median(b) if b else None
        link = [run["link_bytes"] for run in r["runs"] if run.get("link_bytes") is not None]
        r["median_link_bytes"] = statistics.median(link) if link else None
        cpu = [sum(run.get("cpu_s", {}).values()) for run in r["runs"] if run.get("cpu_s")]
        r["median_cpu_s"] = statistics.median(cpu) if cpu else None
        rss = [max(run["peak_rss"].values()) for run in r["runs"] if run.get("peak_rss")]
        r["max_peak_rss"] = max(rss) if rss else None


def ratios(results):
    """{scenario: {peer: (time ratio, bytes ratio, link bytes ratio)}} of Converge over each peer.

    The bytes ratio counts both of Converge's links (A -> store -> B); the link ratio its busier
    link alone, against the peer's one link."""
    out = {}
    conv = {r["scenario"]: r for r in results if r["tool"] == "converge"}
    for r in results:
        c = conv.get(r["scenario"])
        if r["tool"] == "converge" or c is None:
            continue
        t = c["median_s"] / r["median_s"] if r["median_s"] else None
        b = (c["median_bytes"] / r["median_bytes"]
             if c.get("median_bytes") and r.get("median_bytes") else None)
        link = (c["median_link_bytes"] / r["median_bytes"]
                if c.get("median_link_bytes") and r.get("median_bytes") else None)
        out.setdefault(r["scenario"], {})[r["tool"]] = (t, b, link)
    return out


def fmt_s(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_b(b):
    if b is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1024)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"


def matrix(results):
    """Compact tables, scenario x tool: median time (and bytes), with Converge/peer ratios."""
    tools = []
    scenarios = []
    for r in results:
        if r["tool"] not in tools:
            tools.append(r["tool"])
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    by = {(r["scenario"], r["tool"]): r for r in results}
    rat = ratios(results)
    lines = ["| scenario | " + " | ".join(tools) + " |", "|---" * (len(tools) + 1) + "|"]
    for s in scenarios:
        cells = []
        for t in tools:
            r = by.get((s, t))
            if r is None:
                cells.append("")
                continue
            cell = fmt_s(r["median_s"])
            run0 = r["runs"][0]
            if "p99" in run0:
                cell = f"p50 {fmt_s(run0['p50'])}, p95 {fmt_s(run0['p95'])}, p99 {fmt_s(run0['p99'])}"
            if "ingest_mb_per_s" in run0:
                cell = f"{run0['ingest_mb_per_s']:.0f} MB/s; {run0['commits_per_s']:.0f} commits/s"
            if "fanout_median_ms" in run0:
                cell = f"{run0['fanout_median_ms']:.1f} ms (notify {fmt_b(run0['notify_rss_peak'])})"
            if r.get("median_bytes"):
                cell += f" / {fmt_b(r['median_bytes'])}"
            if r.get("median_link_bytes"):
                cell += f" ({fmt_b(r['median_link_bytes'])} a link)"
            tr, br, lr = rat.get(s, {}).get(t, (None, None, None))
            if tr:
                cell += (f" (x{tr:.2f}" + (f", bytes x{br:.2f}" if br else "") +
                         (f", a link x{lr:.2f}" if lr else "") + ")")
            cells.append(cell)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def openssl_speed(algorithm):
    """MB/s of one core for `algorithm` on 16 KiB blocks (openssl speed -evp), or None."""
    try:
        out = subprocess.run(["openssl", "speed", "-seconds", "1", "-bytes", "16384", "-evp", algorithm],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lower() == algorithm.replace("-evp", "").lower() and parts[-1].endswith("k"):
            return float(parts[-1][:-1]) * 1000 / 1e6
    return None


def calibrate(work):
    """What the machine does per core and per disk, so figures from two machines compare: SHA-256
    and AES-256-GCM (openssl speed), memcpy bandwidth (into touched and into fresh memory), and
    writing + fsyncing 100 MiB."""
    cal = {"sha256_mb_s": openssl_speed("sha256"), "aes_gcm_mb_s": openssl_speed("aes-256-gcm")}
    block = bytes(64 << 20)
    target = memoryview(bytearray(block))  # touched: copies into it fault no page in
    started = time.perf_counter()
    for _ in range(8):
        target[:] = block  # a memcpy (through memoryview; bytearray slices take a slow path)
    cal["memcpy_gb_s"] = 8 * (64 << 20) / (time.perf_counter() - started) / 1e9
    started = time.perf_counter()
    for _ in range(8):
        bytearray(block)  # into freshly allocated memory: page faults as well (costly on some VMs)
    cal["fresh_copy_gb_s"] = 8 * (64 << 20) / (time.perf_counter() - started) / 1e9
    path = os.path.join(work, "calibrate-fsync")
    data = os.urandom(1 << 20)
    started = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(100):
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    cal["write_fsync_100mib_s"] = time.perf_counter() - started
    os.remove(path)
    return cal


LOOP_IMAGE_BYTES = 48 << 30  # sparse: the host's disk holds only what the run writes


def mount_scratch(work, kind):
    """The filesystem every tool's folders and data live on. "loop": a fresh ext4 with its journal
    (what users' ext4 has), made for this run in a sparse file beside `work` and mounted there, so
    that no tool meets what earlier runs left in the host's filesystem: on an ext4 without a
    journal (this kind of VM's root), each new inode steps over every inode of its block group
    deleted in the last half minute, which made the many-small-files figures depend on where
    the previous scenario's deletions landed. "host": `work` as it is. Returns (description,
    cleanup)."""
    if kind == "loop":
        image = work.rstrip("/") + ".img"
        device = None
        try:
            with open(image, "wb") as f:
                f.truncate(LOOP_IMAGE_BYTES)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", image],
                           check=True, capture_output=True)
            # Direct I/O: the image's blocks are not cached a second time in the host's page cache.
            device = subprocess.run(["losetup", "--direct-io=on", "--find", "--show", image], check=True,
                                    capture_output=True, text=True).stdout.strip()
            subprocess.run(["mount", device, work], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as e:
            if device:
                subprocess.run(["losetup", "-d", device], capture_output=True)
            if os.path.exists(image):
                os.remove(image)
            detail = e.stderr if isinstance(getattr(e, "stderr", None), str) else (
                e.stderr.decode(errors="replace") if getattr(e, "stderr", None) else str(e))
            raise RuntimeError(f"cannot make the loop filesystem (--fs host runs on {work} as it is): {detail.strip()}")

        def cleanup():
            if subprocess.run(["umount", work], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", work], capture_output=True)  # a straggler still inside
            subprocess.run(["losetup", "-d", device], capture_output=True)
            os.remove(image)
        return "ext4 with its journal, made for this run on a loop file", cleanup
    found = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,OPTIONS", "-T", work], capture_output=True, text=True)
    return f"the host's ({found.stdout.strip() or '?'})", lambda: None


def calibration_line(cal):
    if not cal:
        return None
    def mb(v):
        return f"{v:,.0f} MB/s" if v else "?"
    return (f"Calibration (one core): SHA-256 {mb(cal.get('sha256_mb_s'))}, AES-256-GCM {mb(cal.get('aes_gcm_mb_s'))}, "
            f"memcpy {cal.get('memcpy_gb_s', 0):.1f} GB/s (into fresh memory {cal.get('fresh_copy_gb_s', 0):.2f} GB/s); writing and fsyncing 100 MiB "
            f"{cal.get('write_fsync_100mib_s', 0):.2f} s")


def markdown(meta, results):
    lines = [f"# Converge benchmark ({meta['mode']} mode, {meta['date']})", "",
             f"Machine: {meta['machine']}. Commit: {meta.get('commit', '?')}. Command: `{meta['command']}`. "
             f"{meta['reps']} runs per scenario. Cells: median time / bytes on the wire; "
             "(xR) = Converge / that peer, below 1: Converge is faster or sends less. Converge's bytes "
             "count both its links (A to the store, the store to B); 'a link' is the busier one alone, "
             "set against the peer's single link.", ""]
    if calibration_line(meta.get("calibration")):
        lines += [calibration_line(meta["calibration"]) + ".", ""]
    if meta.get("filesystem"):
        lines += [f"Filesystem under every tool's folders and data: {meta['filesystem']}.", ""]
    if meta.get("failed"):
        lines += [f"**The run stopped early: {meta['failed']}**", ""]
    for note in meta.get("notes", []):
        lines += [f"Note: {note}.", ""]
    if meta.get("seeded"):
        lines += [f"Steady state ({STEADY.strip()} rows): {meta['seeded']}.", ""]
    if meta.get("targets"):
        lines += ["## Targets", ""] + targets_table(meta["targets"]) + [""]
    lines += matrix(results)
    lines += ["", "## Every figure", "",
              "Median (min-max) of the runs; CPU s: all processes of the tool; peak RSS: the largest process.", ""]
    rat = ratios(results)
    scenarios = []
    for r in results:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    lines += ["| scenario | tool | time | bytes on the wire | a link | CPU s | peak RSS | time ratio | bytes ratio "
              "| a link ratio |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for s in scenarios:
        for r in [x for x in results if x["scenario"] == s]:
            t, b, link = rat.get(s, {}).get(r["tool"], (None, None, None))
            extra = ""
            run0 = r["runs"][0]
            if "p50" in run0:
                extra = f" (p50 {fmt_s(run0['p50'])}, p95 {fmt_s(run0['p95'])}, p99 {fmt_s(run0['p99'])})"
            if "last_p95" in run0:
                extra += f"; p95 first second {fmt_s(run0['first_p95'])}, last second {fmt_s(run0['last_p95'])}"
            if "files_hashed" in run0 and run0["files_hashed"] is not None:
                extra = f" ({run0['files_hashed']} files hashed, scan {run0['scan']})"
            if "first_pass_s" in run0:
                extra += f" [first pass {fmt_s(run0['first_pass_s'])}]"
            if "scan_vs_stat_walk" in run0:
                extra += (f"; scan x{run0['scan_vs_stat_walk']:.2f} a stat walk ({fmt_s(run0['stat_walk_s'])}); per file: "
                          f"index {run0['index_bytes_per_file']:.0f} B, engine RSS {run0['rss_bytes_per_file']:.0f} B")
            if "verify_s" in run0:
                extra += (f"; verifying scan {fmt_s(run0['verify_s'])}, x{run0['verify_vs_stat_walk']:.2f} the stat walk, "
                          f"RSS {run0['verify_rss_bytes_per_file']:.0f} B a file")
            if "ingest_mb_per_s" in run0:
                extra = (f" ({run0['ingest_mb_per_s']:.0f} MB/s new chunk data; "
                         f"{run0['commits_per_s']:.0f} commits/s, p50 {run0['commit_p50_ms']:.2f} ms)")
            if "fanout_median_ms" in run0:
                extra = (f" (max {run0['fanout_max_ms']:.2f} ms; notify RSS {fmt_b(run0['notify_rss_peak'])}, "
                         f"store {fmt_b(run0['store_rss'])}, management {fmt_b(run0['management_rss'])})")
            cpu = f"{r['median_cpu_s']:.2f}" if r.get("median_cpu_s") is not None else "-"
            lines.append(f"| {s} | {r['tool']} | {fmt_s(r['median_s'])} ({fmt_s(r['min_s'])}-{fmt_s(r['max_s'])}){extra} "
                         f"| {fmt_b(r['median_bytes'])} | {fmt_b(r.get('median_link_bytes'))} | {cpu} "
                         f"| {fmt_b(r['max_peak_rss'])} | {f'{t:.2f}' if t else '-'} | {f'{b:.2f}' if b else '-'} "
                         f"| {f'{link:.2f}' if link else '-'} |")
    return "\n".join(lines) + "\n"


def charts(out_dir, results):
    rat = ratios(results)
    peers = sorted({p for v in rat.values() for p in v})
    scenarios = []
    for r in results:  # in the order the scenarios were run
        if r["scenario"] in rat and r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    if not scenarios or not shutil.which("gnuplot"):
        return []
    made = []
    for idx, what in ((0, "time"), (1, "bytes")):
        dat = os.path.join(out_dir, f"ratio_{what}.dat")
        rows = [s for s in scenarios if any(rat[s].get(p, (None, None, None))[idx] for p in peers)]
        if not rows:
            continue
        with open(dat, "w") as f:
            f.write("scenario " + " ".join(peers) + "\n")
            for s in rows:
                vals = [rat[s].get(p, (None, None, None))[idx] for p in peers]
                f.write('"' + s.split(" ", 1)[0] + '" ' + " ".join(f"{v:.4f}" if v else "NaN" for v in vals) + "\n")
        png = os.path.join(out_dir, f"ratio_{what}.png")
        script = f"""
set terminal pngcairo size 1100,520 font ",10" noenhanced
set output "{png}"
set title "Converge / peer, {what} (below 1: Converge better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set grid ytics
set key outside right
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2
plot for [i=2:{len(peers) + 1}] "{dat}" using i:xtic(1) title columnheader(i)
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        made.append(png)
    return made


def write_latest(out_dir, meta, md):
    """Publishes a run: bench/results/latest.md gets its whole table, README.md and
    docs/benchmark.md the block between their <!-- bench:latest --> markers (the targets and the
    headline table), so no figure in the docs is copied by hand."""
    rel = os.path.relpath(out_dir, os.path.join(ROOT, "bench", "results"))
    with open(os.path.join(ROOT, "bench", "results", "latest.md"), "w") as f:
        f.write(f"<!-- written by tools/bench/run; the run's folder: {rel}/ -->\n")
        f.write(f"Charts: [time ratios]({rel}/ratio_time.png), [bytes ratios]({rel}/ratio_bytes.png); "
                f"raw figures: [{rel}/results.json]({rel}/results.json).\n\n")
        f.write(md)
    head = (f"Latest published run: {meta['mode']} mode, {meta['date']}, commit {meta.get('commit', '?')}, "
            f"{meta['reps']} runs per scenario, tools {', '.join(meta.get('tools', []))}.")
    cal = calibration_line(meta.get("calibration"))
    block = [head, ""] + ([cal + ".", ""] if cal else [])
    if meta.get("failed"):
        block += [f"**The run stopped early: {meta['failed'].strip()}** (what it measured before is below).", ""]
    elif meta.get("seeded"):
        block += [f"Steady state ({STEADY.strip()} rows): {meta['seeded']}.", ""]
    short = [head, ""] + (["The run stopped early; the report linked below says where.", ""] if meta.get("failed") else [])
    for doc, rel_results, extra in (("README.md", "bench/results/latest.md", False),
                                    ("docs/benchmark.md", "../bench/results/latest.md", True)):
        # The README gets each target's verdicts; docs/benchmark.md the calibration, the measured
        # targets and the table too.
        rows = meta.get("targets", [])
        lines = (list(block) + targets_table(rows)) if extra else (list(short) + targets_brief(rows))
        if extra:
            lines += [""] + matrix_from(meta, out_dir)
        lines += ["", f"Every figure: [{rel_results}]({rel_results})."]
        path = os.path.join(ROOT, doc)
        with open(path) as f:
            text = f.read()
        start, end = "<!-- bench:latest -->", "<!-- /bench:latest -->"
        if start not in text or end not in text:
            continue
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        with open(path, "w") as f:
            f.write(before + start + "\n" + "\n".join(lines) + "\n" + end + after)


def matrix_from(meta, out_dir):
    with open(os.path.join(out_dir, "results.json")) as f:
        results = json.load(f)["results"]
    summarize(results)
    return matrix(results)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=sorted(MODES), default="quick")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    ap.add_argument("--work", default="/tmp/converge-bench", help="scratch folder (wiped)")
    ap.add_argument("--out", default=None, help="results folder (default bench/results/<mode>-<date>)")
    ap.add_argument("--reps", type=int, default=None, help="override the runs per scenario")
    ap.add_argument("--million-files", type=int, default=None,
                    help="override S14's file count (1000000: issue 24's folder, by hand)")
    ap.add_argument("--rescan-files", type=int, default=None,
                    help="override S7's file count (1000000: issue 24's million-file folder, by hand)")
    ap.add_argument("--scenarios", default="", help="comma-separated subset of S1..S14 (S3: S3a-c; S4 and S5 "
                    "run together; S8 and S9 too); default: all")
    ap.add_argument("--state", choices=["fresh", "steady", "both"], default="both",
                    help="fresh services and engines, ones that hold a history already (steady), or both")
    ap.add_argument("--fs", choices=["loop", "host"], default=None,
                    help="loop: a fresh ext4 (journal on) mounted at --work for this run (full mode's default; "
                    "needs root); host: --work as it is (quick mode's default)")
    ap.add_argument("--from-json", default=None, help="only rebuild results.md and charts from a results.json")
    ap.add_argument("--publish", action="store_true",
                    help="write this run (or --from-json's) to bench/results/latest.md, README.md and "
                    "docs/benchmark.md even if it is not a complete full run")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        out_dir = os.path.dirname(os.path.abspath(args.from_json))
        summarize(saved["results"])
        saved["meta"]["targets"] = targets(saved["results"], saved.get("figures", []), MODES[saved["meta"]["mode"]])
        md = markdown(saved["meta"], saved["results"])
        with open(os.path.join(out_dir, "results.md"), "w") as f:
            f.write(md)
        charts(out_dir, saved["results"])
        if args.publish:
            write_latest(out_dir, saved["meta"], md)
        print(md)
        return 0
    if args.reps:
        MODES[args.mode]["reps"] = args.reps
    if args.rescan_files:
        MODES[args.mode]["rescan_files"] = args.rescan_files
    if args.million_files:
        MODES[args.mode]["million_files"] = args.million_files
    date = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H%M%SZ")
    out_dir = args.out or os.path.join(ROOT, "bench", "results", f"{args.mode}-{date}")
    os.makedirs(out_dir, exist_ok=True)
    if os.path.ismount(args.work):
        raise SystemExit(f"{args.work} is still mounted (a run stopped without its cleanup?): umount it, then "
                         f"remove {args.work.rstrip('/')}.img")
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    # Stopped by a signal, the run still stops its services and unmounts its filesystem.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    filesystem, unmount = mount_scratch(args.work, args.fs or ("loop" if args.mode == "full" else "host"))
    try:
        return run_bench(args, out_dir, date, filesystem)
    finally:
        unmount()
        shutil.rmtree(args.work, ignore_errors=True)


def run_bench(args, out_dir, date, filesystem):
    tools = [t for t in args.tools.split(",") if t]
    bench = Bench(args.mode, args.work, tools)
    bench.only = {x.strip() for x in args.scenarios.split(",") if x.strip()}
    bench.states = ["fresh", "steady"] if args.state == "both" else [args.state]
    calibration = calibrate(args.work)
    log(calibration_line(calibration))
    started = time.time()
    failed = None
    try:
        bench.run()
    except Exception as e:  # the report still shows what was measured
        failed = f"{type(e).__name__}: {e}"
        log("FAILED:", failed)
    summarize(bench.results)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    meta = {"mode": args.mode, "date": date, "commit": commit, "notes": bench.notes, "reps": MODES[args.mode]["reps"], "tools": tools,
            "command": " ".join(["tools/bench/run"] + sys.argv[1:]),
            "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.release()}",
            "seconds": round(time.time() - started, 1), "failed": failed, "calibration": calibration,
            "state": args.state, "seeded": bench.seeded_text(), "filesystem": filesystem,
            "targets": targets(bench.results, bench.figures, MODES[args.mode])}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": bench.results, "figures": bench.figures}, f, indent=1)
    md = markdown(meta, bench.results)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    made = charts(out_dir, bench.results)
    complete = args.mode == "full" and not args.out and not bench.only and tools == list(TOOLS) and not failed
    if args.publish or complete:
        write_latest(out_dir, meta, md)
    print(md)
    log(f"results in {out_dir} ({', '.join(os.path.basename(m) for m in made) or 'no charts'}), "
        f"{meta['seconds']} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
