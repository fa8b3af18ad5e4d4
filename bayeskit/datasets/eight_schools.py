"""Eight schools (non-centred) model and data, for demos."""

from .posteriordb import eight_schools_noncentered as model
from .posteriordb import load as _load

DATA: dict = _load("eight_schools-eight_schools_noncentered").data
#: The schools of Rubin (1981), in the order of the data.
SCHOOLS = ("Choate", "Deerfield", "Phillips Andover", "Phillips Exeter", "Hotchkiss", "Lawrenceville", "St. Paul's",
           "Mt. Hermon")
#: Named dimensions for `bk.fit(..., coords=COORDS, dims=DIMS)`: the school-level variables along "school".
COORDS = {"school": list(SCHOOLS)}
DIMS = {"theta": ["school"], "theta_trans": ["school"], "y": ["school"], "sigma": ["school"]}

__all__ = ["model", "DATA", "SCHOOLS", "COORDS", "DIMS"]
