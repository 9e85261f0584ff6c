# klear code-sandbox harness: runs one untrusted solution against its tests, forking once per test.
#
# It runs inside the bubblewrap sandbox as /usr/bin/python3 -I, normally as PID 1 of a private PID
# namespace. Protocol with the Node driver (one JSON object per line):
#   stdin  line 1:  {"code", "mode": "stdin"|"functional", "fn_name", "inputs": [str],
#                    "timeout_s", "memory_bytes", "output_limit", "prelude"}
#   stdout per test: {"i", "status", "exit", "signal", "stdout", "result", "err", "time_ms", "memory_kb"}
#   stdin  per test: "next" or "stop" (the driver compares outputs, so expected outputs never enter
#                    the sandbox and a solution cannot read them from memory).
#   stdout at end:   {"done": true}
# With "batch": true in the request it runs every test without asking (remote execution).
# The harness only reports what happened; the driver decides verdicts.
import json
import math
import os
import resource
import select
import signal
import sys
import time

PROTO_IN = 0
PROTO_OUT = 1
MEMORY_EXIT = 113  # a child exits with this after a MemoryError
RESULT_FD = 3  # where a functional-mode child writes its encoded return value

LCB_PRELUDE = """\
from string import *
from re import *
from datetime import *
from collections import *
from heapq import *
from bisect import *
from copy import *
from math import *
from random import *
from statistics import *
from itertools import *
from functools import *
from operator import *
from io import *
from sys import *
from json import *
from builtins import *
from typing import *
import string
import re
import datetime
import collections
import heapq
import bisect
import copy
import math
import random
import statistics
import itertools
import functools
import operator
import io
import sys
import json
"""

_inbuf = b""


def read_line():
    global _inbuf
    while b"\n" not in _inbuf:
        chunk = os.read(PROTO_IN, 1 << 16)
        if not chunk:
            line, _inbuf = _inbuf, b""
            return line.decode() if line else None
        _inbuf += chunk
    line, _, _inbuf = _inbuf.partition(b"\n")
    return line.decode()


def write_proto(obj):
    data = (json.dumps(obj) + "\n").encode()
    while data:
        n = os.write(PROTO_OUT, data)
        data = data[n:]


def encode_value(v, depth=0):
    """Encodes a return value so the driver can apply Python's == to it (ints stay exact)."""
    if depth > 200:
        return {"$repr": "<too deep>"}
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v if -(2**53) < v < 2**53 else {"$int": str(v)}
    if isinstance(v, float):
        return v if math.isfinite(v) else {"$float": repr(v)}
    if isinstance(v, list):
        return [encode_value(x, depth + 1) for x in v]
    if isinstance(v, tuple):
        return {"$tuple": [encode_value(x, depth + 1) for x in v]}
    if isinstance(v, dict):
        return {"$dict": [[encode_value(k, depth + 1), encode_value(x, depth + 1)] for k, x in v.items()]}
    return {"$repr": repr(v)[:200], "$type": type(v).__name__}


