"""``omnipianist export CKPT --out model.onnx`` and ``omnipianist bench inference``: the commands.

:data:`EXPORT` and :data:`BENCH_INFERENCE` are :class:`omnipianist.command.Command` objects (the main CLI's
table lists them); :func:`main_export` and :func:`main_bench_inference` run them standalone. Their configs
live beside the code (:class:`policy_export.export.ExportConfig`, imported when the command runs: torch;
:class:`policy_export.bench.InferenceBenchConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omnipianist.command import Command, command_main, ok_or_1
from policy_export.bench import InferenceBenchConfig, format_bench, run_inference_bench
from policy_export.verify import format_parity, verify_parity

if TYPE_CHECKING:
    from policy_export.export import ExportConfig


@dataclass(frozen=True)
class ExportResult:
    export: dict[str, Any] = field(metadata={"flatten": True})
    """:func:`policy_export.export.export_policy`'s summary (out, kind, embodiment, euler_steps, opset, ...)."""
    verify: dict[str, Any] | None = field(default=None, metadata={"omit_none": True})
    """:func:`policy_export.verify.verify_parity`'s result, with ``--verify``."""

    @property
    def ok(self) -> bool:
        return self.verify is None or bool(self.verify["ok"])


def run_export(cfg: ExportConfig) -> ExportResult:
    """Export (and with ``cfg.verify`` check ORT against torch)."""
    from policy_export.export import export_policy

    r = export_policy(cfg.checkpoint, cfg.out, cfg.euler_steps, cfg.opset)
    v = None
    if cfg.verify:
        v = verify_parity(cfg.checkpoint, cfg.out, cfg.n_random, cfg.n_rollout, cfg.piece)
    return ExportResult(export=r, verify=v)


def format_export(res: ExportResult) -> str:
    r = res.export
    human = (f"exported {r['kind']} policy ({r['embodiment']}, K={r['euler_steps']}, opset {r['opset']}) -> {r['out']} "
             f"({r['bytes'] / 1e6:.2f} MB, {r['nodes']} nodes, {r['export_s']:.1f} s; ORT vs torch on a random "
             f"input {r['check_max_abs_diff']:.1e})")
    if res.verify is not None:
        human += "\n" + format_parity(res.verify)
    return human


EXPORT: Command[ExportConfig, ExportResult] = Command(
    "export", "export a policy (generalist or expert) to ONNX with its contract embedded",
    "policy_export.export:ExportConfig", run_export, format_export, positionals=("checkpoint",), exit_code=ok_or_1)


BENCH_INFERENCE = Command("inference", "ORT vs torch latency per control step, FLOPs, fraction of the GEMM ceiling",
                          InferenceBenchConfig, run_inference_bench, format_bench, exit_code=ok_or_1)


def main_export(argv: Sequence[str] | None = None) -> int:
    return command_main(EXPORT, argv)


def main_bench_inference(argv: Sequence[str] | None = None) -> int:
    return command_main(BENCH_INFERENCE, argv, prog="omnipianist bench inference")
