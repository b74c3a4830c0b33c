"""One process of a multi-process run, watched from outside it.

When a process of a multi-process run stops, JAX's coordination service ends every other process
with a native abort (a C++ "Check failure" stack trace) that Python cannot catch. So the training
command of such a process runs the run itself in a child process (the same command line again)
and stands between it and the terminal: the child's output passes through, except the native
lines (glog lines from C++ sources with their continuations, the abort and its stack trace), which go to
`<work_dir>/process<i>.log` with everything else the child wrote to stderr. When the child ends
by a native abort or a signal, one line says so, with the checkpoint every process resumes from.
The child dies with its parent (Linux), so stopping the command stops the run.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from tdmpc2_jax import checkpoints

CHILD = "TDMPC2_JAX_GUARDED"  # set in the child's environment
# the start of a native abort: glog's fatal line, its stack trace, Python's fault handler, a C++ terminate
_ABORT = re.compile(r"^(F\d{4} \d\d:\d\d:\d\d|\*\*\* Check failure|Fatal Python error|terminate called)")
# a glog line written by C++ code (JAX's runtime), e.g. "E1207 16:28:44.08 29040 coordination_service.cc:1520]":
# it and the lines that continue it are native
_NATIVE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\.(cc|h):\d+\]")
# a line written by Python (an error line, a traceback, a warning, absl logging), which ends a native block
_PYTHON = re.compile(r"^(error: |Traceback |\S+\.py:\d+: |[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\.py:\d+\])")
_PR_SET_PDEATHSIG = 1


def is_child() -> bool:
    """Whether this process is the guarded child of a watching parent."""
    return os.environ.get(CHILD) == "1"


def die_with_parent() -> None:
    """Asks Linux to kill this process when its parent dies (nothing elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent was already gone before the request
        os._exit(1)


def watch(work_dir: str, process_id: int | None, num_processes: int | None) -> int:
    """Runs this command line again in a child process, passing its output through; returns the
    exit status for this command (1 with one line on stderr when the child aborted or was killed).
    The process's index and count name it where they are given (else the cluster sets them)."""
    os.makedirs(work_dir, exist_ok=True)
    name = f"process {process_id} of {num_processes}" if process_id is not None else f"process (pid {os.getpid()})"
    log_path = os.path.join(work_dir, f"process{process_id if process_id is not None else os.getpid()}.log")
    child = subprocess.Popen([sys.executable, *sys.orig_argv[1:]], env={**os.environ, CHILD: "1"},
                             stderr=subprocess.PIPE, text=True, errors="replace")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _: child.send_signal(received))
    abort, native = None, False
    with open(log_path, "a") as log:
        for line in child.stderr:
            log.write(line)
            log.flush()
            abort = abort or (line.strip() if _ABORT.match(line) else None)
            native = bool(_NATIVE.match(line)) or (native and not _PYTHON.match(line))
            if abort is None and not native:
                sys.stderr.write(line)
                sys.stderr.flush()
    status = child.wait()
    if abort is None and status >= 0:
        return status
    cause = (f"it was ended by {signal.Signals(-status).name}" if abort is None
             else "another process of the run stopped" if "another task died" in abort or "fatal errors" in abort
             else f"it aborted: {abort[:200]}")
    print(f"error: {name} stopped: {cause}; "
          f"{checkpoints.resume_hint(os.path.join(work_dir, 'checkpoints'))} (details in {log_path})",
          file=sys.stderr)
    return 1
