"""A pod's process: launched, waited for, signalled, reaped; and what a dead runner left behind.

A pod's process is ``/bin/sh -c SCRIPT pod ARGV...`` (the script sets up the pod's mounts and
``exec``s ARGV), under ``unshare --mount --propagation private`` when that works (it needs root),
in its own session and process group, stdout and stderr appended to the pod's log file. Its pid
and start time go to ``pods/run/UID/pid``, so that a later runner (or devcluster/down.sh) can
kill the group without mistaking a reused pid for it.

The process is waited for without being reaped (``waitid(WNOWAIT)``): until ``reap`` collects it,
its pid, and so its process group id, cannot be reused, so ``reap`` can SIGKILL what is left of
the group (children of the main process) first and no signal from ``signal_group`` can ever reach
an unrelated group. The pod's ``Run.lock`` makes those two exclusive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from .common import REPO
from .state import PodEvent, PodState, Run

log = logging.getLogger("podrunner")


def find_tool(name: str) -> str:
    return shutil.which(name) or name


def check_unshare() -> bool:
    """Whether pods can get a private mount namespace here."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        log.warning("unshare/mount not found: pods run without private mounts")
        return False
    rc = subprocess.run(
        [find_tool("unshare"), "--mount", "--propagation", "private", "true"],
        capture_output=True,
        check=False,
    ).returncode
    if rc != 0:
        log.warning(
            "unshare --mount failed (not root?): pods run without private mounts, "
            "termination messages and volumes are not available"
        )
    return rc == 0


def pod_command(script_lines: list[str], argv: list[str], private_mounts: bool) -> list[str]:
    cmd = ["/bin/sh", "-c", "\n".join(script_lines), "pod", *argv]
    if private_mounts:
        cmd = [find_tool("unshare"), "--mount", "--propagation", "private", *cmd]
    return cmd


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time), to recognise a process after a runner restart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def spawn(
    cmd: list[str], env: dict[str, str], log_path: Path, pid_file: Path
) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(REPO),
            start_new_session=True,  # own session and process group
        )
    pid_file.write_text(f"{proc.pid} {proc_start_time(proc.pid)}\n")
    return proc


def wait_exit(proc: subprocess.Popen[bytes]) -> None:
    """Block until the process has exited, leaving it unreaped."""
    while True:
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            return
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def reap(run: Run) -> tuple[int, PodState, PodState]:
    """Kill what is left of the exited process's group, reap it and record PROCESS_EXITED;
    returns the return code and the state edge taken."""
    proc = run.proc
    assert proc is not None
    with run.lock:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
        old, new = run.advance(PodEvent.PROCESS_EXITED)
    return rc, old, new


def signal_group(run: Run, sig: int) -> None:
    """Signal the pod's process group, unless it was reaped (its id may be reused by now). A pod
    played in-process (inprocess.py) gets the signal as its trainer's handler would."""
    with run.lock:
        if run.state.process_ended:
            return
        if run.sim is not None:
            run.sim.signal(sig)
            return
        if run.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.proc.pid, sig)


def terminate(run: Run, grace_s: int) -> None:
    """SIGTERM the pod's process group, SIGKILL after ``grace_s``, in a thread of its own. The
    caller's state transition (into TERMINATING or ORPHANED) makes sure this runs once."""

    def kill() -> None:
        log.info("%s: terminating (grace %d s)", run.key, grace_s)
        signal_group(run, signal.SIGTERM)
        if not run.done.wait(max(grace_s, 0)):
            log.info("%s: grace period over; SIGKILL", run.key)
            signal_group(run, signal.SIGKILL)

    threading.Thread(target=kill, daemon=True, name=f"kill-{run.key}").start()


def reap_leftovers(run_dir: Path) -> None:
    """Kill the process groups a previous runner left behind and drop their pods' folders."""
    if not run_dir.is_dir():
        return
    for d in run_dir.iterdir():
        pid_file = d / "pid"
        if pid_file.is_file():
            with contextlib.suppress(ValueError, OSError):
                pid_s, start = pid_file.read_text().split()
                pid = int(pid_s)
                if proc_start_time(pid) == start:
                    log.info("killing leftover process group %d (%s)", pid, d.name)
                    os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)
