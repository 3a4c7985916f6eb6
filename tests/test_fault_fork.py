"""Fork safety (issue 19, point 1): a child forked while threads record never deadlocks.

gunicorn --preload, Celery prefork and multiprocessing fork a running app. Each variant runs
in its own process: 4 threads record flat out (record_call with label overflow, feedback,
rate limits, a fail-open log line: every lock of the record path), the main thread forks 30
times, and each child records one call, one rating, one rate limit, renders /metrics (single-process;
a fifth thread scrapes there too) and exits.
A child stuck on a lock dumps its stack (faulthandler) and is killed: the failure message
names the lock it hung on. Bounded: about 5 s per stuck child, the loop stops at the first
one, the whole variant has 50 s.

On main before this change every variant hung: in the store's (provider, model) group lock
(single-process) or prometheus-client's value lock (multi-process), held by a recording thread
at the fork.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

FORKS = 30
CHILD_TIMEOUT_S = 4.0  # the child dumps its stack and exits 1 after this

SCRIPT = textwrap.dedent("""
    import faulthandler, json, logging, os, signal, sys, threading, time, warnings
    warnings.simplefilter("ignore")  # Python 3.12+: DeprecationWarning for fork() with threads
    from llm_exporter import metrics, record_call, record_feedback, record_ratelimit
    from llm_exporter.exposition import generate_latest
    from llm_exporter.testing import fresh_registry

    FORKS, CHILD_TIMEOUT = int(sys.argv[1]), float(sys.argv[2])
    MULTI = os.environ.get("PROMETHEUS_MULTIPROC_DIR") is not None
    assert metrics.multiprocess_mode() == MULTI
    logging.getLogger("llm_exporter").setLevel(logging.CRITICAL)  # log_failure still takes its lock
    fresh_registry(label_limits={"feature": 50})
    stop = threading.Event()
    loops = [0] * 4

    def work(i):
        n = 0
        while not stop.is_set():
            record_call(provider="openai", model="gpt-4o", feature=f"f{n % 80}", duration_s=0.5,
                        input_tokens=100, output_tokens=10, time_to_first_token_s=0.1)  # 30 of 80 overflow
            if n % 4 == 0:
                record_feedback(f"f{n % 60}", "gpt-4o", n % 5 + 1)
                record_ratelimit("openai", f"m{n % 7}", "requests", remaining=n, limit=1000)
                record_ratelimit("openai", "gpt-4o", "no-such-resource", remaining=1)  # log_failure's lock
            n += 1
            loops[i] = n

    def scrape():  # single-process: a /metrics scrape holds the registry's and the store's locks
        while not stop.is_set():
            generate_latest()
            time.sleep(0.01)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(4)]
    if not MULTI:
        threads.append(threading.Thread(target=scrape, daemon=True))
    for t in threads:
        t.start()
    time.sleep(0.3)
    results = []
    for k in range(FORKS):
        pid = os.fork()
        if pid == 0:
            faulthandler.dump_traceback_later(CHILD_TIMEOUT, exit=True)  # stack to stderr, then _exit(1)
            try:
                record_call(provider="openai", model="gpt-4o", feature="child", duration_s=0.1,
                            input_tokens=1, output_tokens=1)
                record_feedback("child", "gpt-4o", 5)
                record_ratelimit("openai", "gpt-4o", "tokens", remaining=5, limit=10)
                if not MULTI:  # (multi-process: a scrape reads every earlier child's files, seconds by the 30th)
                    generate_latest()
                os._exit(0)
            except BaseException:
                os._exit(3)
        deadline = time.monotonic() + CHILD_TIMEOUT + 2.0
        status = None
        while time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
                break
            time.sleep(0.005)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = "killed"
        results.append(status)
        if status != 0:
            break  # one stuck child is enough: its stack is on stderr
    stop.set()
    print(json.dumps({"results": results, "loops": loops}))
""")


@pytest.mark.parametrize("mode", ["single-process", "multi-process"])
def test_children_forked_while_threads_record_never_hang(mode, tmp_path):
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    if mode == "multi-process":  # set before prometheus_client is imported: the child process's env
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(FORKS), str(CHILD_TIMEOUT_S)], env=env,
                          capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr[-6000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert min(out["loops"]) > 0, out  # the threads were recording
    assert out["results"] == [0] * FORKS, f"a forked child hung or failed: {out['results']}\n{proc.stderr[-6000:]}"


# --- deterministic: a lock held by another thread at the fork is free in the child ----------

HELD = textwrap.dedent("""
    import os, signal, sys, threading, time
    from prometheus_client import CollectorRegistry, Counter
    from llm_exporter import locks

    reg = CollectorRegistry()
    child = Counter("held_total", "h", ["x"], registry=reg).labels("a")
    held = {"lock": locks.new_lock(), "rlock": locks.new_rlock()}
    inside = threading.Event()
    left_update = []

    def hold():
        for lock in held.values():
            lock.acquire()  # and never released: that thread does not exist in the child
        with locks.client_update:  # a prometheus-client update in progress when the fork is asked for
            inside.set()
            time.sleep(0.3)
            child.inc()
            left_update.append(time.monotonic())
        threading.Event().wait()

    threading.Thread(target=hold, daemon=True).start()
    inside.wait()
    pid = os.fork()  # waits for the update to end (locks.client_update)
    if pid == 0:
        signal.alarm(10)  # a stuck child dies instead of holding the test
        free = [name for name, lock in held.items() if lock.acquire(timeout=2)]
        child.inc()  # prometheus-client's value lock (multi-process: its one global lock) is free
        os.write(1, (" ".join(sorted(free)) + " value\\n").encode())
        os._exit(0)
    forked_at = time.monotonic()
    os.waitpid(pid, 0)
    assert left_update and left_update[0] <= forked_at, "the fork did not wait for the update"
""")


@pytest.mark.parametrize("mode", ["single-process", "multi-process"])
def test_locks_held_by_another_thread_at_the_fork_are_free_in_the_child(mode, tmp_path):
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    if mode == "multi-process":
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", HELD], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["lock", "rlock", "value"], proc.stderr
