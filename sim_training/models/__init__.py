"""MuJoCo models (built with mujoco.MjSpec): the piano, the hands, and the scene that joins them."""
