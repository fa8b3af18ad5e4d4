"""The neural-process family (CNP, NP, ANP, CANP, BNP, MPNP / MPANP) as PyTorch modules: amortised
predictives trained on a dataset prior by `bk.np.train` and used through `bk.NeuralProcess`.
Importing this package imports torch."""

from .models import ANP, BNP, CANP, CNP, KINDS, MPNP, NP, NeuralProcess, PseudoContextGenerator, build

__all__ = ["ANP", "BNP", "CANP", "CNP", "KINDS", "MPNP", "NP", "NeuralProcess", "PseudoContextGenerator", "build"]
