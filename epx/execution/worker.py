"""A sandbox worker: run untrusted Python programs one at a time, each in its own process.

Run as its own interpreter by `epx.execution.sandbox` (``python -I worker.py PARENT_PID UID``),
with a clean environment; it imports nothing but the standard library, so nothing of epx (nor
of the caller's memory) is in the processes it forks. It answers on stdout in JSON lines: first
what it can enforce on this machine, then one result per program read from stdin.

Per program (see docs/sandbox.md for what holds where):

- a fresh process forked from this warm interpreter, which runs the program with ``exec``
  (``__name__`` is ``"__sandbox__"``, as in HumanEval's harness no ``__main__`` block runs) and
  passes only when the program ran to its end: ``sys.exit``, ``os._exit`` or an exception fail;
- stdin on /dev/null, stdout and stderr to one pipe whose first ``output_bytes`` are kept, no
  other file descriptor; an environment of PATH, HOME, TMPDIR, LANG and thread counts only;
- rlimits: CPU seconds, address space, processes, file size, open files, no core files;
- a wall-clock limit: past it the program and everything it started are killed;
- as root on Linux, when the kernel allows it: the worker lives in its own empty network and IPC
  namespaces (no interface is up: no connection anywhere, loopback included); each program gets
  its own PID and mount namespaces: a supervisor (root, outside them) mounts a fresh tmpfs on
  /tmp (the program's working directory, HOME and TMPDIR), covers every other world-writable
  directory with an empty one and shows the interpreter where the program's user could not
  reach it (`hidden_interpreter_dirs`); an init process (PID 1, root, no untrusted code) mounts
  a fresh /proc and runs the program as its child, so that all the program's processes die with
  it. The program runs as an unassigned uid of this worker's own (no file outside is writable,
  no other user's process readable) with no-new-privileges;
- without namespaces: a new session (the worker kills the process group) and, with a uid, a
  sweep of every process of that uid; a temporary directory deleted afterwards.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

SETUP_FAILED = 125  # exit code of a sandbox process whose setup failed (reported as "error")
_SETUP_MARK = b"setup:"
_CANDIDATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/run/shm")
_PROGRAM_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_READ_CHUNK = 65536
# Imported once here, so that programs importing them start at once (fork copies them).
_PRELOADED = (
    *("bisect", "collections", "copy", "datetime", "decimal", "fractions", "functools"),
    *("hashlib", "heapq", "itertools", "math", "operator", "random", "re", "statistics"),
    *("string", "typing"),
)

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _call(name: str, *args: object) -> None:
    """A libc call that raises OSError when it fails."""
    if _libc is None:
        raise OSError(f"{name}: not on Linux")
    if getattr(_libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


def _mount(source: str, target: str, kind: str | None, flags: int, data: str | None) -> None:
    _call(
        "mount",
        source.encode(),
        target.encode(),
        kind.encode() if kind else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )


def _prctl(option: int, value: int) -> None:
    zero = ctypes.c_ulong(0)
    _call("prctl", option, ctypes.c_ulong(value), zero, zero, zero)


@dataclass
class Job:
    """One program to run: its source, limits, pass mark and the ends of its pipes (``out``:
    stdout and stderr, ``done``: the pass mark; the processes add their own), where it runs."""

    source: str
    limits: dict[str, float]
    nonce: bytes
    fds: dict[str, int]
    workdir: str = "/"


class Plan:
    """What this worker enforces, decided once at start (see `probe`)."""

    def __init__(self, uid: int | None) -> None:
        self.uid = uid  # the program's uid and gid; None: the worker's own
        self.network = False  # own empty network namespace
        self.namespaces = False  # own PID and mount namespace per program, tmpfs dirs
        self.private_dirs: list[str] = []  # world-writable dirs covered by a fresh tmpfs
        self.hidden: dict[str, list[str]] = {}  # see `hidden_interpreter_dirs`
        self.notes: list[str] = []
        # This worker's own directory, which the pool deletes with the worker (a killed worker
        # leaves no program directory behind): it holds the programs' directories without
        # namespaces, and is the mount point of their tmpfs when /tmp cannot be covered.
        self.scratch = tempfile.mkdtemp(prefix="epx-sandbox-")
        os.chmod(self.scratch, 0o711)

    def workdir(self) -> str:
        """Where a program's tmpfs is mounted (with namespaces)."""
        return "/tmp" if "/tmp" in self.private_dirs else self.scratch

    def report(self) -> dict[str, object]:
        return {
            "network": self.network,
            "namespaces": self.namespaces,
            "uid": self.uid,
            "private_dirs": self.private_dirs,
            "notes": self.notes,
        }


