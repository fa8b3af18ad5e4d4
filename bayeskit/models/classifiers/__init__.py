"""Infinitely wide and deep networks as classifiers (Radhakrishnan, Belkin & Uhler 2023): normalised
dual activations, NNGP/NTK kernels on the sphere at any depth, their infinite-depth limits, and kernel
interpolation as a model that `bk.Exact` fits."""

from .deep_limits import DepthLimit, depth_limit, design_activation, hilbert_alpha, koenigs_log
from .dual_activations import DualActivation, Erf, Polynomial, ReLU, Sine
from .interpolation import Classification, KernelClassifier, KernelClassifierPosterior
from .wide_deep import WideDeep, deep_recursion

__all__ = ["Classification", "DepthLimit", "DualActivation", "Erf", "KernelClassifier", "KernelClassifierPosterior",
           "Polynomial", "ReLU", "Sine", "WideDeep", "deep_recursion", "depth_limit", "design_activation",
           "hilbert_alpha", "koenigs_log"]
