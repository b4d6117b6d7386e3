"""The piano-playing environment (Gymnasium API), its observation builder, rewards and batching.

Registered ids: ``omnipianist/PianoShadow-v0`` and ``omnipianist/PianoLeap-v0``
(``gymnasium.make(id, piece="twinkle", config=EnvConfig(...))``).
"""

import gymnasium as gym

ENV_IDS: dict[str, str] = {"shadow": "omnipianist/PianoShadow-v0", "leap": "omnipianist/PianoLeap-v0"}

for _name, _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="sim_training.env.piano_env:PianoEnv",
                     kwargs={"embodiment": _name}, disable_env_checker=True)
