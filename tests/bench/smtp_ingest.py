#!/usr/bin/env python3
"""SMTP ingest benchmark: roost against Postfix delivering into Dovecot.

What it does
------------
Postfix's load generator `smtp-source` sends the same load (default: 2000
distinct messages with a 4096-byte body, 10 parallel sessions, one message
per connection as smtp-source does by default, all to alice@example.test) to

  * roost (`roost serve`, state in a temp dir), and
  * Postfix accepting mail for example.test and handing it over LMTP (unix
    socket) to Dovecot, which stores it in a Maildir,

both configured by this script in a temp dir on free loopback ports, with
their default durability: Postfix fsyncs the queue file before its 250 after
DATA, Dovecot (mail_fsync = optimized) fsyncs each Maildir file before its
LMTP 250, roost commits to redb durably before its 250.

For each server it prints
  * accepted/s: messages / wall time until smtp-source has its last 250;
  * stored/s:   messages / wall time until all of them are stored: for
    Postfix+Dovecot, until the Maildir holds them all (polled every 50 ms);
    for roost the 250 already means durably stored, so this equals accepted/s,
    and the count is then checked with `roost mail list alice@example.test`;
  * CPU ms/msg: user+system CPU of the server's whole process tree (every
    master/smtpd/cleanup/qmgr/lmtp/dovecot/auth/... process, including ones
    that exited meanwhile) from the start of the load until all messages are
    stored plus a 1 s tail, minus the idle CPU rate measured for 2 s before
    the load, divided by the message count; split by process below the table;
  * peak RSS: the largest sum of VmRSS over the process tree, sampled every
    50 ms during the load (pages shared between processes count once per
    process, so for the 80-odd Postfix+Dovecot processes peak PSS, sampled
    every 250 ms, is shown too);
and the roost/Postfix ratios against the targets (roost >= 3x the stored
rate, <= 0.2x the CPU per message).  It also reports the CPU other processes
used during each run and warns when the machine was busy: rates measured
next to a compiler are noise.  --runs N alternates the servers N times and
reports the median run.

How CPU is attributed
---------------------
Each server is started by a small reaper process (this script run with
`--_reap`) that marks itself PR_SET_CHILD_SUBREAPER, so every process of the
server's tree, even one orphaned when its parent exits, is waited for inside
the tree.  The tree's CPU at any moment is then the reaper's cutime+cstime
(everything reaped by it) plus utime+stime+cutime+cstime of every live
descendant (read from /proc/PID/stat).  smtp-source and this script are not
part of any server tree.

Isolation
---------
The script re-executes itself under `unshare --mount --net`: everything runs
in a fresh network namespace that has only a loopback interface, so no packet
can leave the machine, and /etc/resolv.conf is bind-mounted (privately) to
point at a tiny DNS stub this script serves on 127.0.0.1:53 with a few test
records (SPF for the sender domain, client PTR/A); the number of DNS queries
each server made is reported.  The servers keep their data on a fresh ext4
file system on a sparse loop image in the temp dir (--fs image, the default),
so the host file system's mount options do not skew the result (the root
file system here is mounted with online `discard`, which makes every unlink
of an fsynced file wait ~2-3 ms; Postfix unlinks a queue file per message).

Running it
----------
As root (Postfix, the namespaces and the loop mount need it), with Debian's
packages `postfix dovecot-core dovecot-lmtpd` installed and roost built
(`cargo build --release -p roost`), on an otherwise idle machine:

    tests/bench/smtp_ingest.sh                  # builds roost, then runs
    python3 tests/bench/smtp_ingest.py --runs 3
    python3 tests/bench/smtp_ingest.py --messages 200 --only postfix

Options (some also as environment variables): --messages (BENCH_MESSAGES),
--sessions (BENCH_SESSIONS), --size (BENCH_SIZE), --runs (BENCH_RUNS),
--roost-bin (ROOST_BIN, default ${CARGO_TARGET_DIR:-<repo>/target}/release/
roost), --only, --fs, --keep; see --help.
Exit status: 0 when every requested server ran and, when both ran, the
targets were met; 1 when a target was missed; 2 on a setup or run error.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import pwd
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[2]
DOMAIN = "example.test"
RCPT = f"alice@{DOMAIN}"
SENDER = "sender@example.org"
CLIENT_HELO = "client.example.org"
PASSWORD = "bench-secret-1"
NS_ENV = "ROOST_BENCH_IN_NAMESPACES"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_INTERVAL = 0.05
TAIL_SECONDS = 1.0
IMAGE_BYTES = 4 << 30  # sparse
RATE_TARGET = 3.0
CPU_TARGET = 0.2


class BenchError(Exception):
    """A setup or run failure with a message meant for the user."""


# --------------------------------------------------------------------------
# Settings and preflight


@dataclass
class Settings:
    """The command line, see parse_args."""
    messages: int
    sessions: int
    size: int
    reuse_connections: bool
    runs: int
    only: str
    roost_bin: Path
    workdir: Path
    fs: str
    keep: bool
    idle_seconds: float
    timeout: float
    no_netns: bool


def parse_args(argv: list[str]) -> Settings:
    env = os.environ
    target_dir = Path(env.get("CARGO_TARGET_DIR", REPO / "target"))
    p = argparse.ArgumentParser(
        description="SMTP ingest benchmark: roost vs Postfix+Dovecot (LMTP).",
        epilog="Run as root. See the docstring at the top of this file for the method.")
    p.add_argument("--messages", "-m", type=int, default=int(env.get("BENCH_MESSAGES", 2000)))
    p.add_argument("--sessions", "-s", type=int, default=int(env.get("BENCH_SESSIONS", 10)))
    p.add_argument("--size", "-l", type=int, default=int(env.get("BENCH_SIZE", 4096)),
                   help="message body bytes (smtp-source -l)")
    p.add_argument("--reuse-connections", action="store_true",
                   help="send all of a session's messages over one connection (smtp-source -d)")
    p.add_argument("--runs", type=int, default=int(env.get("BENCH_RUNS", 1)),
                   help="measure each server this many times, alternating; report the median")
    p.add_argument("--only", choices=["both", "roost", "postfix"], default="both")
    p.add_argument("--roost-bin", type=Path,
                   default=Path(env.get("ROOST_BIN", target_dir / "release" / "roost")))
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()),
                   help="where the temp dir goes; must be a real disk for fsync to mean anything")
    p.add_argument("--fs", choices=["image", "native"], default=env.get("BENCH_FS", "image"),
                   help="image (default): servers store on a fresh ext4 loop image in the work "
                        "dir, so mount options such as discard of the host fs do not skew; "
                        "native: directly in the work dir")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs, mail)")
    p.add_argument("--idle-seconds", type=float, default=2.0,
                   help="idle CPU baseline measured before the load")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait for all messages to be stored")
    p.add_argument("--no-netns", action="store_true",
                   help="do not run inside a private network namespace (not recommended)")
    a = p.parse_args(argv)
    if min(a.messages, a.sessions, a.runs) < 1 or a.size < 0:
        p.error("--messages, --sessions and --runs must be >= 1, --size >= 0")
    a.roost_bin = a.roost_bin.resolve()
    return Settings(**vars(a))


def check_tools(only: str, fs: str) -> None:
    """Fail early, saying what to install, when a peer program is missing."""
    needed = {"smtp-source": "postfix", "unshare": "util-linux", "mount": "mount"}
    if fs == "image":
        needed["mkfs.ext4"] = "e2fsprogs"
    if only in ("both", "postfix"):
        needed |= {"postfix": "postfix", "dovecot": "dovecot-core",
                   "/usr/lib/dovecot/lmtp": "dovecot-lmtpd"}
    missing = sorted({pkg for prog, pkg in needed.items()
                      if not (Path(prog).exists() if prog.startswith("/") else shutil.which(prog))})
    if missing:
        raise BenchError(
            "missing programs; install them with:\n"
            f"  DEBIAN_FRONTEND=noninteractive apt-get install -y {' '.join(missing)}\n"
            "(for postfix, preseed first: echo 'postfix postfix/main_mailer_type select "
            "No configuration' | debconf-set-selections)")
    if os.geteuid() != 0:
        raise BenchError("run as root: Postfix, Dovecot and the network namespace need it")


# --------------------------------------------------------------------------
# Isolation: private network + mount namespace, loopback only, stub DNS


def reexec_in_namespaces(argv: list[str], net: bool) -> None:
    """Replace this process by itself inside a private mount namespace and,
    unless net is False, a fresh network namespace."""
    env = dict(os.environ, **{NS_ENV: "1"})
    cmd = ["unshare", "--mount", "--propagation", "private", *(["--net"] if net else []),
           "--", sys.executable, str(SCRIPT), *argv]
    os.execvpe(cmd[0], cmd, env)


def bring_up_loopback() -> None:
    """`ip link set lo up`, done with the SIOCSIFFLAGS ioctl."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def point_resolver_at_stub(base: Path) -> None:
    """Bind-mount a resolv.conf naming only 127.0.0.1 over /etc/resolv.conf."""
    conf = base / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    run(["mount", "--bind", str(conf), "/etc/resolv.conf"])