def _interpreter_dirs() -> list[str]:
    """The directories this interpreter reads from (none inside another), as real paths."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path]
    found = sorted({os.path.realpath(path) for path in paths if path and os.path.isdir(path)})
    return [path for path in found if not _holds_any(found, path)]


def _holds_any(directories: list[str], path: str) -> bool:
    return any(path.startswith(directory + os.sep) for directory in directories)


def hidden_interpreter_dirs() -> dict[str, list[str]]:
    """Interpreter directories another user cannot reach, by the highest directory in their
    path that stops them (e.g. ``/root`` for an interpreter in ``/root/.pyenv``)."""
    hidden: dict[str, list[str]] = {}
    for path in _interpreter_dirs():
        parts = path.split(os.sep)[1:-1]
        for depth in range(1, len(parts) + 1):
            ancestor = os.sep + os.sep.join(parts[:depth])
            if not os.stat(ancestor).st_mode & 0o001:
                hidden.setdefault(ancestor, []).append(path)
                break
    return hidden


def _holds(directory: str, paths: list[str]) -> bool:
    directory = os.path.realpath(directory)
    return any(path == directory or path.startswith(directory + os.sep) for path in paths)


def _world_writable_dirs() -> list[str]:
    found = []
    for path in _CANDIDATE_DIRS:
        try:
            if os.path.islink(path) or not os.path.isdir(path):
                continue
            if os.stat(path).st_mode & 0o002:
                found.append(path)
        except OSError:
            continue
    return found


def probe(plan: Plan) -> None:
    """Find what this machine allows: network namespace, per-program namespaces, the uid.

    Each is tried on a program of its own; what fails is left out and said in a note. A uid
    that can run programs but not read the interpreter's files (an interpreter in /root, no
    namespace to show it) is kept: programs then import only the modules loaded here."""
    if _libc is None or os.geteuid() != 0:
        plan.uid = None
        plan.notes.append("not root on Linux: no namespaces, programs run as epx's own user")
        return
    try:
        _call("unshare", CLONE_NEWNET | CLONE_NEWIPC)
        plan.network = True
    except OSError as error:
        plan.notes.append(f"no network namespace ({error})")
    interpreter = _interpreter_dirs()
    covered = [d for d in _world_writable_dirs() if not _holds(d, interpreter)]
    kept = sorted(set(_world_writable_dirs()) - set(covered))
    if kept:
        plan.notes.append(f"kept {', '.join(kept)}: the interpreter lives there")
    uid, plan.uid = plan.uid, None
    plan.private_dirs, plan.hidden, plan.namespaces = covered, hidden_interpreter_dirs(), True
    failure = _fails(plan, "pass")
    if failure:
        plan.namespaces, plan.private_dirs, plan.hidden = False, [], {}
        plan.notes.append(f"no PID/mount namespace ({failure})")
    plan.uid = uid
    if uid is None:
        return
    failure = _fails(plan, "pass")
    if failure:
        plan.uid = None
        plan.notes.append(f"programs cannot run as uid {uid} ({failure})")
    elif _fails(plan, "import email.mime.text"):
        plan.notes.append(
            f"uid {uid} cannot read the interpreter's files: programs import only the modules "
            f"loaded beforehand ({', '.join(_PRELOADED)})"
        )


def _fails(plan: Plan, program: str) -> str:
    """Why ``program`` (trusted) does not pass under ``plan``; empty when it does."""
    result = run(plan, program, _probe_limits())
    if result["status"] == "passed":
        return ""
    lines = str(result["output"]).strip().splitlines()
    return lines[-1][:200] if lines else f"{result['status']}, exit code {result['exit_code']}"


def _probe_limits() -> dict[str, float]:
    return {
        "wall_seconds": 20.0,
        "cpu_seconds": 5,
        "memory_bytes": 1 << 30,
        "processes": 8,
        "output_bytes": 4096,
        "disk_bytes": 1 << 20,
        "open_files": 64,
    }


def _set_limits(limits: dict[str, float]) -> None:
    cpu = max(1, int(limits["cpu_seconds"]))
    for name, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),  # SIGXCPU, then SIGKILL a second later
        (resource.RLIMIT_AS, (int(limits["memory_bytes"]),) * 2),
        (resource.RLIMIT_NPROC, (int(limits["processes"]),) * 2),
        (resource.RLIMIT_FSIZE, (int(limits["disk_bytes"]),) * 2),
        (resource.RLIMIT_NOFILE, (int(limits["open_files"]),) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(name, value)


def _program_process(plan: Plan, job: Job, parent: int | None) -> None:
    """The program's own process (never returns): confine it, then run its source.

    ``parent``: the worker's pid, when no PID namespace ends the program with its parent: it
    then gets its own session (the worker kills the group) and dies with the worker."""
    done = job.fds["done"]
    write, leave = os.write, os._exit  # the program may replace os's functions
    try:
        if parent is not None:
            os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(job.fds["out"], 1)
        os.dup2(job.fds["out"], 2)
        os.dup2(done, 3)
        done = 3
        os.closerange(4, 1 << 20)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file too large: an OSError, not a kill
        _set_limits(job.limits)
        os.chdir(job.workdir)
        if plan.uid is not None:
            os.setgroups([])
            os.setgid(plan.uid)
            os.setuid(plan.uid)
        if _libc is not None:
            _prctl(PR_SET_NO_NEW_PRIVS, 1)
            if parent is not None:
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        if parent is not None and os.getppid() != parent:  # the worker died before that
            leave(SETUP_FAILED)
        os.environ.clear()
        os.environ.update(_PROGRAM_ENV, HOME=job.workdir, TMPDIR=job.workdir)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
        sys.argv = ["program.py"]
    except BaseException as error:
        write(done, _SETUP_MARK + f"{type(error).__name__}: {error}".encode())
        leave(SETUP_FAILED)
    try:
        code = compile(job.source, "program.py", "exec")
        exec(code, {"__name__": "__sandbox__", "__builtins__": builtins})
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            leave(1)
    write(done, job.nonce)  # the pass mark: a program that stops early never gets here
    leave(0)


def _supervisor(plan: Plan, job: Job) -> None:
    """As root, outside the program's namespaces: make its PID and mount namespaces and its
    tmpfs directories, then start its init process. Exits with the program's exit code, or
    128 + the signal that ended it. Never returns."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != job.fds.pop("parent"):
            os._exit(SETUP_FAILED)
        _call("unshare", CLONE_NEWPID | CLONE_NEWNS)
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        owner = plan.uid if plan.uid is not None else os.getuid()
        size = int(job.limits["disk_bytes"])
        job.workdir = workdir = plan.workdir()
        for directory in plan.private_dirs:
            if directory != workdir:
                _mount("tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
        options = f"size={size},mode=700,uid={owner},gid={owner}"
        _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, options)
        for blocker, paths in plan.hidden.items():
            _reveal(blocker, paths, workdir)
        job.fds["life"], life = os.pipe()  # the init process sees this pipe close if we die
        child = os.fork()
        if child == 0:
            os.close(life)
            _init_process(plan, job)
        for name in ("out", "done", "life"):
            os.close(job.fds[name])
        os._exit(_relay(child))
    except BaseException as error:
        os.write(job.fds["done"], _SETUP_MARK + f"{type(error).__name__}: {error}".encode())
        os._exit(SETUP_FAILED)


