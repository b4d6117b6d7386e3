"""Real-hardware drivers: servo buses (Dynamixel Protocol 2.0 for the LEAP Hands) and their emulator.

Layout: ``errors.py`` (the bus error types), ``dynamixel/`` (codec, control tables, bus), ``emulator.py``
(a pty-backed virtual servo bus that the tests drive real bytes through).
"""