class StubDns(threading.Thread):
    """A tiny authoritative-style DNS responder on 127.0.0.1:53 (UDP).

    Answers the few names the load touches (SPF TXT of the sender's domain,
    PTR/A of the client), NODATA for other types of those names and NXDOMAIN
    for everything else.  It counts queries so the report can show them.
    """

    A, PTR, TXT = 1, 12, 16
    RECORDS = {
        ("example.org", TXT): [b"v=spf1 ip4:127.0.0.0/8 -all"],
        (CLIENT_HELO, A): [socket.inet_aton("127.0.0.1")],
        ("1.0.0.127.in-addr.arpa", PTR): [CLIENT_HELO],
    }

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.queries = 0
        self.names: set[str] = set()

    def run(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
                reply = self.answer(data)
            except OSError:
                return
            except (ValueError, IndexError, struct.error):
                continue
            self.sock.sendto(reply, peer)

    def take_count(self) -> tuple[int, list[str]]:
        n, names = self.queries, sorted(self.names)
        self.queries, self.names = 0, set()
        return n, names

    def answer(self, query: bytes) -> bytes:
        qid, flags = struct.unpack("!HH", query[:4])
        name, end = self.read_name(query, 12)
        qtype = struct.unpack("!H", query[end:end + 2])[0]
        question = query[12:end + 4]
        self.queries += 1
        self.names.add(f"{name}/{qtype}")
        known = {n for n, _ in self.RECORDS}
        rdatas = self.RECORDS.get((name, qtype), [])
        rcode = 0 if name in known else 3
        header = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100) | 0x0080 | rcode,
                             1, len(rdatas), 0, 0)
        answers = b"".join(self.rr(qtype, r) for r in rdatas)
        return header + question + answers

    def rr(self, qtype: int, value) -> bytes:
        if qtype == self.TXT:
            rdata = bytes([len(value)]) + value
        elif qtype == self.PTR:
            rdata = self.encode_name(value)
        else:
            rdata = value
        return struct.pack("!HHHIH", 0xC00C, qtype, 1, 300, len(rdata)) + rdata

    @staticmethod
    def read_name(msg: bytes, pos: int) -> tuple[str, int]:
        labels = []
        while msg[pos]:
            n = msg[pos]
            labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        return ".".join(labels).lower(), pos + 1

    @staticmethod
    def encode_name(name: str) -> bytes:
        return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