def _reveal(blocker: str, paths: list[str], scratch: str) -> None:
    """Cover ``blocker`` (a directory other users cannot enter, e.g. /root) with an empty
    tmpfs they can enter, holding only ``paths`` (the interpreter's directories inside it)."""
    stashes = []
    for index, path in enumerate(paths):
        stash = os.path.join(scratch, f".reveal-{index}")
        os.mkdir(stash)
        _mount(path, stash, None, MS_BIND | MS_REC, None)
        stashes.append(stash)
    _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for stash, path in zip(stashes, paths, strict=True):
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(stash, path, None, MS_MOVE, None)
        os.rmdir(stash)


def _init_process(plan: Plan, job: Job) -> None:
    """PID 1 of the program's namespace (root, never running untrusted code): a fresh /proc,
    then the program as its child; when it ends, every process of the namespace ends."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        life = job.fds.pop("life")
        gone = select.select([life], [], [], 0)[0]  # the supervisor died before the line above
        os.close(life)
        if gone:
            os._exit(SETUP_FAILED)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        child = os.fork()
        if child == 0:
            _program_process(plan, job, None)
        os.close(job.fds["out"])
        os.close(job.fds["done"])
        os._exit(_relay(child))
    except BaseException as error:
        os.write(job.fds["done"], _SETUP_MARK + f"{type(error).__name__}: {error}".encode())
        os._exit(SETUP_FAILED)


def _relay(child: int) -> int:
    """Wait for ``child``; its exit code, or 128 + the signal that ended it."""
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    return code if code >= 0 else 128 - code


def _kill(pid: int, group: bool) -> None:
    """SIGKILL to ``pid`` and, with ``group``, to the process group it leads."""
    for kill in (os.kill, os.killpg)[: 1 + group]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _read(fd: int, into: bytearray, cap: int) -> bool:
    """Read what is there into ``into`` (up to ``cap`` bytes kept); False at end of file."""
    try:
        chunk = os.read(fd, _READ_CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    into += chunk[: max(0, cap - len(into))]
    return True


def _wait_exit(pid: int) -> int:
    """The exit code of ``pid`` (reaped); -signal when a signal ended it."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def run(plan: Plan, source: str, limits: dict[str, float]) -> dict[str, object]:
    """Run one program (see the module docstring); its result as a JSON-ready dict."""
    start = time.monotonic()
    out_r, out_w = os.pipe()
    done_r, done_w = os.pipe()
    nonce = os.urandom(16).hex().encode()
    job = Job(source, limits, nonce, {"out": out_w, "done": done_w, "parent": os.getpid()})
    workdir = None
    if not plan.namespaces:
        job.workdir = workdir = tempfile.mkdtemp(prefix="program-", dir=plan.scratch)
        if plan.uid is not None:
            os.chown(workdir, plan.uid, plan.uid)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(out_r)
            os.close(done_r)
            if plan.namespaces:
                _supervisor(plan, job)
            _program_process(plan, job, job.fds.pop("parent"))
        finally:
            os._exit(SETUP_FAILED)
    os.close(out_w)
    os.close(done_w)
    output, done = bytearray(), bytearray()
    cap = int(limits["output_bytes"])
    timed_out = _watch(pid, out_r, done_r, output, done, cap, start + limits["wall_seconds"])
    group = not plan.namespaces  # the supervisor's death takes the namespace down
    _kill(pid, group)
    code = _wait_exit(pid)
    if group:
        _kill(pid, group)  # what the program left behind in its session
        if plan.uid is not None:
            _sweep(plan.uid)  # and anywhere else: the uid is this worker's alone
    _drain(out_r, output, cap)
    _drain(done_r, done, 1 << 16)
    os.close(out_r)
    os.close(done_r)
    _reap_orphans()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - start
    status, text = _verdict(timed_out, code, bytes(done), nonce, output)
    return {"status": status, "exit_code": code, "output": text, "seconds": seconds}


