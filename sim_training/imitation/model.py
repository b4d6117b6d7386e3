"""OmniPianist's generalist: a Flow Matching Transformer (FMT) sized for deployment speed.

Read top to bottom: the config, the attention blocks, the observation tokeniser, the model.

Notation. ``B`` batch, ``To`` observation horizon (2), ``D`` observation size (from the layout),
``H`` prediction horizon (4), ``A`` action size, ``M`` memory tokens, ``d`` model width, ``K`` Euler steps.

Structure (why: the observation is encoded ONCE per control step, only the small decoder runs K times)::

    obs_hist (B, To, D) -> normalise -> tokens (B, M, d) -> encoder -> Memory: tokens, cross-attention K/V
                                                                      per decoder layer, and the observation
                                                                      half of every adaLN modulation
    a_t (B, H, A), t -> action tokens (B, H, d) -> decoder (self-attn, cross-attn to memory, MLP; each
                                                   block modulated by adaLN(t) + adaLN(observation))
                                                 -> velocity (B, H, A)

The time half of the modulation depends on t alone: :meth:`FlowMatchingTransformer.sample` computes it
for all K steps in one batch, and in an exported graph (K fixed) it folds into constants. What runs
per Euler step is then: action projection, per decoder layer LN / self-attention over H tokens /
cross-attention (queries only) / MLP, the output layer.

Tokens, from the observation LAYOUT (field offsets and shapes, nothing hard-coded): one token per
goal row (``lookahead + 1`` rows of 89: keys + sustain), one key-state token and one proprioception
token (every other field: sustain state, fingertip xyz, hand joints) per frame. Goal rows come
from the latest frame only by default (``goal_history=False``): the previous frame's goal window is
the current one shifted by one row, so its tokens would repeat what the encoder already sees.
Learned embeddings: goal-row index, token type, frame.

The decoder's blocks are DiT-style adaLN-Zero: the modulation and the output layer start at zero,
so an untrained model predicts velocity 0 and each block starts as the identity.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim_training.imitation.base import GeneralistModel
from sim_training.imitation.flow import flow_matching_loss, sample_flow_time
from sim_training.imitation.normalization import Normalizer

GOAL_FIELD = "goal"
KEY_FIELD = "key_state"


@dataclass(frozen=True)
class FMTConfig:
    """Flow Matching Transformer hyper-parameters.

    Defaults (1.2 M parameters, 15 memory tokens): K = 10 sampling at batch 1 takes ~2 ms of CPU in
    onnxruntime on one thread, ~8 ms in torch eager; a training step at batch 256 ~0.2 s on one core.
    """

    d_model: int = 128
    n_heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    mlp_ratio: int = 2
    """MLP hidden width = mlp_ratio * d_model."""
    dropout: float = 0.0
    obs_horizon: int = 2
    pred_horizon: int = 4
    k_steps: int = 10
    """Euler steps at inference."""
    goal_history: bool = False
    """Goal-row tokens from every observation frame (True) or the latest only (False)."""
    time_sampling: Literal["uniform", "beta"] = "uniform"
    """Distribution of the flow time t in training (see :func:`sample_flow_time`)."""
    obs_clip: float = 10.0
    """Normalised observations are clipped to +-obs_clip."""
    flow_samples: int = 1
    """Training only: (noise, t) draws per encoded observation. The encoder costs ~3/4 of a step, so
    n > 1 buys n times the flow-matching samples for little more than one encoder pass."""


# ----------------------------------------------------------------------------------- blocks
def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, N, d) -> (B, h, N, d / h)."""
    b, n, d = x.shape
    return x.reshape(b, n, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, N, dh) -> (B, N, h * dh)."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def attention(q: Tensor, k_t: Tensor, v: Tensor) -> Tensor:
    """Scaled dot-product attention: ``q`` (B, h, N, dh), TRANSPOSED keys ``k_t`` (B, h, dh, M), ``v`` (B, h, M, dh)."""
    w = torch.softmax((q @ k_t) * (1.0 / math.sqrt(q.shape[-1])), dim=-1)
    return w @ v


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection (fewer graph nodes per Euler step)."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d_model {d} is not divisible by n_heads {n_heads}")
        self.h = n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, d) -> (B, N, d)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4).unbind(0)
        return self.out(merge_heads(attention(q, k.transpose(-2, -1), v)))