# --------------------------------------------------------------------------
# Process trees: reaper, CPU and memory accounting


def reaper_main(cmd: list[str]) -> int:
    """Run cmd as a child, adopt and reap all its descendants, forward SIGTERM.

    Being a child subreaper means every process of the server's tree is
    waited for inside the tree, so its CPU stays accounted (in our cutime).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        print("reaper: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
    child = os.fork()
    if child == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            print(f"reaper: cannot exec {cmd[0]}", file=sys.stderr)
            os._exit(127)
    state = {"child_alive": True}

    def kill_orphans(sig: int) -> None:
        for pid, st in proc_table().items():
            if st.ppid == os.getpid():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def on_term(signum, _frame):
        if state["child_alive"]:
            os.kill(child, signum)
        else:
            kill_orphans(signal.SIGTERM)

    def on_alarm(_signum, _frame):  # orphans outlived the server: end them
        kill_orphans(signal.SIGKILL)
        signal.alarm(1)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_term)
    signal.signal(signal.SIGALRM, on_alarm)
    code = 0
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return code
        if pid == child:
            state["child_alive"] = False
            code = os.waitstatus_to_exitcode(status)
            kill_orphans(signal.SIGTERM)
            signal.alarm(10)


@dataclass
class ProcStat:
    comm: str
    ppid: int
    own_ticks: int     # utime + stime
    child_ticks: int   # cutime + cstime: reaped descendants
    rss_pages: int
    start: int         # start time: tells a reused pid from the old process


def proc_table() -> dict[int, ProcStat]:
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        close = data.rindex(b")")
        comm = data[data.index(b"(") + 1:close].decode(errors="replace")
        f = data[close + 2:].split()  # f[0] is field 3 (state)
        table[int(name)] = ProcStat(comm, int(f[1]), int(f[11]) + int(f[12]),
                                    int(f[13]) + int(f[14]), int(f[21]), int(f[19]))
    return table


def descendants(table: dict[int, ProcStat], roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, st in table.items():
        children.setdefault(st.ppid, []).append(pid)
    found, todo = [], list(roots)
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def tree_cpu(roots: list[int], table: dict[int, ProcStat] | None = None) -> float:
    """CPU seconds used so far by the trees under the reapers `roots`."""
    table = table if table is not None else proc_table()
    ticks = sum(table[r].child_ticks for r in roots if r in table)
    for pid in descendants(table, roots):
        st = table[pid]
        ticks += st.own_ticks + st.child_ticks
    return ticks / CLK_TCK


def cpu_by_name(roots: dict[int, str], before: dict[int, ProcStat],
                after: dict[int, ProcStat]) -> dict[str, float]:
    """Split the trees' CPU delta by "server:process name"; CPU of processes
    that exited during the window shows as "server:exited"."""
    out: dict[str, float] = {}

    def add(key: str, ticks: int) -> None:
        if ticks:
            out[key] = out.get(key, 0.0) + ticks / CLK_TCK

    for root, label in roots.items():
        if root in after:
            add(f"{label}:exited", after[root].child_ticks
                - (before[root].child_ticks if root in before else 0))
        for pid in descendants(after, [root]):
            st, old = after[pid], before.get(pid)
            same = old is not None and old.start == st.start
            add(f"{label}:{st.comm}", st.own_ticks - (old.own_ticks if same else 0))
            add(f"{label}:exited", st.child_ticks - (old.child_ticks if same else 0))
    return out


def kernel_thread_cpu(before: dict[int, ProcStat], after: dict[int, ProcStat]) -> float:
    """CPU seconds kernel threads (children of kthreadd: I/O workers,
    journalling, ksoftirqd) used between the two snapshots."""
    ticks = 0
    for pid, st in after.items():
        if st.ppid == 2:
            old = before.get(pid)
            ticks += st.own_ticks - (old.own_ticks if old and old.start == st.start else 0)
    return ticks / CLK_TCK


def machine_cpu() -> tuple[float, float]:
    """(busy, interrupts): CPU seconds the machine has spent not idle, and
    the part of it spent in hard and soft interrupts."""
    with open("/proc/stat") as f:
        t = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (sum(t[:8]) - t[3] - t[4]) / CLK_TCK, (t[5] + t[6]) / CLK_TCK


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed VmRSS of the trees every 50 ms (PSS every 250 ms)."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            table = proc_table()
            pids = descendants(table, self.roots)
            self.peak_rss = max(self.peak_rss, sum(table[p].rss_pages for p in pids) * PAGE)
            self.peak_procs = max(self.peak_procs, len(pids))
            if n % 5 == 0:
                self.peak_pss = max(self.peak_pss, sum(pss_bytes(p) for p in pids))
            n += 1
            self._halt.wait(SAMPLE_INTERVAL)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class Reaped:
    """A server process started under the reaper, logging to a file."""

    def __init__(self, name: str, cmd: list[str], log: Path) -> None:
        self.name, self.log = name, log
        self.logf = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--_reap", "--", *cmd],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT,
            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in descendants(proc_table(), [self.pid]):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


# --------------------------------------------------------------------------
# Small helpers


def run(cmd: list[str], *, stdin: str | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise BenchError(f"command failed ({res.returncode}): {' '.join(cmd)}\n"
                         f"{res.stdout}{res.stderr}".rstrip())
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_banner(port: int, servers: list[Reaped], timeout: float = 30.0) -> None:
    """Wait until 127.0.0.1:port answers with an SMTP 220 greeting."""
    deadline = time.monotonic() + timeout
    last = "no connection"
    while time.monotonic() < deadline:
        for s in servers:
            if not s.alive():
                raise BenchError(f"{s.name} exited early; log {s.log}:\n{tail(s.log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                greeting = c.makefile("rb").readline().decode(errors="replace")
                if greeting.startswith("220"):
                    c.sendall(b"QUIT\r\n")
                    return
                last = greeting.strip()
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise BenchError(f"no 220 banner on 127.0.0.1:{port} after {timeout:.0f}s ({last})")


def wait_for_path(path: Path, server: Reaped, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not server.alive():
            raise BenchError(f"{server.name} exited early; log {server.log}:\n{tail(server.log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{path} did not appear; log {server.log}:\n{tail(server.log)}")
        time.sleep(0.05)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def mount_of(path: Path) -> tuple[str, str, str]:
    """(mount point, fs type, options) of the file system holding path."""
    best = ("/", "?", "")
    with open("/proc/mounts") as f:
        for line in f:
            _dev, mnt, typ, opts = line.split()[:4]
            if (str(path) + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best[0]):
                best = (mnt, typ, opts)
    return best


def make_data_fs(base: Path, mode: str) -> Path:
    """Where the servers keep their data: a fresh ext4 on a loop image inside
    base (mode "image"), or base itself (mode "native")."""
    if mode == "native":
        return base
    image, mnt = base / "fs.img", base / "fs"
    with open(image, "wb") as f:
        f.truncate(IMAGE_BYTES)
    run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard",
         str(image)])
    mnt.mkdir()
    run(["mount", "-o", "loop", str(image), str(mnt)])
    return mnt


def remove_data_fs(base: Path, data: Path) -> None:
    if data != base:
        subprocess.run(["umount", str(data)], capture_output=True)


# --------------------------------------------------------------------------
# The servers under test


class Target:
    """A server under test: started by start(), made of reaped process trees."""

    name = ""
    accepted_means_stored = False  # is a 250 after DATA already "stored"?
    port = 0
    logs: list[Path] = []
    count_note = ""  # why stored_count() returned None

    def __init__(self) -> None:
        self.servers: list[Reaped] = []

    def start(self) -> None:
        raise NotImplementedError

    def stored_count(self) -> int | None:
        raise NotImplementedError

    def roots(self) -> dict[int, str]:
        """Reaper pid -> label of each process tree that makes up the server."""
        return {s.pid: s.name for s in self.servers}

    def stop(self) -> None:
        for s in reversed(self.servers):
            s.stop()

    def log_tails(self) -> str:
        return "\n".join(f"--- {p}\n{tail(p)}" for p in self.logs)


class PostfixDovecot(Target):
    """Postfix (smtpd -> cleanup -> qmgr -> lmtp) delivering to Dovecot LMTP."""

    name = "postfix+dovecot"
    accepted_means_stored = False

    def __init__(self, base: Path) -> None:
        self.base = base / "postfix-dovecot"
        self.etc = self.base / "postfix-etc"
        self.spool = self.base / "postfix-spool"
        self.dovecot_dir = self.base / "dovecot"
        self.mail = self.base / "mail"
        self.maildir = self.mail / "alice" / "Maildir"
        self.lmtp_socket = self.dovecot_dir / "run" / "lmtp"
        self.port = free_port()
        super().__init__()

    @property
    def logs(self) -> list[Path]:
        return [self.base / "postfix.log", self.dovecot_dir / "dovecot.log"]

    def start(self) -> None:
        for d in (self.base, self.etc, self.spool, self.dovecot_dir, self.mail):
            d.mkdir(parents=True, exist_ok=True)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        self.write_dovecot_config(nobody)
        dovecot = Reaped("dovecot", ["dovecot", "-F", "-c", str(self.dovecot_dir / "dovecot.conf")],
                         self.dovecot_dir / "dovecot.stderr")
        self.servers.append(dovecot)
        wait_for_path(self.lmtp_socket, dovecot)
        self.write_postfix_config()
        # postfix(1) prints errors only to a tty (else to syslog): give it one.
        run(["script", "-qec", f"postfix -c {self.etc} check", "/dev/null"])
        postfix = Reaped("postfix", ["postfix", "-c", str(self.etc), "start-fg"],
                         self.base / "postfix.stderr")
        self.servers.append(postfix)
        wait_for_banner(self.port, self.servers)

    def write_dovecot_config(self, nobody: pwd.struct_passwd) -> None:
        d = self.dovecot_dir
        (d / "users").write_text(
            f"{RCPT}:{{PLAIN}}{PASSWORD}:{nobody.pw_uid}:{nobody.pw_gid}::{self.mail}/alice::\n")
        (d / "dovecot.conf").write_text(f"""\
