"""Desired state (pure) -> planner (pure) -> executor (I/O through a connector)."""
