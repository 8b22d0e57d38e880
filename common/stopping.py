"""Stopping a stage cleanly on SIGTERM, SIGINT or SIGHUP, and ending the processes it started.

A signal becomes a `Stopped` exception in the main thread (a KeyboardInterrupt, so every
`finally` runs and atomic writes drop their temporary files); the entry point then exits
with status 128 + signal number. Worker processes and the game engines they start are found
through /proc (children by parent pid), so none is left running with parent 1.
"""

import os
import signal
import time
from pathlib import Path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by a signal; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_of(interrupt: BaseException) -> int:
    """The signal behind a KeyboardInterrupt (a plain one is Ctrl-C: SIGINT)."""
    return interrupt.signum if isinstance(interrupt, Stopped) else int(signal.SIGINT)


def stopped_message(signum: int) -> str:
    return f"stopped by {signal.Signals(signum).name}: rerun the same command to resume"


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def install_stop_handlers() -> None:
    """In the main thread of an entry point: each stop signal raises Stopped there."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_stopped)


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/<pid>/task/*/children, else by scanning /proc/*/stat."""
    found: set[int] = set()
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            try:
                found.update(int(word) for word in (task / "children").read_text().split())
            except OSError:
                continue
        if found:
            return sorted(found)
    except OSError:
        pass
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # the command name (field 2) may hold spaces and parentheses: split after the last ')'
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), parents before children."""
    result, frontier = [], [pid]
    while frontier:
        below = [child for parent in frontier for child in children(parent)]
        result.extend(below)
        frontier = below
    return result


def is_alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def end_processes(pids: list[int], grace_seconds: float = 5.0) -> list[int]:
    """SIGTERM each process, wait up to `grace_seconds` for them to end, then SIGKILL the rest.
    Returns the pids that had to be killed."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(is_alive(pid) for pid in pids):
        time.sleep(0.05)
    killed = [pid for pid in pids if is_alive(pid)]
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return killed


def run_child(command: list[str], environment: dict | None = None, grace_seconds: float = 10.0) -> int:
    """Run a command and return its exit status. If this process is stopped meanwhile, the
    child gets SIGTERM (mpiexec passes it to its ranks) and `grace_seconds` to end; whatever is
    left below it then is killed, so nothing outlives the stop."""
    import subprocess

    process = subprocess.Popen(command, env=environment)
    try:
        return process.wait()
    except KeyboardInterrupt:
        below = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            below = below + descendants(process.pid)
            process.kill()
            process.wait()
        end_processes([pid for pid in below if is_alive(pid)], grace_seconds=1.0)
        raise