# Dovecot for the roost ingest benchmark: LMTP on a unix socket only.
# Durability settings are Dovecot's defaults (mail_fsync = optimized).
instance_name = roost-bench-dovecot
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
""")

    def write_postfix_config(self) -> None:
        (self.etc / "vmailbox").write_text(f"{RCPT} OK\n")
        (self.etc / "main.cf").write_text(f"""\
# Postfix for the roost ingest benchmark: MX for {DOMAIN} on loopback,
# delivering over LMTP to Dovecot.  Durability settings are Postfix's defaults.
compatibility_level = 3.6
queue_directory = {self.spool}
data_directory = {self.base}/postfix-data
maillog_file = {self.base}/postfix.log
maillog_file_prefixes = {self.base}
myhostname = mx.{DOMAIN}
mydomain = {DOMAIN}
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP
# No lookups: smtpd does not resolve clients, nothing goes out (error
# transports below), LMTP is a unix socket.
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{self.etc}/vmailbox
virtual_transport = lmtp:unix:{self.lmtp_socket}
local_transport = error:5.1.1 no local delivery in this benchmark
default_transport = error:5.4.4 no outbound mail in this benchmark
relay_transport = error:5.4.4 no outbound mail in this benchmark
""")
        # The stock master.cf services, chroot off (the queue is in a temp dir).
        (self.etc / "master.cf").write_text(f"""\