def _watch(
    pid: int,
    out_r: int,
    done_r: int,
    output: bytearray,
    done: bytearray,
    cap: int,
    deadline: float,
) -> bool:
    """Read the program's pipes until its (direct) process ends; True when the deadline came
    first."""
    handle = _pidfd(pid)
    readers = {out_r: (output, cap), done_r: (done, 1 << 16)}
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            ready = select.select([*readers, handle], [], [], left)[0]
            for fd in ready:
                if fd in readers and not _read(fd, *readers[fd]):
                    del readers[fd]
            if handle in ready:
                return False
    finally:
        os.close(handle)


def _pidfd(pid: int) -> int:
    """A file descriptor that becomes readable when ``pid`` ends (Linux >= 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return _poll_fd(pid)


def _poll_fd(pid: int) -> int:
    """Without pidfd: a pipe that a thread closes when ``pid`` ends (not reaping it)."""
    import threading

    readable, writable = os.pipe()

    def watch() -> None:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        os.close(writable)

    threading.Thread(target=watch, daemon=True).start()
    return readable


def _drain(fd: int, into: bytearray, cap: int) -> None:
    """Read what is left without waiting (a writer that survived keeps the pipe open)."""
    os.set_blocking(fd, False)
    while select.select([fd], [], [], 0)[0] and _read(fd, into, cap):
        pass


def _sweep(uid: int) -> None:
    """Kill every process of ``uid`` (the ones that left the program's session too): a process
    of that uid sends SIGKILL to all it may signal, which are exactly those."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _reap_orphans(patience: float = 0.5) -> None:
    """Reap processes re-parented to this worker (it is their subreaper), waiting up to
    ``patience`` seconds for the killed ones to end."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)
        except ChildProcessError:  # none left
            return


def _verdict(
    timed_out: bool, code: int, done: bytes, nonce: bytes, output: bytearray
) -> tuple[str, str]:
    text = output.decode("utf-8", errors="replace")
    if timed_out:
        return "timeout", text
    if done == nonce and code == 0:
        return "passed", text
    if done.startswith(_SETUP_MARK):
        return "error", done[len(_SETUP_MARK) :].decode("utf-8", errors="replace")
    if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return "timeout", text
    return "failed", text


def main() -> None:
    parent = int(sys.argv[1])
    uid = int(sys.argv[2])
    if _libc is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != parent:
        return
    for name in _PRELOADED:
        __import__(name)
    plan = Plan(uid if uid >= 0 else None)
    probe(plan)
    answer = sys.stdout.buffer
    hello = {"isolation": plan.report(), "scratch": plan.scratch}
    answer.write(json.dumps(hello).encode() + b"\n")
    answer.flush()
    try:
        for line in sys.stdin.buffer:
            request = json.loads(line)
            try:
                result = run(plan, request["program"], request["limits"])
            except OSError as error:  # e.g. no process could be forked
                result = {"status": "error", "exit_code": None, "output": str(error)}
                result["seconds"] = 0.0
            answer.write(json.dumps(result).encode() + b"\n")
            answer.flush()
    finally:
        shutil.rmtree(plan.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
