"""Spin an rclpy executor in a background thread and stop it without a race.

rclpy's ``Executor.shutdown()`` called from another thread while ``spin()`` runs destroys the
executor's guard condition without waiting for the spinning thread (in rclpy for Kilted it sets the
shutdown flag and then tests that same flag before waiting, so it never waits). The spinning thread
can then be inside ``wait_for_ready_callbacks`` with that guard in its wait set and dies with
``InvalidHandle: cannot use Destroyable because destruction was requested`` — a node process that
exits with status 1 on a clean Ctrl-C, now and then (seen in CI on the eight-process HIL graph).

:class:`Spinner` avoids it: the thread calls ``spin_once`` until a flag is set; :meth:`Spinner.stop`
sets the flag, wakes the executor (its guard condition, still alive), joins the thread and only then
shuts the executor down, from the thread that owns it by then.
"""

from __future__ import annotations

import threading
from typing import Any

POLL_S = 0.25
"""Longest ``spin_once`` wait: bounds how late the thread sees the stop flag if a wake is lost."""


class Spinner:
    """``executor`` spun in a daemon thread named ``spin-NAME``; :meth:`stop` ends it in order.

    An exception that escapes a callback ends the thread; it is kept in :attr:`error` (the caller
    decides whether it is a failure) unless it came after :meth:`stop` was called.
    """

    def __init__(self, executor: Any, name: str) -> None:
        self.executor = executor
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.done = threading.Event()
        """Set when the thread has left its loop (stopped, the context shut down, or a callback raised)."""
        self._thread = threading.Thread(target=self._run, name=f"spin-{name}", daemon=True)

    def start(self) -> Spinner:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        from rclpy.executors import ExternalShutdownException

        context = self.executor.context
        try:
            while not self._stop.is_set() and context.ok():
                self.executor.spin_once(timeout_sec=POLL_S)
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the owner through .error
            if not self._stop.is_set():
                self.error = exc
        finally:
            self.done.set()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)

    def request_stop(self) -> None:
        """Ask the thread to leave its loop and wake it; returns at once (:meth:`stop` waits)."""
        self._stop.set()
        try:
            self.executor.wake()
        except Exception:  # noqa: BLE001 - the guard is gone when the executor already shut down
            pass

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Stop the loop, wait for the callback in flight (at most ``timeout_s``), shut the executor
        down; False if the thread was still in a callback at the deadline (the executor is then left
        alone: destroying it under a running callback is the race this class exists to avoid)."""
        self.request_stop()
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            return False
        self.executor.shutdown(timeout_sec=0)
        return True