def last_traceback_line(text):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def run_child(req, code_obj, base_globals, input_path, out_w, err_w, res_w):
    """In the forked child: become the solution. Never returns."""
    try:
        os.setpgid(0, 0)
        fd_in = os.open(input_path, os.O_RDONLY)
        os.dup2(fd_in, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        if res_w != RESULT_FD:
            os.dup2(res_w, RESULT_FD)
        os.closerange(RESULT_FD + 1, 1 << 16)
        cpu = int(math.ceil(req["timeout_s"])) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        mem = int(req.get("memory_bytes") or 0)
        if mem > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        if req.get("prelude", True):
            sys.setrecursionlimit(50000)  # as LiveCodeBench's prelude does
        sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
        sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", closefd=False)
    except BaseException as e:  # noqa: the child must never fall back into the harness loop
        os.write(2, ("harness: child setup failed: %r\n" % (e,)).encode())
        os._exit(120)

    status = 0
    try:
        g = dict(base_globals)
        exec(code_obj, g)
        if req["mode"] == "functional":
            args = [json.loads(line) for line in req["current_input"].split("\n") if line.strip()]
            cls = g.get("Solution")
            if cls is None:
                raise NameError("the solution defines no class Solution")
            result = getattr(cls(), req["fn_name"])(*args)
            if isinstance(result, tuple):
                result = list(result)
            data = json.dumps(encode_value(result)).encode()
            while data:
                data = data[os.write(RESULT_FD, data) :]
    except SystemExit as e:
        c = e.code
        status = 0 if c is None else (c if isinstance(c, int) else 1)
        if not isinstance(c, (int, type(None))):
            try:
                sys.stderr.write(str(c) + "\n")
            except BaseException:
                pass
    except MemoryError:
        status = MEMORY_EXIT
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
        except BaseException:
            pass
        status = 1
    try:
        # As a normal interpreter exit would: wait for non-daemon threads (solutions that run main in a
        # threading.Thread for a bigger stack print from it), then atexit handlers, then flush.
        import threading

        threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except MemoryError:
            status = MEMORY_EXIT
        except BaseException:
            if status == 0:
                status = 1
    os._exit(status & 0xFF)


def reap_everything(is_init):
    """Kills whatever a test left behind. As PID 1 of the sandbox's namespace, kill(-1) reaches every
    other process in it (also ones that escaped the test's process group) and nothing outside."""
    if is_init:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not is_init:
                return
            time.sleep(0.001)


def run_test(req, code_obj, base_globals, index, wake_r, is_init):
    input_path = "/tmp/.klear-input-%d" % index
    if not is_init:
        input_path = os.path.join(req["_tmpdir"], "input-%d" % index)
    fd = os.open(input_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    data = req["inputs"][index].encode("utf-8", "surrogatepass")
    while data:
        data = data[os.write(fd, data) :]
    os.close(fd)
    req["current_input"] = req["inputs"][index]

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(err_r)
        os.close(res_r)
        run_child(req, code_obj, base_globals, input_path, out_w, err_w, res_w)
    os.close(out_w)
    os.close(err_w)
    os.close(res_w)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass

    limit = int(req["output_limit"])
    deadline = t0 + float(req["timeout_s"])
    out = bytearray()
    err_tail = b""
    res = bytearray()
    open_fds = {out_r, err_r, res_r}
    status = None
    wait_status = None
    rusage = None
    while True:
        if wait_status is None:
            wpid, wstat, ru = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                wait_status, rusage = wstat, ru
        if wait_status is not None and not open_fds:
            break
        now = time.monotonic()
        if wait_status is not None:
            # The test process exited; leftovers may hold its pipes open, so stop waiting for them.
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            timeout = 0.05
        else:
            timeout = deadline - now
            if timeout <= 0:
                status = "timeout"
                break
        ready, _, _ = select.select(list(open_fds) + [wake_r], [], [], timeout)
        if not ready and wait_status is not None:
            break
        for r in ready:
            if r == wake_r:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                continue
            chunk = os.read(r, 1 << 16)
            if not chunk:
                open_fds.discard(r)
                continue
            if r == out_r:
                out += chunk
                if len(out) > limit:
                    status = "output_limit"
            elif r == err_r:
                err_tail = (err_tail + chunk)[-8192:]
            else:
                res += chunk
                if len(res) > limit:
                    status = "output_limit"
        if status is not None:
            break
    elapsed = time.monotonic() - t0
    if wait_status is None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        _, wait_status, rusage = os.wait4(pid, 0)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    reap_everything(is_init)
    for fd in (out_r, err_r, res_r):
        os.close(fd)
    try:
        os.unlink(input_path)
    except OSError:
        pass

    exit_code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else None
    sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
    if status is None:
        if sig in (signal.SIGXCPU,) or (sig == signal.SIGKILL and rusage is not None and
                                         rusage.ru_utime + rusage.ru_stime >= float(req["timeout_s"])):
            status = "timeout"
        elif exit_code == MEMORY_EXIT:
            status = "memory"
        else:
            status = "exited"
    err_text = err_tail.decode("utf-8", "replace")
    return {
        "i": index,
        "status": status,
        "exit": exit_code,
        "signal": sig,
        "stdout": bytes(out[:limit]).decode("utf-8", "replace") if status != "output_limit" else "",
        "result": bytes(res).decode("utf-8", "replace") if status != "output_limit" else "",
        "err": last_traceback_line(err_text),
        "time_ms": round(elapsed * 1000, 3),
        "memory_kb": int(rusage.ru_maxrss) if rusage is not None else None,
    }


def main():
    is_init = os.getpid() == 1
    if is_init:
        # PID 1 receives only signals it has handlers for; make sure none of the solution's signals
        # can reach a Python-level handler (SIGINT would raise KeyboardInterrupt here).
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        try:
            import ctypes

            # Not dumpable: a test process (same uid) cannot open /proc/1/fd/* or /proc/1/mem and
            # forge protocol lines.
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
        except Exception:
            pass
    line = read_line()
    if not line:
        return
    req = json.loads(line)
    if not is_init:
        import tempfile

        req["_tmpdir"] = tempfile.mkdtemp(prefix="klear-harness-")
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)

    base_globals = {"__name__": "__main__", "__builtins__": __builtins__}
    if req.get("prelude", True):
        exec(LCB_PRELUDE, base_globals)
    base_globals["__name__"] = "__main__"
    try:
        code_obj = compile(req["code"], "<solution>", "exec")
        compile_error = None
    except BaseException as e:  # SyntaxError, ValueError (null bytes), RecursionError, MemoryError
        code_obj = None
        compile_error = "%s: %s" % (type(e).__name__, e)

    # Import what every test child needs once, here, and move all objects out of the GC's sight:
    # otherwise each forked child imports them again and the collector's writes to object headers
    # copy most of the parent's pages, which doubles the cost of a test.
    import atexit  # noqa: F401
    import gc
    import threading  # noqa: F401
    import traceback  # noqa: F401

    gc.freeze()
    for index in range(len(req["inputs"])):
        if code_obj is None:
            msg = {"i": index, "status": "exited", "exit": 1, "signal": None, "stdout": "", "result": "",
                   "err": compile_error[:500], "time_ms": 0, "memory_kb": None}
        else:
            msg = run_test(req, code_obj, base_globals, index, wake_r, is_init)
        write_proto(msg)
        if req.get("batch"):
            continue  # no driver to ask (remote execution): run every test, the caller judges later
        cmd = read_line()
        if cmd is None or cmd.strip() != "next":
            break
    if not is_init:
        import shutil

        shutil.rmtree(req["_tmpdir"], ignore_errors=True)
    write_proto({"done": True})


if __name__ == "__main__":
    main()
