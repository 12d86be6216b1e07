"""The sandbox runs hostile programs: each scores 0, harms nothing outside, and ends in bounded
time. Parts that only a root Linux machine can enforce (no network, no other user's files or
processes) are skipped elsewhere, with the reason `isolation()` gives."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from epx.execution import sandbox
from epx.execution.sandbox import Limits, isolation, run_program, run_programs

SHORT = Limits(wall_seconds=3.0, cpu_seconds=1)


def processes_of(uid: int) -> list[int]:
    """Pids of the processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if int(uid_line.split()[1]) == uid:
            found.append(int(entry))
    return found


def no_process_left(uid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while processes_of(uid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def needs(feature: str) -> None:
    """Skip unless this machine's sandbox enforces ``feature`` (network, namespaces, uid)."""
    found = isolation()
    if not getattr(found, feature):
        pytest.skip(f"the sandbox here enforces no {feature}: {'; '.join(found.notes)}")


def test_a_program_that_runs_to_its_end_passes_with_its_output():
    result = run_program("print('hello')\nimport sys\nprint('oops', file=sys.stderr)")
    assert (result.status, result.exit_code, result.output) == ("passed", 0, "hello\noops\n")


@pytest.mark.parametrize(
    "program",
    [
        "raise AssertionError('wrong')",
        "import sys\nsys.exit(0)",  # an early exit with code 0 is no pass
        "exit(0)",
        "import os\nos._exit(0)",  # nor is an exit that skips the rest
        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)",
        "def f(:\n    pass",
        "x = input()",  # stdin is empty
    ],
)
def test_a_program_that_does_not_run_to_its_end_fails(program: str):
    assert run_program(program, SHORT).status == "failed"


def test_the_results_come_back_in_the_order_of_the_programs():
    results = run_programs([f"print({i})" for i in range(12)], workers=2)
    assert [r.output for r in results] == [f"{i}\n" for i in range(12)]


def test_an_infinite_loop_is_stopped_by_its_cpu_limit():
    start = time.monotonic()
    result = run_program("while True:\n    pass", SHORT)
    assert result.status == "timeout"
    assert time.monotonic() - start < SHORT.wall_seconds + 2.0


def test_a_sleeping_program_is_stopped_by_its_wall_clock_limit():
    start = time.monotonic()
    result = run_program("import time\ntime.sleep(600)", Limits(wall_seconds=1.0, cpu_seconds=1))
    assert result.status == "timeout"
    assert 1.0 <= time.monotonic() - start < 4.0


FORK_BOMB = """
import os, time
for _ in range(200):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
"""


def test_a_fork_bomb_fails_at_the_process_limit_and_leaves_no_process():
    start = time.monotonic()
    result = run_programs([FORK_BOMB], workers=1, limits=SHORT)[0]
    assert result.status == "failed"
    assert "BlockingIOError" in result.output  # fork refused: Resource temporarily unavailable
    assert time.monotonic() - start < SHORT.wall_seconds + 2.0
    uid = isolation().uid
    if uid is not None:
        assert no_process_left(uid)


def test_the_processes_a_passing_program_leaves_running_are_killed():
    needs("uid")
    program = "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        time.sleep(60)"
    result = run_programs([program + "\n        os._exit(0)"], workers=1, limits=SHORT)[0]
    assert result.status == "passed"
    assert no_process_left(isolation().uid)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "program",
    [
        "x = bytearray(10 * 2**30)",  # 10 GiB at once
        "chunks = [bytearray(2**26) for _ in range(160)]",  # 10 GiB, 64 MiB at a time
    ],
)
def test_a_10_gib_allocation_fails(program: str):
    start = time.monotonic()
    result = run_program(program, Limits(wall_seconds=10.0, cpu_seconds=5))
    assert result.status == "failed"
    assert "MemoryError" in result.output
    assert time.monotonic() - start < 10.0


def test_the_output_is_capped_without_failing_the_program():
    result = run_program("print('x' * 10_000_000)", Limits(output_bytes=1000))
    assert result.status == "passed"
    assert result.output == "x" * 1000


def test_a_program_inherits_no_file_descriptor_but_its_three_streams_and_pass_mark():
    program = """
import os
open_fds = []
for fd in range(4, 4096):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
assert not open_fds, open_fds
"""
    with open(__file__) as held:  # an inheritable descriptor of the caller
        os.set_inheritable(held.fileno(), True)
        result = run_program(program)
    assert result.status == "passed", result.output


def test_a_program_cannot_delete_a_file_outside_its_directory(tmp_path: Path):
    needs("uid")
    target = tmp_path / "keep.txt"
    target.write_text("precious")
    target.chmod(0o666)
    result = run_program(f"import os\nos.remove({str(target)!r})")
    assert result.status == "failed"
    assert target.read_text() == "precious"