127.0.0.1:{self.port} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
""")

    def stored_count(self) -> int | None:
        return sum(count_dir(self.maildir / sub) for sub in ("new", "cur"))

    def stop(self) -> None:
        if any(s.alive() for s in self.servers):
            subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True, timeout=30)
        super().stop()


class Roost(Target):
    """roost serve, state in the temp dir."""

    name = "roost"
    accepted_means_stored = True

    def __init__(self, base: Path, binary: Path) -> None:
        self.base = base / "roost"
        self.state = self.base / "state"
        self.bin = binary
        self.port = free_port()
        super().__init__()

    @property
    def logs(self) -> list[Path]:
        return [self.base / "roost.log"]

    def cli(self, *args: str, stdin: str | None = None, check: bool = True):
        return run([str(self.bin), "--state", str(self.state), *args], stdin=stdin, check=check)

    def start(self) -> None:
        if not os.access(self.bin, os.X_OK):
            raise BenchError(f"no roost binary at {self.bin}; build it with\n"
                             f"  (cd {REPO} && cargo build --release -p roost)\n"
                             "or pass --roost-bin PATH")
        self.state.mkdir(parents=True)
        try:
            self.cli("domain", "add", DOMAIN)
            self.cli("user", "add", RCPT, "--password-stdin", stdin=f"{PASSWORD}\n")
        except BenchError as e:
            raise BenchError(f"roost setup failed (the benchmark needs `domain add` and "
                             f"`user add --password-stdin`):\n{e}") from None
        config = self.base / "roost.toml"
        config.write_text(f"""\
