"""evaluator node: live step F1 from ``/piano/keys`` against the score; onset F1 and a JSON report at the end.

Publishes ``/evaluator/f1`` (std_msgs/Float32, step F1 over the steps played so far) at every step,
``/evaluator/onset_f1`` (std_msgs/Float32, onset F1 of the notes due so far) every ``onset_every`` steps,
and ``/evaluator/report`` (std_msgs/String, JSON, latched) once the whole piece has been answered.
``/piano/goal`` is checked against the evaluator's own copy of the score (``goal_mismatches``): the
score node publishes one progress message then one goal per tick, both reliable and in order, so the
i-th goal is paired with the i-th progress message (depth-10 queues; the topics are not ordered
relative to each other).
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Joy
from std_msgs.msg import Float32, Float32MultiArray, Float64MultiArray, String

from omnipianist_ros import topics
from omnipianist_ros.evaluation import LiveEvaluator
from omnipianist_ros.messages import joy_to_keys, time_s
from omnipianist_ros.params import EvaluatorParams, declare_and_read
from omnipianist_ros.score import ScoreState
from sim_training.constants import GOAL_WIDTH
from sim_training.env.piano_env import load_roll


class EvaluatorNode(Node):
    def __init__(self, name: str = "evaluator", overrides: list[Parameter[Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(name, parameter_overrides=overrides or [], **kwargs)
        self.params = p = declare_and_read(self, EvaluatorParams)
        self.evaluator = LiveEvaluator(load_roll(p.file, p.tempo_scale))
        self.f1_pub = self.create_publisher(Float32, topics.F1, topics.F1_QOS)
        self.onset_pub = self.create_publisher(Float32, topics.ONSET_F1, topics.ONSET_F1_QOS)
        self.report_pub = self.create_publisher(String, topics.REPORT, topics.REPORT_QOS)
        self.create_subscription(Float64MultiArray, topics.PROGRESS, self._on_progress, topics.PROGRESS_QOS)
        self.create_subscription(Float32MultiArray, topics.GOAL, self._on_goal, topics.GOAL_CHECK_QOS)
        self.create_subscription(Joy, topics.KEYS, self._on_keys, topics.KEYS_QOS)
        self._progress_steps: deque[int] = deque()
        self._goal_rows: deque[np.ndarray] = deque()
        self.report: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.report is not None

    def _on_progress(self, msg: Float64MultiArray) -> None:
        step, _, start, state = msg.data[:4]
        self._progress_steps.append(int(step))
        self._pair()
        if int(state) in (ScoreState.WAITING, ScoreState.PLAYING) and self.evaluator.start_s != float(start):
            self.evaluator.set_start(float(start))  # the first start, or a /score/seek

    def _on_goal(self, msg: Float32MultiArray) -> None:
        self._goal_rows.append(np.asarray(msg.data[:GOAL_WIDTH], dtype=np.float32))
        self._pair()

    def _pair(self) -> None:
        while self._progress_steps and self._goal_rows:
            step, row = self._progress_steps.popleft(), self._goal_rows.popleft()
            if step >= 0 and row.size == GOAL_WIDTH:
                self.evaluator.check_goal(step, row)

    def _on_keys(self, msg: Joy) -> None:
        if self.done:
            return
        try:
            _, active = joy_to_keys(msg)
        except ValueError as exc:
            self.get_logger().error(f"evaluator: {exc}", throttle_duration_sec=1.0)
            return
        stamp = time_s(msg.header.stamp)
        step = self.evaluator.add_keys(stamp, active)
        if step is None:
            # real time: a late timer tick can leave a step without keys of its own; once the keys are
            # past the piece's end, the report counts such steps as silent (steps_seen says how many)
            if self.evaluator.past_end(stamp):
                self.finish()
            return
        self.f1_pub.publish(Float32(data=float(self.evaluator.live_f1())))
        if (step + 1) % self.params.onset_every == 0:
            self.onset_pub.publish(Float32(data=float(self.evaluator.live_onset_f1())))
        if self.evaluator.complete:
            self.finish()

    def finish(self) -> dict[str, Any]:
        """Score what was played (missing steps count as silent) and publish / write the report."""
        p = self.params
        report = {"piece": p.file, "tempo_scale": p.tempo_scale, **self.evaluator.report()}
        if p.report:
            path = Path(p.report)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2) + "\n")
        self.onset_pub.publish(Float32(data=float(report["onset_f1"])))
        self.report_pub.publish(String(data=json.dumps(report)))
        self.get_logger().info(f"evaluator: F1 {report['f1']:.3f}, onset F1 {report['onset_f1']:.3f} "
                               f"({report['steps_seen']}/{report['steps']} steps)")
        self.report = report
        return report
