"""Inference engines. Each subpackage imports `core` (and `models`), never another engine."""