class CrossAttention(nn.Module):
    """Queries from the action tokens, keys / values from the memory, projected ONCE per observation."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        if d % n_heads:
            raise ValueError(f"d_model {d} is not divisible by n_heads {n_heads}")
        self.h = n_heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def key_value(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Memory (B, M, d) -> transposed keys (B, h, dh, M), values (B, h, M, dh)."""
        k, v = self.kv(memory).chunk(2, dim=-1)
        return split_heads(k, self.h).transpose(-2, -1), split_heads(v, self.h)

    def forward(self, x: Tensor, k_t: Tensor, v: Tensor) -> Tensor:
        """Action tokens (B, H, d) over cached memory keys / values -> (B, H, d)."""
        return self.out(merge_heads(attention(split_heads(self.q(x), self.h), k_t, v)))


class MLP(nn.Sequential):
    def __init__(self, d: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d))


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, d: int, n_heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), SelfAttention(d, n_heads)
        self.ln2, self.mlp = nn.LayerNorm(d), MLP(d, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.mlp(self.ln2(x)))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: ``x * (1 + scale) + shift``; ``x`` (B, N, d), ``shift, scale`` (B, 1, d)."""
    return x * (1.0 + scale) + shift


class Modulation(nn.Module):
    """adaLN-Zero modulation from the flow time and the observation context, SUMMED after their projections:
    ``W_t SiLU(c_t) + W_c SiLU(c_obs)`` — so the observation half is computed once per control step, and
    with K fixed the time half is a constant of the exported graph. Both start at zero."""

    def __init__(self, d: int, n_out: int) -> None:
        super().__init__()
        self.from_time = nn.Linear(d, n_out * d)
        self.from_context = nn.Linear(d, n_out * d, bias=False)
        for lin in (self.from_time, self.from_context):
            nn.init.zeros_(lin.weight)
        nn.init.zeros_(self.from_time.bias)

    def context(self, c_obs: Tensor) -> Tensor:
        """Observation half: (B, d) -> (B, 1, n_out * d), once per observation."""
        return self.from_context(F.silu(c_obs)).unsqueeze(1)

    def time(self, c_time: Tensor) -> Tensor:
        """Time half: (T, d) -> (T, 1, n_out * d); add the context half to get the modulation."""
        return self.from_time(F.silu(c_time)).unsqueeze(1)


class DecoderBlock(nn.Module):
    """adaLN-Zero block: gated self-attention and MLP modulated by (t, observation), plus cross-attention."""

    def __init__(self, d: int, n_heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d, elementwise_affine=False)
        self.self_attn = SelfAttention(d, n_heads)
        self.ln2 = nn.LayerNorm(d)
        self.cross_attn = CrossAttention(d, n_heads)
        self.ln3 = nn.LayerNorm(d, elementwise_affine=False)
        self.mlp = MLP(d, hidden, dropout)
        self.drop = nn.Dropout(dropout)
        self.ada = Modulation(d, 6)

    def forward(self, x: Tensor, mod: Tensor, k_t: Tensor, v: Tensor) -> Tensor:
        """``x`` (B, H, d), modulation ``mod`` (B, 1, 6d) (time + context halves), cached memory keys / values."""
        s1, c1, g1, s3, c3, g3 = mod.chunk(6, dim=-1)
        x = x + g1 * self.drop(self.self_attn(modulate(self.ln1(x), s1, c1)))
        x = x + self.drop(self.cross_attn(self.ln2(x), k_t, v))
        return x + g3 * self.drop(self.mlp(modulate(self.ln3(x), s3, c3)))


def timestep_embedding(t: Tensor, dim: int, max_period: float = 1000.0) -> Tensor:
    """Sinusoidal embedding of flow time ``t`` (B,) in [0, 1] -> (B, dim) (t scaled by 1000 as in DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (1000.0 * t.float()).unsqueeze(-1) * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


# ----------------------------------------------------------------------------------- tokeniser
class ObservationTokenizer(nn.Module):
    """Normalised observation history (B, To, D) -> tokens (B, M, d), split by the layout's fields.

    ``M = R * (To if goal_history else 1) + 2 * To`` with ``R`` goal rows. Fields other than ``goal``
    and ``key_state`` (sustain, fingertips, joints, and any field a future layout adds) make up the
    proprioception token. Raises KeyError if the layout has no ``goal`` or ``key_state`` field.
    """

    proprio_index: Tensor

    def __init__(self, layout: dict[str, Any], d: int, obs_horizon: int, goal_history: bool) -> None:
        super().__init__()
        fields = {f["name"]: f for f in layout["fields"]}
        for need in (GOAL_FIELD, KEY_FIELD):
            if need not in fields:
                raise KeyError(f"observation layout has no {need!r} field; fields: {list(fields)}")
        goal = fields[GOAL_FIELD]
        if len(goal["shape"]) != 2:
            raise ValueError(f"goal field must be (rows, width), got shape {goal['shape']}")
        self.goal_rows, self.goal_width = (int(s) for s in goal["shape"])
        self.goal_offset = int(goal["offset"])
        key = fields[KEY_FIELD]
        self.key_offset, self.key_size = int(key["offset"]), int(np.prod(key["shape"]))
        proprio = [n for n in fields if n not in (GOAL_FIELD, KEY_FIELD)]
        index = np.concatenate([np.arange(fields[n]["offset"], fields[n]["offset"] + int(np.prod(fields[n]["shape"])))
                                for n in proprio]) if proprio else np.zeros(0, dtype=np.int64)
        self.proprio_fields = tuple(proprio)
        self.register_buffer("proprio_index", torch.as_tensor(index, dtype=torch.long), persistent=False)
        self.obs_horizon, self.goal_history = obs_horizon, goal_history

        self.goal_proj = nn.Linear(self.goal_width, d)
        self.key_proj = nn.Linear(self.key_size, d)
        self.proprio_proj = nn.Linear(max(len(index), 1), d)
        self.row_emb = nn.Parameter(torch.randn(self.goal_rows, d) * 0.02)
        self.type_emb = nn.Parameter(torch.randn(3, d) * 0.02)  # goal, key state, proprioception
        self.frame_emb = nn.Parameter(torch.randn(obs_horizon, d) * 0.02)

    @property
    def n_tokens(self) -> int:
        return self.goal_rows * (self.obs_horizon if self.goal_history else 1) + 2 * self.obs_horizon

    def forward(self, obs: Tensor) -> Tensor:
        b, to, _ = obs.shape
        g0 = self.goal_offset
        goal_frames = obs if self.goal_history else obs[:, -1:]
        goal = goal_frames[..., g0: g0 + self.goal_rows * self.goal_width].reshape(
            b, goal_frames.shape[1], self.goal_rows, self.goal_width)
        frames = self.frame_emb if self.goal_history else self.frame_emb[-1:]
        goal_tok = self.goal_proj(goal) + self.row_emb + self.type_emb[0] + frames.unsqueeze(1)  # (B, Tg, R, d)
        key_tok = self.key_proj(obs[..., self.key_offset: self.key_offset + self.key_size]) + self.type_emb[1]
        if self.proprio_index.numel():
            proprio = obs.index_select(-1, self.proprio_index)
        else:
            proprio = obs.new_zeros(b, to, 1)
        prop_tok = self.proprio_proj(proprio) + self.type_emb[2]
        state_tok = torch.stack([key_tok, prop_tok], dim=2) + self.frame_emb.unsqueeze(1)  # (B, To, 2, d)
        return torch.cat([goal_tok.reshape(b, -1, goal_tok.shape[-1]),
                          state_tok.reshape(b, -1, state_tok.shape[-1])], dim=1)


# ----------------------------------------------------------------------------------- model
class Memory(NamedTuple):
    """What :meth:`FlowMatchingTransformer.encode` computes once per observation.

    ``tokens`` (B, M, d); per decoder layer: transposed cross-attention ``keys`` (B, h, dh, M),
    ``values`` (B, h, M, dh) and the observation half of its modulation ``contexts`` (B, 1, 6d);
    ``final_context`` (B, 1, 2d) for the output layer.
    """

    tokens: Tensor
    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]
    contexts: tuple[Tensor, ...]
    final_context: Tensor