hostname = "mx.{DOMAIN}"
[listen]
smtp = ["127.0.0.1:{self.port}"]
submission = ["127.0.0.1:{free_port()}"]
submissions = ["127.0.0.1:{free_port()}"]
""")
        server = Reaped("roost", [str(self.bin), "--state", str(self.state), "serve",
                                  "--config", str(config)], self.logs[0])
        self.servers.append(server)
        wait_for_banner(self.port, self.servers)

    def stored_count(self) -> int | None:
        """Messages in alice's mailbox per `roost mail list`, or None if unsupported."""
        res = self.cli("mail", "list", RCPT, check=False)
        if res.returncode != 0:
            first = (res.stderr or res.stdout).strip().splitlines()[:1]
            self.count_note = f"`roost mail list` failed: {first[0] if first else res.returncode}"
            return None
        return sum(1 for line in res.stdout.splitlines() if line.strip())


def count_dir(path: Path) -> int:
    try:
        with os.scandir(path) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------
# The measurement


@dataclass
class Result:
    name: str
    messages: int
    accepted_s: float      # from the start of smtp-source to its exit (last 250)
    stored_s: float        # from the start of smtp-source until all are stored
    cpu_s: float           # server tree CPU in the measuring window
    idle_cpu_s: float      # idle CPU expected over the same window (subtracted)
    peak_rss: int
    peak_pss: int
    peak_procs: int
    stored_check: str
    client_cpu_s: float    # smtp-source
    bench_cpu_s: float     # this script: sampler and DNS stub
    other_cpu_s: float     # other user-space processes on the machine in the window
    kernel_cpu_s: float    # kernel threads, interrupts (loopback TCP, block I/O)
    window_s: float
    dns_queries: int
    dns_names: list[str]
    cpu_split: dict[str, float] = field(default_factory=dict)

    @property
    def stored_rate(self) -> float:
        return self.messages / self.stored_s

    @property
    def cpu_ms_per_msg(self) -> float:
        return max(0.0, self.cpu_s - self.idle_cpu_s) * 1000 / self.messages


def smtp_source_cmd(s: Settings, port: int) -> list[str]:
    """Distinct messages (own Message-Id each), one recipient, fixed body size."""
    cmd = ["smtp-source", "-s", str(s.sessions), "-m", str(s.messages), "-l", str(s.size),
           "-M", CLIENT_HELO, "-f", SENDER, "-t", RCPT, "-S", "roost ingest benchmark"]
    if s.reuse_connections:
        cmd.append("-d")
    return cmd + [f"127.0.0.1:{port}"]


def idle_cpu_rate(roots: list[int], seconds: float) -> float:
    """CPU seconds per second the server burns with no load."""
    time.sleep(1.0)  # let start-up work settle first
    c0 = tree_cpu(roots)
    time.sleep(seconds)
    return (tree_cpu(roots) - c0) / seconds


