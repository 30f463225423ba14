"""Deterministic orchestration: one workflow per real-world process, no I/O."""
