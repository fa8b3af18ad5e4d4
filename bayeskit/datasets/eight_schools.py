"""Eight schools (non-centred) model and data, for demos."""

from .posteriordb import eight_schools_noncentered as model
from .posteriordb import load as _load

DATA: dict = _load("eight_schools-eight_schools_noncentered").data

__all__ = ["model", "DATA"]