def run_load(target: Target, s: Settings) -> tuple[float, float]:
    """Run smtp-source; returns (its wall seconds, its CPU seconds)."""
    print(f"== {target.name}: sending {s.messages} messages", flush=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        load = subprocess.run(smtp_source_cmd(s, target.port), capture_output=True, text=True,
                              timeout=s.timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{target.name}: smtp-source still running after {s.timeout:.0f}s\n"
                         f"{target.log_tails()}") from None
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if load.returncode != 0:
        raise BenchError(f"{target.name}: smtp-source failed ({load.returncode}):\n"
                         f"{load.stdout}{load.stderr}\n{target.log_tails()}")
    return wall, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def wait_stored(target: Target, want: int, timeout: float) -> float:
    """Poll the stored count until it reaches want; returns the monotonic time."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while True:
        n = target.stored_count()
        now = time.monotonic()
        if n is None or n >= want:
            return now
        if n != last:
            last, last_change = n, now
        if now > deadline or now - last_change > 60:
            raise BenchError(f"{target.name}: only {n} of {want} messages stored (waited "
                             f"{timeout:.0f}s, no progress for {now - last_change:.0f}s)\n"
                             f"{target.log_tails()}")
        time.sleep(SAMPLE_INTERVAL)


def check_stored(target: Target, want: int) -> str:
    """After the window: is exactly everything there?"""
    count = target.stored_count()
    if count is None:
        return f"unverified: {target.count_note}"
    if count < want and target.accepted_means_stored:
        wait_stored(target, want, 30)
        return f"ONLY {count} of {want} stored after the last 250 (durability bug?)"
    if count != want:
        return f"{count} stored, expected {want}"
    return f"{count} stored"


def measure(target: Target, s: Settings, dns: StubDns | None) -> Result:
    """Start the target, load it with smtp-source, measure, stop it."""
    print(f"== {target.name}: starting", flush=True)
    try:
        target.start()
        roots = list(target.roots())
        idle_rate = idle_cpu_rate(roots, s.idle_seconds)
        if dns:
            dns.take_count()
        sampler = TreeSampler(roots)
        before = proc_table()
        cpu_start, self_start = tree_cpu(roots, before), sum(os.times()[:2])
        busy_start, irq_start = machine_cpu()
        sampler.start()
        t0 = time.monotonic()
        try:
            accepted_s, client_cpu = run_load(target, s)
            stored_at = t0 + accepted_s
            if not target.accepted_means_stored:
                stored_at = wait_stored(target, s.messages, s.timeout)
            time.sleep(TAIL_SECONDS)
        finally:
            sampler.stop()
        after = proc_table()
        cpu = tree_cpu(roots, after) - cpu_start
        window = time.monotonic() - t0
        bench_cpu = sum(os.times()[:2]) - self_start
        busy, irq = machine_cpu()
        kernel_cpu = kernel_thread_cpu(before, after) + irq - irq_start
        other_cpu = busy - busy_start - cpu - client_cpu - bench_cpu - kernel_cpu
        dns_n, dns_names = dns.take_count() if dns else (0, [])
        check = check_stored(target, s.messages)
        return Result(target.name, s.messages, accepted_s, stored_at - t0, cpu,
                      idle_rate * window, sampler.peak_rss, sampler.peak_pss, sampler.peak_procs,
                      check, client_cpu, bench_cpu, max(0.0, other_cpu), max(0.0, kernel_cpu),
                      window,
                      dns_n, dns_names,
                      cpu_by_name(target.roots(), before, after))
    finally:
        target.stop()


# --------------------------------------------------------------------------
# Report


def median_run(runs: list[Result]) -> Result:
    return sorted(runs, key=lambda r: r.stored_rate)[(len(runs) - 1) // 2]


def print_report(s: Settings, runs: dict[str, list[Result]], errors: dict[str, str],
                 base: Path, data: Path) -> int:
    """Print the table, details and verdict; returns the exit status."""
    results = [median_run(rs) for rs in runs.values()]
    print_header(s, base, data)
    print_table(results, errors)
    for r in results:
        print_details(r)
        if len(runs[r.name]) > 1:
            print_runs(runs[r.name])
    print_method()
    by = {r.name: r for r in results}
    if Roost.name in by and PostfixDovecot.name in by:
        met = print_verdict(by[Roost.name], by[PostfixDovecot.name])
        return 2 if errors else 0 if met else 1
    return 2 if errors else 0


def print_header(s: Settings, base: Path, data: Path) -> None:
    conn = "each session reuses its connection" if s.reuse_connections else "one message per connection"
    runs = f", median of {s.runs} runs" if s.runs > 1 else ""
    print(f"\nSMTP ingest{runs}: {s.messages} messages of {s.size} bytes (body), {s.sessions} "
          f"parallel sessions of smtp-source ({conn}), all to {RCPT}")
    _, host_fs, host_opts = mount_of(base)
    if data != base:
        _, fs, opts = mount_of(data)
        where = f"fresh {fs} ({opts}) on a loop image in {base} ({host_fs}, {host_opts})"
    else:
        fs, where = host_fs, f"{base} ({host_fs}, {host_opts})"
    print(f"server data: {where}")
    print(f"machine: {os.cpu_count()} CPUs, kernel {os.uname().release}, load average "
          f"{os.getloadavg()[0]:.2f} at the end")
    if fs in ("tmpfs", "ramfs"):
        print("WARNING: the data is in memory, so fsync costs nothing: use --workdir on a disk")
    if data == base and "discard" in host_opts.split(","):
        print("WARNING: the file system is mounted with online discard: every unlink of an "
              "fsynced file waits for a discard, which slows Postfix's queue (use --fs image)")


def print_table(results: list[Result], errors: dict[str, str]) -> None:
    mib = 1024 * 1024
    header = (f"{'server':<16} {'accepted/s':>10} {'stored/s':>9} {'CPU ms/msg':>10} "
              f"{'peak RSS MiB':>12} {'peak PSS MiB':>12} {'procs':>5}  stored check")
    print(f"\n{header}\n{'-' * len(header)}")
    for r in results:
        print(f"{r.name:<16} {r.messages / r.accepted_s:>10.1f} {r.stored_rate:>9.1f} "
              f"{r.cpu_ms_per_msg:>10.3f} {r.peak_rss / mib:>12.1f} {r.peak_pss / mib:>12.1f} "
              f"{r.peak_procs:>5}  {r.stored_check}")
    for name, err in errors.items():
        print(f"{name:<16} ERROR (details above): {err.splitlines()[0]}")
    print()


def print_details(r: Result) -> None:
    per_msg = lambda sec: f"{sec * 1000 / r.messages:.2f}"  # noqa: E731
    split = ", ".join(f"{name} {per_msg(sec)}" for name, sec in
                      sorted(r.cpu_split.items(), key=lambda kv: -kv[1]))
    print(f"{r.name}: all stored after {r.stored_s:.2f}s; CPU in the {r.window_s:.1f}s window: "
          f"server {r.cpu_s:.2f}s (minus {r.idle_cpu_s:.2f}s idle), smtp-source "
          f"{r.client_cpu_s:.2f}s, this script {r.bench_cpu_s:.2f}s, kernel threads and "
          f"interrupts {r.kernel_cpu_s:.2f}s, other processes {r.other_cpu_s:.2f}s; "
          f"DNS queries {r.dns_queries}"
          + (f" ({', '.join(r.dns_names[:6])})" if r.dns_names else ""))
    if r.other_cpu_s > 0.1 * r.window_s:
        print(f"  WARNING: other processes kept {r.other_cpu_s / r.window_s:.1f} CPUs busy "
              "during the run; rates are not trustworthy on a busy machine")
    print(f"  server CPU ms/msg by process: {split}")


def print_runs(runs: list[Result]) -> None:
    print(f"  {len(runs)} runs, median shown: stored/s "
          + ", ".join(f"{r.stored_rate:.0f}" for r in runs) + "; CPU ms/msg "
          + ", ".join(f"{r.cpu_ms_per_msg:.3f}" for r in runs) + "; peak RSS MiB "
          + ", ".join(f"{r.peak_rss / 2**20:.0f}" for r in runs))


def print_method() -> None:
    print("\n" + textwrap.fill(
        "Method: stored/s = messages / wall time from the start of smtp-source until all are "
        "stored (Postfix+Dovecot: files in the Maildir, polled every 50 ms; roost: its 250 "
        "after DATA is a durable commit, counted afterwards with `roost mail list`). "
        "CPU ms/msg = user+sys CPU of the server's whole process tree (a subreaper adopts "
        f"every descendant) from the start of the load until stored + {TAIL_SECONDS:g}s, minus "
        "the idle rate measured before the load. Peak RSS = max of the summed VmRSS of the "
        f"tree, sampled every {SAMPLE_INTERVAL * 1000:.0f} ms (PSS every 250 ms). Durability: "
        "Postfix and Dovecot defaults (queue file and Maildir file fsynced before the 250), "
        "roost's durable redb commit before the 250.", width=100))


def print_verdict(ro: Result, pf: Result) -> bool:
    rate = ro.stored_rate / pf.stored_rate
    cpu = ro.cpu_ms_per_msg / pf.cpu_ms_per_msg if pf.cpu_ms_per_msg else float("inf")
    rss = ro.peak_rss / pf.peak_rss if pf.peak_rss else float("inf")
    rate_ok, cpu_ok = rate >= RATE_TARGET, cpu <= CPU_TARGET
    verdict = lambda ok: "MET" if ok else "MISSED"  # noqa: E731
    print(f"\nroost / postfix+dovecot: stored rate {rate:.2f}x (target >= {RATE_TARGET:g}x: "
          f"{verdict(rate_ok)}), CPU per message {cpu:.3f}x (target <= {CPU_TARGET:g}x: "
          f"{verdict(cpu_ok)}), peak RSS {rss:.2f}x")
    return rate_ok and cpu_ok


# --------------------------------------------------------------------------


def on_sigterm(_signum, _frame):
    raise KeyboardInterrupt


def make_targets(s: Settings, base: Path, skip: dict[str, str]) -> list[Target]:
    """Fresh servers (own dirs and ports) for one round, minus ones that failed."""
    base.mkdir(mode=0o755)
    targets: list[Target] = []
    if s.only in ("both", "postfix") and PostfixDovecot.name not in skip:
        targets.append(PostfixDovecot(base))
    if s.only in ("both", "roost") and Roost.name not in skip:
        targets.append(Roost(base, s.roost_bin))
    return targets


def main(argv: list[str]) -> int:
    if argv[:1] == ["--_reap"]:
        return reaper_main(argv[2:] if argv[1:2] == ["--"] else argv[1:])
    s = parse_args(argv)
    try:
        check_tools(s.only, s.fs)
    except BenchError as e:
        print(f"smtp_ingest: {e}", file=sys.stderr)
        return 2
    if os.environ.get(NS_ENV) != "1":
        reexec_in_namespaces(argv, net=not s.no_netns)  # does not return

    signal.signal(signal.SIGTERM, on_sigterm)  # clean up as on Ctrl-C
    base = Path(tempfile.mkdtemp(prefix="roost-bench-", dir=s.workdir))
    base.chmod(0o755)  # Postfix and Dovecot children run as other users
    data = base
    targets: list[Target] = []
    errors: dict[str, str] = {}
    try:
        dns = None
        if not s.no_netns:
            bring_up_loopback()
            point_resolver_at_stub(base)
            dns = StubDns()
            dns.start()
        data = make_data_fs(base, s.fs)
        runs: dict[str, list[Result]] = {}
        for i in range(s.runs):
            for t in make_targets(s, data / f"run{i + 1}", skip=errors):
                targets.append(t)
                try:
                    result = measure(t, s, dns)
                    runs.setdefault(t.name, []).append(result)
                except BenchError as e:
                    errors[t.name] = str(e)
                    print(f"== {t.name}: ERROR\n{e}\n(--keep keeps configs and logs)", flush=True)
        return print_report(s, runs, errors, base, data)
    except BenchError as e:
        print(f"smtp_ingest: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for t in targets:
            t.stop()
        remove_data_fs(base, data)
        if s.keep:
            where = f" (server data in {base}/fs.img: mount -o loop)" if data != base else ""
            print(f"kept {base}{where}")
        else:
            if not s.no_netns:
                subprocess.run(["umount", "/etc/resolv.conf"], capture_output=True)
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
