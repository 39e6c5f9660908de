"""A child process that never outlives its parent: `relais serve` starts its job worker with one.

The parent starts the child with a pipe on its stdin and keeps the write end; the child calls `tie_to_parent`.
Three things then end the child once the parent is gone, however it went (SIGKILL included):
- Linux: PR_SET_PDEATHSIG, so the kernel sends SIGTERM the moment the parent dies;
- anywhere: end-of-file on stdin, which the kernel delivers when the parent's end of the pipe closes;
- the parent pid changing (checked once now, for a parent that died before the two above were in place).
The child gets SIGTERM, which the Huey consumer answers by stopping (deployments and sends resume elsewhere).
"""

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading

PR_SET_PDEATHSIG = 1


def spawn_child(args: list[str]) -> subprocess.Popen:
    """Start `args` tied to this process: the child gets `--parent-pid` and the read end of a pipe as stdin."""
    return subprocess.Popen([*args, "--parent-pid", str(os.getpid())], stdin=subprocess.PIPE)


def stop_child(child: subprocess.Popen, timeout: float = 30) -> None:
    if child.stdin:
        child.stdin.close()  # the child's stdin reaches EOF: it stops even if the signal below is lost
    if child.poll() is None:
        child.terminate()
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def tie_to_parent(parent_pid: int) -> None:
    _set_pdeathsig()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
        return
    threading.Thread(target=_stop_on_eof, name="parent-pipe", daemon=True).start()


def _set_pdeathsig() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _stop_on_eof() -> None:
    try:
        while os.read(sys.stdin.fileno(), 1024):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