_M = TypeVar("_M", bound=nn.Module)


def _each(modules: nn.ModuleList, cls: type[_M]) -> Iterator[_M]:
    """The modules of ``modules`` as the ``cls`` they are (a ModuleList's items are typed ``Module``)."""
    for m in modules:
        if not isinstance(m, cls):
            raise TypeError(f"expected {cls.__name__} modules, got {type(m).__name__}")
        yield m


class FlowMatchingTransformer(GeneralistModel):
    """Observation encoder + flow-time-conditioned action decoder; see the module docstring.

    ``layout`` is ``ObservationLayout.to_dict()`` (only ``fields`` is read). Inputs and outputs of
    :meth:`sample` and :meth:`loss` are RAW (environment units); the normaliser's buffers live in
    ``self.normalizer`` and are part of the state dict. :meth:`encode` / :meth:`velocity` work in
    normalised units.
    """

    kind = "fmt"
    config: FMTConfig

    def __init__(self, config: FMTConfig, layout: dict[str, Any], action_dim: int) -> None:
        super().__init__()
        c = self.config = config
        self.layout = layout
        self.obs_dim = int(layout["fields"][-1]["offset"] + np.prod(layout["fields"][-1]["shape"]))
        self.action_dim = action_dim
        d, hidden = c.d_model, c.mlp_ratio * c.d_model
        self.normalizer = Normalizer(self.obs_dim, action_dim, c.obs_clip)
        self.tokenizer = ObservationTokenizer(layout, d, c.obs_horizon, c.goal_history)
        self.encoder = nn.ModuleList(EncoderBlock(d, c.n_heads, hidden, c.dropout) for _ in range(c.encoder_layers))
        self.encoder_ln = nn.LayerNorm(d)
        self.context_proj = nn.Linear(d, d)

        self.action_proj = nn.Linear(action_dim, d)
        self.action_pos = nn.Parameter(torch.randn(c.pred_horizon, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.decoder = nn.ModuleList(DecoderBlock(d, c.n_heads, hidden, c.dropout) for _ in range(c.decoder_layers))
        self.final_ln = nn.LayerNorm(d, elementwise_affine=False)
        self.final_ada = Modulation(d, 2)
        self.head = nn.Linear(d, action_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    # -------------------------------------------------------------------------- the three pieces
    def encode(self, obs_norm: Tensor) -> Memory:
        """Normalised observation history (B, To, D) -> :class:`Memory` (run once per control step)."""
        self._check_obs(obs_norm)
        x = self.tokenizer(obs_norm)
        for block in self.encoder:
            x = block(x)
        x = self.encoder_ln(x)
        c_obs = self.context_proj(x.mean(dim=1))
        blocks = list(_each(self.decoder, DecoderBlock))
        kv = [blk.cross_attn.key_value(x) for blk in blocks]
        return Memory(x, tuple(k for k, _ in kv), tuple(v for _, v in kv),
                      tuple(blk.ada.context(c_obs) for blk in blocks), self.final_ada.context(c_obs))

    def time_conditioning(self, t: Tensor) -> tuple[Tensor, ...]:
        """Flow times ``t`` (T,) -> the time halves of the modulations: per decoder layer (T, 1, 6d), then the
        output layer's (T, 1, 2d). Independent of the observation: :meth:`sample` computes all K at once."""
        c_time = self.time_mlp(timestep_embedding(t, self.config.d_model))
        return tuple(blk.ada.time(c_time) for blk in _each(self.decoder, DecoderBlock)) + (self.final_ada.time(c_time),)

    def decode(self, a_t: Tensor, time_cond: tuple[Tensor, ...], memory: Memory) -> Tensor:
        """Velocity (B, H, A) at ``a_t`` (B, H, A) given :meth:`time_conditioning` rows (B or 1, ...) and the memory."""
        x = self.action_proj(a_t) + self.action_pos
        for block, k_t, v, ctx, tc in zip(self.decoder, memory.keys, memory.values, memory.contexts, time_cond,
                                          strict=False):
            x = block(x, tc + ctx, k_t, v)
        shift, scale = (time_cond[-1] + memory.final_context).chunk(2, dim=-1)
        return self.head(modulate(self.final_ln(x), shift, scale))

    def velocity(self, a_t: Tensor, t: Tensor, memory: Memory) -> Tensor:
        """Velocity (B, H, A) at normalised action chunk ``a_t`` (B, H, A), flow time ``t`` (B,) or (1,)."""
        return self.decode(a_t, self.time_conditioning(t), memory)

    def sample(self, obs_hist: Tensor, noise: Tensor | None = None, k_steps: int | None = None) -> Tensor:
        """Raw observation history (B, To, D) [+ noise (B, H, A) ~ N(0, I)] -> raw action chunk (B, H, A).

        Euler from ``t = 0`` (noise) to ``t = 1`` in ``k_steps`` (default ``config.k_steps``), the same
        steps as :func:`euler_sample` on :meth:`velocity`, with the observation encoded once and the
        time conditioning of all K steps computed in one batch. ``noise`` None draws fresh noise.
        """
        memory = self.encode(self.normalizer.normalize_obs(obs_hist))
        if noise is None:
            noise = torch.randn(obs_hist.shape[0], self.config.pred_horizon, self.action_dim)
        k = k_steps or self.config.k_steps
        dt = 1.0 / k
        time_cond = self.time_conditioning(torch.arange(k, dtype=noise.dtype) * dt)
        a = noise
        for i in range(k):
            a = a + dt * self.decode(a, tuple(c[i: i + 1] for c in time_cond), memory)
        return self.normalizer.unnormalize_action(a)

    def loss(self, obs_hist: Tensor, actions: Tensor, noise: Tensor | None = None, t: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
        """Flow-matching loss (scalar) of raw ``obs_hist`` (B, To, D) and raw ``actions`` (B, H, A).

        Each observation is encoded once and paired with ``n = config.flow_samples`` draws of
        ``noise`` (n B, H, A) and ``t`` (n B,) (sample-major: rows ``i n .. i n + n - 1`` belong to
        sample ``i``), drawn from ``generator`` unless given.
        """
        n = self.config.flow_samples
        a1 = self.normalizer.normalize_action(actions)
        memory = self.encode(self.normalizer.normalize_obs(obs_hist))
        if n > 1:
            a1 = a1.repeat_interleave(n, dim=0)
            def rep(x: Tensor) -> Tensor:
                return x.repeat_interleave(n, dim=0)

            memory = Memory(rep(memory.tokens), tuple(map(rep, memory.keys)), tuple(map(rep, memory.values)),
                            tuple(map(rep, memory.contexts)), rep(memory.final_context))
        if noise is None:
            noise = torch.randn(a1.shape, generator=generator)
        if t is None:
            t = sample_flow_time(a1.shape[0], generator, self.config.time_sampling)
        return flow_matching_loss(lambda a, tt: self.velocity(a, tt, memory), a1, noise, t)

    def _check_obs(self, obs: Tensor) -> None:
        want = (self.config.obs_horizon, self.obs_dim)
        if obs.dim() != 3 or tuple(obs.shape[1:]) != want:
            raise ValueError(f"observation history must be (B, {want[0]}, {want[1]}), got {tuple(obs.shape)}")

    def n_params(self) -> dict[str, int]:
        """Trainable parameters: total, encoder side (run once per step), decoder side (run K times)."""
        def count(mods: list[nn.Module]) -> int:
            return sum(p.numel() for m in mods for p in m.parameters())
        enc = count([self.tokenizer, self.encoder, self.encoder_ln, self.context_proj])
        enc += sum(blk.cross_attn.kv.weight.numel() + blk.cross_attn.kv.bias.numel()
                   + blk.ada.from_context.weight.numel() for blk in _each(self.decoder, DecoderBlock))
        enc += self.final_ada.from_context.weight.numel()
        total = sum(p.numel() for p in self.parameters())
        return {"total": total, "encoder": enc, "decoder": total - enc}


def sampler_module(model: GeneralistModel, k_steps: int | None = None) -> nn.Module:
    """``forward(obs_hist (B, To, D), noise (B, H, A)) -> action chunk (B, H, A)``: the graph an exporter traces."""
    return _Sampler(model, k_steps)


class _Sampler(nn.Module):
    def __init__(self, model: GeneralistModel, k_steps: int | None) -> None:
        super().__init__()
        self.model, self.k_steps = model, k_steps

    def forward(self, obs_hist: Tensor, noise: Tensor) -> Tensor:
        return self.model.sample(obs_hist, noise, self.k_steps)
