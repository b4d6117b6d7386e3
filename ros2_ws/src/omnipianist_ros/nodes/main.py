"""One node per process (what ``launch_ros`` and ``omnipianist bringup --processes`` start).

Entry points: the console scripts of the node registry (:func:`omnipianist_ros.registry.console_scripts`:
``omnipianist_score = omnipianist_ros.nodes.main:score_main``, ...; one ``omnipianist_hand_driver`` for
both hands: launch_ros names it ``hand_driver_left`` / ``hand_driver_right`` and passes ``side``), and
``python -m omnipianist_ros.nodes.main KIND [--ros-args ...]``. Parameters and remappings come from the
``--ros-args`` on the command line, as launch_ros passes them.

Shutdown: SIGINT and SIGTERM (any number of them: launch forwards a terminal's Ctrl-C, so a node
usually gets two SIGINTs) set one flag; the executor runs in a background thread
(:class:`omnipianist_ros.spinning.Spinner`) and the main thread only waits for the flag, then stops
the spinning thread and the executor, closes the node (a hand driver torques off and
closes its port), destroys it and shuts rclpy down. No KeyboardInterrupt is ever raised, so there is
no traceback; a signal during construction ends the process as cleanly. The whole shutdown is bounded
by :data:`SHUTDOWN_DEADLINE_S` (well inside launch's 5 s SIGINT grace): past it the process reports
the overrun and exits with status 1.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from typing import Any

from omnipianist.dds import use_loopback
from omnipianist.errors import OmnipianistError
from omnipianist_ros.bringup import _node_class
from omnipianist_ros.registry import NODES
from omnipianist_ros.spinning import Spinner

SHUTDOWN_DEADLINE_S = 1.8
"""Seconds from the first SIGINT / SIGTERM to the end of the process, at most."""

RT_PRIORITY_ENV = "OMNIPIANIST_RT_PRIORITY"
"""Set to 1..99 to run the node process SCHED_FIFO at that priority (every thread it starts inherits it:
the executor, the DDS threads); needs CAP_SYS_NICE or an rtprio limit (``/etc/security/limits.conf``).
Refused: a warning, and the node runs on the normal scheduler. ``omnipianist bench loop --rt-priority``."""


CPUS_ENV = "OMNIPIANIST_CPUS"
"""Comma-separated CPU numbers to pin the node process to (``sched_setaffinity``; threads inherit it)."""


def apply_cpu_affinity(value: str | None = None) -> str:
    """Apply :data:`CPUS_ENV` to the calling thread (before other threads start); what happened, in words."""
    value = os.environ.get(CPUS_ENV, "") if value is None else value
    if not value:
        return ""
    try:
        cpus = {int(c) for c in value.split(",") if c.strip()}
        os.sched_setaffinity(0, cpus)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"warning: {CPUS_ENV}={value!r} not applied ({exc})\n")
        return f"refused: {exc}"
    return f"CPUs {sorted(cpus)}"


def apply_rt_priority(value: str | None = None) -> str:
    """Apply :data:`RT_PRIORITY_ENV` to the calling thread (before any other thread exists); what happened,
    in words ('' = nothing asked)."""
    value = os.environ.get(RT_PRIORITY_ENV, "") if value is None else value
    if not value or value == "0":
        return ""
    try:
        prio = int(value)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"warning: {RT_PRIORITY_ENV}={value!r} not applied ({exc}); normal scheduling\n")
        return f"refused: {exc}"
    return f"SCHED_FIFO {prio}"


class _Interrupted(Exception):
    """A signal arrived while the node was being built (raised by the handler, caught in run_node)."""


def _hard_exit_after(seconds: float, name: str) -> threading.Timer:
    def _overrun() -> None:
        sys.stderr.write(f"[{name}] shutdown overran {seconds:.1f} s; exiting\n")
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(seconds, _overrun)
    timer.daemon = True
    timer.start()
    return timer


def run_node(kind: str, argv: list[str] | None = None) -> int:
    """Build node ``kind`` (registry name), spin it until SIGINT / SIGTERM, shut it down; exit status."""
    use_loopback()
    apply_cpu_affinity()
    apply_rt_priority()
    stop = threading.Event()
    building = [True]

    def on_signal(signum: int, _frame: Any) -> None:
        first = not stop.is_set()
        stop.set()
        if first and building[0]:
            raise _Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    node: Any = None
    executor: Any = None
    spinner: Any = None
    errors: list[BaseException] = []
    deadline: threading.Timer | None = None
    try:
        cls = _node_class(kind)  # ConfigError (e.g. "hand driver node not available: ...") before DDS starts
        # rclpy's own handlers would raise KeyboardInterrupt (a traceback when it lands in clean-up)
        rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
        node = cls(kind)
        executor = SingleThreadedExecutor()  # see bringup.py: MultiThreadedExecutor spins
        executor.add_node(node)
        # what start-up built (the model, the scene, the policy) lives as long as the process: out of the
        # garbage collector's sight, so that no full collection walks it in the middle of a control step
        gc.collect()
        gc.freeze()
        building[0] = False
        if not stop.is_set():
            spinner = Spinner(executor, kind).start()
            # the main thread waits for a signal or for the spinning thread to end (a callback raised)
            while not stop.wait(0.2):
                if spinner.done.is_set():
                    break
            if spinner.error is not None:
                errors.append(spinner.error)
    except _Interrupted:
        pass
    except OmnipianistError as exc:  # a bad parameter, a missing file: one line, no traceback
        sys.stderr.write(f"[{kind}] {type(exc).__name__}: {exc}\n")
        errors.append(exc)
    finally:
        building[0] = False
        name = node.get_name() if node is not None else kind
        if stop.is_set():
            deadline = _hard_exit_after(SHUTDOWN_DEADLINE_S, name)
        _shutdown(rclpy, node, executor, spinner)
        if deadline is not None:
            deadline.cancel()
        # the process only exits from here on: a late SIGINT must neither become a KeyboardInterrupt nor,
        # once the interpreter finalizes (it restores SIG_DFL for Python-level handlers, not for SIG_IGN),
        # kill the process with status -2
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    if errors:
        if not isinstance(errors[0], OmnipianistError):
            import traceback

            traceback.print_exception(errors[0])
        return 1
    return 0


def _shutdown(rclpy: Any, node: Any, executor: Any, spinner: Any) -> None:
    if spinner is not None:
        spinner.stop(timeout_s=1.0)  # the callback in flight finishes; nothing touches the node after
    elif executor is not None:
        executor.shutdown(timeout_sec=0)
    if node is not None:
        close = getattr(node, "close", None)
        if close is not None:
            close()
        node.destroy_node()
    rclpy.try_shutdown(uninstall_handlers=False)


def mujoco_mock_main() -> int:
    return run_node("mujoco_mock")


def score_main() -> int:
    return run_node("score")


def policy_main() -> int:
    return run_node("policy")


def evaluator_main() -> int:
    return run_node("evaluator")


def piano_listener_main() -> int:
    return run_node("piano_listener")


def recorder_main() -> int:
    return run_node("recorder")


def estop_heartbeat_main() -> int:
    return run_node("estop_heartbeat")


def hand_driver_main() -> int:
    return run_node("hand_driver_left")  # same class for both hands; the node name and ``side`` come from --ros-args


def main(argv: list[str] | None = None) -> int:
    """``python -m omnipianist_ros.nodes.main KIND [--ros-args ...]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        sys.stderr.write(f"usage: python -m omnipianist_ros.nodes.main KIND [--ros-args ...]; KIND: "
                         f"{', '.join(NODES)}\n")
        return 2
    return run_node(args[0], [sys.argv[0], *args[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
