"""The background spinner stops without the rclpy shutdown race (a node process exiting 1 on Ctrl-C).

``Executor.shutdown()`` from another thread while ``spin()`` runs can destroy the guard condition the
spinning thread is waiting on (``InvalidHandle``). :class:`omnipianist_ros.spinning.Spinner` stops the
thread first; this starts and stops one many times with a busy timer and asks for no error, ever.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.dds


def test_spinner_stops_cleanly_many_times() -> None:
    from omnipianist.dds import use_loopback

    use_loopback()
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from omnipianist_ros.spinning import Spinner

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    try:
        for i in range(40):
            node = rclpy.create_node(f"spinner_probe_{i}", context=context)
            ticks = [0]
            node.create_timer(0.001, lambda t=ticks: t.__setitem__(0, t[0] + 1))
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            sp = Spinner(executor, node.get_name()).start()
            end = time.monotonic() + 2.0
            while ticks[0] < 3 and time.monotonic() < end:
                time.sleep(0.001)
            t0 = time.monotonic()
            assert sp.stop(timeout_s=1.0), "the spinning thread did not stop"
            assert time.monotonic() - t0 < 0.5, "stop() waited for the poll timeout: the wake was lost"
            assert sp.error is None, repr(sp.error)
            assert ticks[0] >= 3 and not sp.alive
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_spinner_reports_a_callback_error() -> None:
    from omnipianist.dds import use_loopback

    use_loopback()
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from omnipianist_ros.spinning import Spinner

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("spinner_raises", context=context)

        def boom() -> None:
            raise RuntimeError("callback failed")

        node.create_timer(0.01, boom)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        sp = Spinner(executor, "spinner_raises").start()
        assert sp.done.wait(5.0), "a raising callback did not end the spinning thread"
        assert isinstance(sp.error, RuntimeError) and "callback failed" in str(sp.error)
        assert sp.stop()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
