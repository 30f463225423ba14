"""Pure domain rules of Spotcheck: models, decisions, roles and the rule pack. No I/O, sandbox-safe."""
