"""Structured models (processes, state-space models, ...) that specialised engines fit."""
