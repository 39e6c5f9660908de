"""A small sampling profiler for a worker process (all threads), for where py-spy is not installed.

    python -c "import bench.sampler as s; s.run_main('profile.txt')" worker --threads 1

Every `interval` seconds it reads every thread's stack (`sys._current_frames`). Stacks whose innermost frame is a
blocking call (waiting on a socket, a lock, a sleep) count as idle; the others are charged to their innermost
function (self) and to every function on the stack (cumulative). At exit the top entries are written to the file.
"""

from __future__ import annotations

import atexit
import collections
import os
import runpy
import sys
import threading
import time

IDLE_FRAMES = {"_worker"}  # a thread-pool thread between tasks, blocked in its queue's get (C)
BLOCKING = {
    "wait", "select", "poll", "epoll", "recv", "recv_into", "readinto", "read", "accept", "sleep", "acquire",
    "_wait_for_tstate_lock", "get", "_recv_bytes", "readline", "connect", "do_handshake", "getaddrinfo",
}  # fmt: skip


class Sampler:
    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.self_counts: collections.Counter = collections.Counter()
        self.cumulative: collections.Counter = collections.Counter()
        self.busy = self.idle = 0
        self._stop = threading.Event()
        self._me = None

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        thread.start()
        self._me = thread.ident

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for ident, frame in sys._current_frames().items():
                if ident == self._me:
                    continue
                if frame.f_code.co_name in IDLE_FRAMES:
                    self.idle += 1
                    continue
                if (
                    frame.f_code.co_name in BLOCKING
                    and "site-packages" not in frame.f_code.co_filename
                    or (
                        frame.f_code.co_name in BLOCKING
                        and frame.f_code.co_filename.endswith(("threading.py", "ssl.py"))
                    )
                ):
                    self.idle += 1
                    continue
                self.busy += 1
                self.self_counts[_name(frame)] += 1
                seen = set()
                while frame is not None:
                    name = _name(frame)
                    if name not in seen:
                        seen.add(name)
                        self.cumulative[name] += 1
                    frame = frame.f_back

    def report(self, top: int = 45) -> str:
        lines = [f"samples: busy {self.busy}, idle {self.idle} (interval {self.interval * 1000:.0f} ms)", "", "self:"]
        for name, n in self.self_counts.most_common(top):
            lines.append(f"{n / max(1, self.busy):7.1%}  {name}")
        lines += ["", "cumulative:"]
        for name, n in self.cumulative.most_common(top * 2):
            lines.append(f"{n / max(1, self.busy):7.1%}  {name}")
        return "\n".join(lines) + "\n"


def _name(frame) -> str:
    code = frame.f_code
    path = code.co_filename
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.rsplit("/wt-providers/", 1)[-1]
    return f"{path}:{code.co_name}"


def run_main(out: str, script: str = "main.py") -> None:
    sampler = Sampler()
    sampler.start()
    started = time.perf_counter()

    def dump() -> None:  # one file per worker process: a bench may start several
        with open(f"{out}.{os.getpid()}", "w") as f:
            f.write(f"wall {time.perf_counter() - started:.1f} s\n" + sampler.report())

    atexit.register(dump)
    sys.argv[0] = script
    runpy.run_path(script, run_name="__main__")
