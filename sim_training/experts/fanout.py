"""One expert per piece, fanned out on Ray: ``omnipianist train-experts SOURCE --out DIR``.

The expert is the receding-horizon planner by default (``--method planner``, ``--budget``,
``--plan-set KEY=VALUE``); ``--method search`` runs the per-piece search + residual DroQ instead.

SOURCE is a corpus manifest JSON (``--split`` / ``--max-pieces`` filter it), a folder (its
``manifest.json`` when it has one, else its ``.mid``/``.midi`` files), or a comma list of
built-in piece names and MIDI paths. Each piece is one Ray task (``num_cpus=1``) running
:func:`sim_training.experts.pipeline.train_piece_expert` into ``DIR/<piece id>/``. Pieces whose
``expert.json`` exists are skipped (resume by running the same command again). At the end
``summary.json`` and ``summary.md`` tabulate every piece that has an expert.

Ray on loopback only
--------------------
By default a private local Ray instance is started with everything bound to 127.0.0.1
(:func:`init_local_ray`); ``--ray-address`` connects to an existing cluster instead (the cluster
must have this package installed, and ``--out`` must be a filesystem every node sees). What it
takes in Ray 2.60, measured with ``ss -tulnp`` while a local instance ran:

* ``ray.init(_node_ip_address="127.0.0.1")`` alone is NOT enough: Ray rewrites a loopback node
  address to the machine's routable one (``services.resolve_ip_for_localhost``), and then the GCS,
  raylet, object manager and worker gRPC servers listen on ``*`` (all interfaces) and the runtime-env
  and dashboard agents on the external address.
* With ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment (Ray's switch for single-machine
  mode; it makes ``get_node_ip_address()`` return the loopback address) the node address stays
  127.0.0.1, and every Ray socket (GCS, raylet, object manager, workers, dashboard agent, runtime-env
  agent, metrics, log monitor, autoscaler monitor) listens on 127.0.0.1 only.
* ``include_dashboard=False`` keeps the web UI off (a minimal dashboard head process still runs, on
  127.0.0.1); ``ray.init`` starts no Ray Client server (only ``ray start --head`` does);
  ``RAY_USAGE_STATS_ENABLED=0`` turns off usage reporting.

:func:`listening_sockets` lists the listening sockets of this process and its descendants (the
local Ray processes), for checking exactly that. ``--no-ray`` trains the pieces one after the other
in this process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from omnipianist.cliutil import progress
from omnipianist.command import Command, command_main
from omnipianist.errors import ScoreError
from sim_training.experts.pipeline import train_piece_expert

SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
LOOPBACK = "127.0.0.1"
_LOCAL_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass(frozen=True)
class PieceJob:
    """One piece to train: ``id`` names its output folder, ``piece`` is what the env loads."""

    id: str
    piece: str
    """Built-in name or absolute MIDI path."""


# ----------------------------------------------------------------------------------- pieces
def resolve_pieces(source: str | Path, split: str | None = "train", max_pieces: int | None = None) -> list[PieceJob]:
    """The pieces named by ``source`` (see the module docstring); ``split`` applies to manifests only.

    Raises ScoreError for an unknown built-in name or a missing file, ValueError for duplicate ids.
    """
    from sim_training.music.builtin import BUILTIN_PIECES, MIDI_SUFFIXES
    from sim_training.music.corpus import MANIFEST_NAME, Manifest

    text = str(source)
    path = Path(text)
    jobs: list[PieceJob]
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError:  # a long comma list is no file name
        is_dir = is_file = False
    if is_dir and (path / MANIFEST_NAME).is_file():
        path, is_dir, is_file = path / MANIFEST_NAME, False, True
    if is_file and path.suffix.lower() == ".json":
        manifest = Manifest.load(path)
        jobs = [PieceJob(p.id, str(manifest.corpus_path(p.id).resolve())) for p in manifest.pieces(split, max_pieces)]
    elif is_dir:
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in MIDI_SUFFIXES)
        jobs = [PieceJob(f.stem, str(f.resolve())) for f in files]
    else:
        jobs = []
        for item in (t.strip() for t in text.split(",")):
            if not item:
                continue
            if item in BUILTIN_PIECES:
                jobs.append(PieceJob(item, item))
            elif Path(item).is_file():
                jobs.append(PieceJob(Path(item).stem, str(Path(item).resolve())))
            else:
                raise ScoreError(f"{item!r}: not a built-in piece ({', '.join(sorted(BUILTIN_PIECES))}), "
                                 "a MIDI file, a folder or a manifest JSON")
    if max_pieces is not None:
        jobs = jobs[:max_pieces]
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate piece ids {dup}: their outputs would share a folder")
    return jobs


# ----------------------------------------------------------------------------------- Ray
def init_local_ray(num_cpus: int | None = None, object_store_mb: int = 128) -> None:
    """Start a private local Ray instance with every socket on 127.0.0.1 (see the module docstring)."""
    saved = {k: os.environ.get(k) for k in _LOCAL_RAY_ENV}
    os.environ.update(_LOCAL_RAY_ENV)  # inherited by the Ray processes started below
    try:
        import ray
        from ray._private import ray_constants

        cluster_flag = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the variable was set
        try:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, dashboard_host=LOOPBACK,
                     _node_ip_address=LOOPBACK, object_store_memory=object_store_mb * 2**20,
                     configure_logging=False, log_to_driver=True)
        finally:
            ray_constants.ENABLE_RAY_CLUSTER = cluster_flag
    finally:
        for k, v in saved.items():
            if k == "RAY_USAGE_STATS_ENABLED":
                continue  # keep it off for anything started later in this process
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def listening_sockets(root_pid: int | None = None) -> list[dict[str, Any]]:
    """Listening TCP sockets and bound UDP sockets of ``root_pid`` (default: this process) and its
    descendants, from /proc: ``[{"pid", "name", "proto", "address", "port"}]`` (Linux only)."""
    import socket
    import struct

    root = os.getpid() if root_pid is None else root_pid
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            rparen = stat.rindex(")")
            names[int(d.name)] = stat[stat.index("(") + 1:rparen]
            parent[int(d.name)] = int(stat[rparen + 2:].split()[1])
    tree = {root}
    grew = True
    while grew:
        new = {p for p, pp in parent.items() if pp in tree and p not in tree}
        tree |= new
        grew = bool(new)
    inode_pid: dict[str, int] = {}
    for pid in tree:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inode_pid[link[8:-1]] = pid
        except OSError:
            continue

    def addr(hex_addr: str, v6: bool) -> str:
        raw = bytes.fromhex(hex_addr)
        if not v6:
            return socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
        words = struct.unpack(">4I", raw)
        return socket.inet_ntop(socket.AF_INET6, b"".join(struct.pack("<I", w) for w in words))

    out = []
    for proto, v6 in (("tcp", False), ("tcp6", True), ("udp", False), ("udp6", True)):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if inode not in inode_pid or (proto.startswith("tcp") and state != "0A"):  # 0A = LISTEN
                continue
            host, port = local.split(":")
            out.append({"pid": inode_pid[inode], "name": names.get(inode_pid[inode], "?"), "proto": proto,
                        "address": addr(host, v6), "port": int(port, 16)})
    return out


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or an IPv4-mapped loopback address."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _run_job(job: PieceJob, out_dir: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Train one piece (runs in a Ray worker or in this process); never raises."""
    t0 = time.perf_counter()
    try:
        r = train_piece_expert(job.piece, out_dir, name=job.id, **kwargs)
        return {"id": job.id, "ok": True, "result": r, "task_s": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - one bad piece must not stop the others
        import traceback

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "error.txt").write_text(traceback.format_exc())
        return {"id": job.id, "ok": False, "error": f"{type(exc).__name__}: {exc}", "task_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------------- fan-out
def train_experts(
    source: str | Path,
    out: str | Path,
    *,
    ray_address: str | None = None,
    use_ray: bool = True,
    minutes_per_piece: float = 10.0,
    split: str | None = "train",
    max_pieces: int | None = None,
    num_cpus: int | None = None,
    pipeline_kwargs: Mapping[str, Any] | None = None,
    show_progress: bool = True,
    log: bool = True,
) -> dict[str, Any]:
    """Train an expert for every piece of ``source`` that has none yet; write and return the summary.

    ``pipeline_kwargs`` go to :func:`~sim_training.experts.pipeline.train_piece_expert` (e.g.
    ``search_frac``, ``train_overrides``). A Ray instance already initialised in this process is
    used as is (and left running); otherwise one is started (local, loopback only, ``num_cpus``
    default all cores) or joined (``ray_address``) and shut down at the end.
    """
    t0 = time.perf_counter()
    out_path = Path(out).resolve()
    out_path.mkdir(parents=True, exist_ok=True)
    jobs = resolve_pieces(source, split, max_pieces)
    kwargs: dict[str, Any] = {"minutes": minutes_per_piece, "search_workers": 0, "n_threads": 1,
                              **dict(pipeline_kwargs or {})}
    todo = [j for j in jobs if not (out_path / j.id / "expert.json").is_file()]
    skipped = [j.id for j in jobs if j not in todo]
    finished: list[dict[str, Any]] = []

    def report(done: dict[str, Any]) -> None:
        finished.append(done)
        bar.update(1)
        if not log:
            return
        n = f"[{len(finished)}/{len(todo)}]"
        if done["ok"]:
            r = done["result"]
            print(f"{n} {done['id']}: prior {_f(r['prior_f1'])} searched {_f(r.get('searched_f1'))} "
                  f"expert {_f(r['expert_f1'])} ({r['kind']}), do nothing {_f(r['do_nothing_f1'])}; "
                  f"{r['env_steps']} env steps, {r['wall_s']['total'] / 60:.1f} min", file=sys.stderr, flush=True)
        else:
            print(f"{n} {done['id']}: FAILED {done['error']}", file=sys.stderr, flush=True)

    bar = progress(total=len(todo), desc="experts", disable=not show_progress)
    backend = "none"
    if todo and use_ray:
        import ray

        started = not ray.is_initialized()
        if started:
            if ray_address:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(address=ray_address, configure_logging=False)
            else:
                init_local_ray(num_cpus)
        backend = f"ray ({ray_address or 'local'})"
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(_run_job)
            refs = {remote.remote(j, str(out_path / j.id), kwargs): j.id for j in todo}
            pending = list(refs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    try:
                        report(ray.get(ref))
                    except Exception as exc:  # noqa: BLE001 - a worker that died
                        report({"id": refs[ref], "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        finally:
            if started:
                ray.shutdown()
    elif todo:
        backend = "in-process"
        for j in todo:
            report(_run_job(j, str(out_path / j.id), kwargs))
    bar.close()
    summary = write_summary(out_path, jobs)
    summary.update({
        "source": str(source), "backend": backend, "trained": [d["id"] for d in finished if d["ok"]],
        "skipped": skipped, "failed": [{"id": d["id"], "error": d["error"]} for d in finished if not d["ok"]],
        "wall_s": time.perf_counter() - t0, "minutes_per_piece": minutes_per_piece,
        "jobs": [asdict(j) for j in jobs],
    })
    _write_json(summary, out_path / SUMMARY_JSON)
    return summary


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float))
    os.replace(tmp, path)


COLUMNS = (("piece", "piece"), ("prior_f1", "prior F1"), ("searched_f1", "searched F1"),
           ("expert_f1", "expert F1"), ("do_nothing_f1", "do-nothing F1"), ("kind", "kind"),
           ("env_steps", "env steps"), ("wall_min", "wall min"))


def write_summary(out: str | Path, jobs: Sequence[PieceJob]) -> dict[str, Any]:
    """``summary.json`` + ``summary.md`` over the pieces of ``jobs`` that have an ``expert.json``."""
    out = Path(out)
    rows = []
    for j in jobs:
        p = out / j.id / "expert.json"
        if not p.is_file():
            continue
        e = json.loads(p.read_text())
        rows.append({"piece": j.id, "prior_f1": e.get("prior_f1"), "searched_f1": e.get("searched_f1"),
                     "expert_f1": e.get("expert_f1"), "do_nothing_f1": e.get("do_nothing_f1"), "kind": e.get("kind"),
                     "env_steps": e.get("env_steps", 0), "updates": e.get("updates", 0),
                     "wall_min": float(e.get("wall_s", {}).get("total", 0.0)) / 60.0})
    num = ("prior_f1", "searched_f1", "expert_f1", "do_nothing_f1", "env_steps", "wall_min")
    mean = {k: (sum(r[k] for r in rows if r[k] is not None) / max(1, sum(r[k] is not None for r in rows)))
            for k in num} if rows else {}
    beats = sum(1 for r in rows if r["expert_f1"] is not None and r["prior_f1"] is not None
                and r["expert_f1"] > r["prior_f1"])
    residual_kept = sum(1 for r in rows if r["kind"] == "residual")
    line = f"expert beats prior on {beats}/{len(rows)} pieces"
    summary: dict[str, Any] = {"rows": rows, "mean": mean, "n": len(rows), "beats_prior": beats,
                               "residual_kept": residual_kept, "line": line}
    md = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]

    def cell(k: str, v: Any) -> str:
        if v is None:
            return "-"
        if k.endswith("_f1"):
            return f"{v:.3f}"
        if k == "wall_min":
            return f"{v:.1f}"
        if k == "env_steps":
            return f"{v:,.0f}"
        return str(v)

    md += ["| " + " | ".join(cell(k, r[k]) for k, _ in COLUMNS) + " |" for r in rows]
    if rows:
        md.append("| **mean** | " + " | ".join(cell(k, mean.get(k)) if k in mean else "" for k, _ in COLUMNS[1:]) + " |")
    md += ["", f"{line} (F1 vs the default OT/IK prior; residual kept on {residual_kept}/{len(rows)}).", ""]
    (out / SUMMARY_MD).write_text("\n".join(md))
    _write_json(summary, out / SUMMARY_JSON)
    return summary


# ----------------------------------------------------------------------------------- CLI
def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected KEY=VALUE")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except ValueError:
            out[key.strip().replace("-", "_")] = value
    return out


@dataclass(frozen=True)
class TrainExpertsConfig:
    """``omnipianist train-experts SOURCE``: the pieces, the backend, the method and its overrides."""

    source: str
    """corpus manifest JSON, folder of .mid files, or comma list of pieces"""
    out: str = "runs/experts"
    """output folder, one sub-folder per piece"""
    ray_address: str | None = None
    """join this Ray cluster instead of starting a private local one"""
    no_ray: bool = field(default=False, metadata={"action": "store_true"})
    """train one piece after the other in this process"""
    num_cpus: int | None = None
    """CPUs of the local Ray (None: all cores)"""
    method: Literal["planner", "search"] = "planner"
    """planner: receding-horizon search over the prior's knobs (the default expert); search: per-piece CEM then
    residual DroQ"""
    budget: int | None = None
    """planner: candidate plays per window (default: PlannerConfig's, 24)"""
    plan_set: tuple[str, ...] = field(default=(), metadata={"action": "append", "metavar": "KEY=VALUE"})
    """PlannerConfig field for the planner (window, horizon, method, ...), repeatable"""
    minutes_per_piece: float = 10.0
    """search method: search + residual budget per piece"""
    search_frac: float = 0.5
    """share of the budget for the prior search"""
    search_seeds: int = 1
    """independent searches per piece"""
    population: int = 10
    """search population per generation"""
    embodiment: Literal["shadow", "leap"] = "shadow"
    split: str = "train"
    """manifest split (train/validation/test; 'all' for every)"""
    max_pieces: int | None = None
    """at most this many pieces"""
    train_set: tuple[str, ...] = field(default=(), metadata={"action": "append", "metavar": "KEY=VALUE"})
    """ExpertTrainConfig field for the residual stage (droq_<field> for DroQ), repeatable"""
    show_progress: bool = field(default=True, metadata={"cli": False})
    """Progress bar and per-piece log lines on stderr."""


@dataclass(frozen=True)
class TrainExpertsResult:
    summary: dict[str, Any] = field(metadata={"flatten": True})
    """:func:`train_experts`' summary (also in ``<out>/summary.json``)."""
    out: str = field(default="", metadata={"json": False})


def run_train_experts(cfg: TrainExpertsConfig) -> TrainExpertsResult:
    """:func:`train_experts` from the command's config."""
    plan_sets = _parse_sets(cfg.plan_set)
    if cfg.budget is not None:
        plan_sets["budget"] = cfg.budget
    kwargs = {"search_frac": cfg.search_frac, "embodiment": cfg.embodiment, "search_seeds": cfg.search_seeds,
              "population": cfg.population, "train_overrides": _parse_sets(cfg.train_set),
              "method": cfg.method, "planner_overrides": plan_sets}
    s = train_experts(cfg.source, cfg.out, ray_address=cfg.ray_address, use_ray=not cfg.no_ray,
                      minutes_per_piece=cfg.minutes_per_piece, split=None if cfg.split == "all" else cfg.split,
                      max_pieces=cfg.max_pieces, num_cpus=cfg.num_cpus, pipeline_kwargs=kwargs,
                      show_progress=cfg.show_progress, log=cfg.show_progress)
    return TrainExpertsResult(summary=s, out=cfg.out)


def format_train_experts(r: TrainExpertsResult) -> str:
    s = r.summary
    md = (Path(r.out) / SUMMARY_MD).read_text()
    return (f"{md}\ntrained {len(s['trained'])}, skipped {len(s['skipped'])} (already done), "
            f"failed {len(s['failed'])} [{s['backend']}] in {s['wall_s'] / 60:.1f} min; "
            f"{Path(r.out) / SUMMARY_JSON}")


TRAIN_EXPERTS = Command("train-experts", "one expert per piece (the planner by default), fanned out on Ray",
                        TrainExpertsConfig, run_train_experts, format_train_experts, positionals=("source",),
                        exit_code=lambda r: 1 if r.summary["failed"] else 0)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main(TRAIN_EXPERTS, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
