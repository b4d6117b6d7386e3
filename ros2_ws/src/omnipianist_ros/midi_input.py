"""A real piano's MIDI input (plain Python, no ROS): note on/off -> the 88 key states of ``/piano/keys``.

A digital piano reports key presses, not key angles: a key is *active* from its note-on to its
note-off (a note-on with velocity 0 is a note-off, as running status sends it), and its depression
(Joy axes) is 1.0 while down, 0.0 when up. MIDI note 21 (A0) is key 0, 108 (C8) key 87; notes
outside the keyboard are ignored and counted. The sustain pedal (CC 64 >= 64) is tracked too.

Ports: :func:`open_input` opens a port by name with mido's rtmidi backend; any object with
``iter_pending()`` yielding mido messages works too (mido's ``EchoPort``/``IOPort``, a fake in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from omnipianist.errors import ConfigError
from sim_training.constants import NUM_KEYS

LOWEST_NOTE = 21
"""MIDI note of key 0 (A0)."""
SUSTAIN_CC = 64


class KeyTracker:
    """Key states from a stream of MIDI messages. ``channel`` -1 = every channel."""

    def __init__(self, channel: int = -1) -> None:
        self.channel = channel
        self.active = np.zeros(NUM_KEYS, dtype=bool)
        self.velocity = np.zeros(NUM_KEYS, dtype=np.int64)
        self.sustain = False
        self.out_of_range = 0
        self.messages = 0

    def feed(self, msg: Any) -> bool:
        """Apply one mido message; True if the key or pedal state changed."""
        kind = getattr(msg, "type", None)
        if kind not in ("note_on", "note_off", "control_change"):
            return False
        if self.channel >= 0 and getattr(msg, "channel", 0) != self.channel:
            return False
        self.messages += 1
        if kind == "control_change":
            if msg.control != SUSTAIN_CC:
                return False
            down = msg.value >= 64
            changed = down != self.sustain
            self.sustain = down
            return changed
        k = int(msg.note) - LOWEST_NOTE
        if not 0 <= k < NUM_KEYS:
            self.out_of_range += 1
            return False
        down = kind == "note_on" and msg.velocity > 0
        changed = bool(self.active[k] != down)
        self.active[k] = down
        self.velocity[k] = msg.velocity if down else 0
        return changed

    def feed_all(self, messages: Iterable[Any]) -> bool:
        changed = False
        for m in messages:
            changed |= self.feed(m)
        return changed

    def key_state(self) -> np.ndarray:
        """(88,) depression 0..1 (1.0 while a key is down)."""
        return self.active.astype(np.float32)


MIDI_BACKEND = "mido.backends.rtmidi"
"""The mido backend ports are opened by name with (python-rtmidi; ALSA sequencer on Linux)."""


def _backend() -> Any:
    import mido

    return mido.Backend(MIDI_BACKEND, load=True)


def input_names() -> list[str]:
    """MIDI input port names from :data:`MIDI_BACKEND`. ConfigError when they cannot be listed (no ALSA
    sequencer, e.g. a container without ``/dev/snd/seq``; rtmidi raises an OSError subclass then)."""
    try:
        return [str(n) for n in _backend().get_input_names()]
    except (OSError, RuntimeError, ImportError) as exc:
        raise ConfigError(f"piano_listener: cannot list MIDI input ports with {MIDI_BACKEND}: {exc} "
                          "(is the ALSA sequencer /dev/snd/seq available to this process?)") from exc


def resolve_port_name(wanted: str, names: list[str]) -> str:
    """The one port whose name equals or contains ``wanted`` ('' = the only port). ConfigError otherwise."""
    if not names:
        raise ConfigError(f"piano_listener: port {wanted!r}: no MIDI input ports (is the piano connected and "
                          "switched on?)")
    if wanted in names:
        return wanted
    matches = [n for n in names if wanted in n]
    if len(matches) == 1:
        return matches[0]
    what = "no" if not matches else "more than one"
    raise ConfigError(f"piano_listener: port {wanted!r}: {what} MIDI input port matches; available: {names}")


def open_input(wanted: str, callback: Callable[[Any], None] | None = None) -> Any:
    """Open the MIDI input ``wanted`` names (see :func:`resolve_port_name`) with :data:`MIDI_BACKEND`; with
    ``callback`` mido calls it from the backend's thread at each message's receipt. ConfigError (naming the
    port and listing the available ones) when it cannot."""
    name = resolve_port_name(wanted, input_names())
    try:
        return _backend().open_input(name, callback=callback)
    except (OSError, RuntimeError, ImportError) as exc:  # rtmidi raises OSError subclasses
        raise ConfigError(f"piano_listener: cannot open MIDI input {name!r} with {MIDI_BACKEND}: {exc}") from exc