def test_what_a_program_writes_does_not_survive_it():
    needs("namespaces")
    escape = Path("/tmp") / f"epx-escape-{uuid.uuid4().hex}"
    program = f"""
import os
for path in ({str(escape)!r}, "/var/tmp/epx-escape", "/dev/shm/epx-escape", "left-behind.txt"):
    with open(path, "w") as stream:
        stream.write("x")
print(os.getcwd(), os.environ["HOME"], os.environ["TMPDIR"])
"""
    result = run_program(program)
    assert result.status == "passed", result.output
    assert result.output == "/tmp /tmp /tmp\n"  # its own fresh tmpfs
    assert not escape.exists()
    assert not Path("/var/tmp/epx-escape").exists()
    assert not Path("/dev/shm/epx-escape").exists()


SECRET = "wandb-secret-" + uuid.uuid4().hex


FIND_SECRET = f"""
import os
secret = {SECRET!r}
found = [name for name, value in os.environ.items() if secret in value]
for pid in os.listdir("/proc"):
    for part in ("environ", "cmdline"):
        try:
            with open(f"/proc/{{pid}}/{{part}}", "rb") as stream:
                if secret.encode() in stream.read():
                    found.append(f"/proc/{{pid}}/{{part}}")
        except OSError:
            pass
assert found, "no secret found"
print(found)
"""


def test_a_program_sees_no_secret_of_its_caller(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    sandbox.shutdown()  # workers started now, from an environment that holds the secret
    program = "import os\nassert 'WANDB_API_KEY' not in os.environ and 'HF_TOKEN' not in os.environ"
    result = run_program(program)
    assert result.status == "passed", result.output


def secret_holder(on_command_line: bool) -> subprocess.Popen:
    """A process of the caller's user with the secret in its environment (and its argv)."""
    command = [sys.executable, "-c", "import time; time.sleep(30)"]
    env = {**os.environ, "WANDB_API_KEY": SECRET}
    return subprocess.Popen(command + [SECRET] * on_command_line, env=env)


@pytest.mark.parametrize(("on_command_line", "feature"), [(False, "uid"), (True, "namespaces")])
def test_a_program_cannot_read_the_secrets_of_other_processes(on_command_line, feature):
    """Another user cannot read a process's environment; any user can read its command line
    unless, in a PID namespace of its own, the program sees no other process at all."""
    needs(feature)
    holder = secret_holder(on_command_line)
    try:
        time.sleep(0.2)  # the holder's interpreter is running with its argv
        result = run_program(FIND_SECRET)
    finally:
        holder.kill()
        holder.wait()
    assert result.status == "failed"
    assert SECRET not in result.output


def test_a_program_cannot_connect_to_a_listener_on_loopback():
    needs("network")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        start = time.monotonic()
        program = (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()"
        )
        result = run_program(program)
        assert result.status == "failed"
        assert "Network is unreachable" in result.output
        assert time.monotonic() - start < 5.0
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_the_sandbox_uses_every_isolation_this_machine_allows():
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("namespaces and a uid of its own need root on Linux (and unshare to check)")
    allowed = subprocess.run(["unshare", "--net", "--pid", "--mount", "--fork", "true"]).returncode
    found = isolation()
    assert (found.network, found.namespaces) == (allowed == 0, allowed == 0), found
    assert found.uid is not None and found.uid >= sandbox.FIRST_UID
    program = "import os\nprint(os.getuid(), sorted(p for p in os.listdir('/proc') if p.isdigit()))"
    seen = run_program(program).output.split(" ", 1)
    assert seen[0] == str(found.uid)
    if found.namespaces:
        assert seen[1] == "['1', '2']\n"  # its namespace's init, and itself


def test_a_worker_that_dies_is_replaced_its_program_reported_and_its_directory_deleted():
    run_programs(["pass"], workers=1)
    worker = sandbox._pool.current.workers[0]  # the worker that will run the next program
    threading.Timer(0.5, os.killpg, (worker.process.pid, 9)).start()
    result = run_program("import time\nopen('left.txt', 'w').write('x')\ntime.sleep(5)")
    assert result.status == "error"
    assert worker.scratch and not Path(worker.scratch).exists()  # its directory went with it
    assert run_program("print('after')").output == "after\n"


@pytest.mark.parametrize(
    "field", ["wall_seconds", "cpu_seconds", "memory_bytes", "processes", "output_bytes"]
)
def test_limits_must_be_positive(field: str):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


def test_the_worker_imports_only_the_standard_library():
    import ast

    tree = ast.parse(sandbox.WORKER_SCRIPT.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
