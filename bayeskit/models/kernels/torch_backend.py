"""The same NNGP/NTK formulas as GPyTorch kernels, for GPyTorch's models and matrix-free solvers.

`fully_connected` and the closed-form activation maps are written against an array namespace;
here they run on torch tensors, so GPyTorch models use exactly the recursion the JAX kernels use.
Importing this module imports torch and gpytorch (the ``torch`` extra).
"""

from __future__ import annotations

import gpytorch
import torch

from ...core.errors import ConfigError
from .activations import CLOSED_FORMS
from .neural import NNGP, NTK, fully_connected


class NeuralKernel(gpytorch.kernels.Kernel):
    """GPyTorch kernel computing bayeskit's `NNGP` or `NTK` (closed-form activations only).

    ``weight_var`` and ``bias_var`` are learnable (positive) GPyTorch parameters initialised from
    the bayeskit kernel; depth, activation and parameterisation are fixed.
    """

    has_lengthscale = False

    def __init__(self, kernel: NNGP | NTK, **kwargs):
        if not isinstance(kernel, (NNGP, NTK)):
            raise ConfigError(f"`kernel` must be a bayeskit NNGP or NTK, got {type(kernel).__name__}")
        if kernel.activation not in CLOSED_FORMS:
            raise ConfigError(
                f"the GPyTorch backend supports the closed-form activations {sorted(CLOSED_FORMS)}, "
                f"got {kernel.activation!r}"
            )
        super().__init__(**kwargs)
        self.settings = dict(hidden_layers=kernel.hidden_layers, parameterization=kernel.parameterization,
                             width=kernel.width)
        self.which = 0 if isinstance(kernel, NNGP) else 1
        self.maps = CLOSED_FORMS[kernel.activation]
        positive = gpytorch.constraints.Positive()
        self.register_parameter("raw_weight_var", torch.nn.Parameter(torch.zeros(())))
        self.register_constraint("raw_weight_var", positive)
        self.weight_var = float(kernel.weight_var)
        self.bias_is_zero = float(kernel.bias_var) == 0.0  # a zero bias stays zero (as bk.Exact does)
        if not self.bias_is_zero:
            self.register_parameter("raw_bias_var", torch.nn.Parameter(torch.zeros(())))
            self.register_constraint("raw_bias_var", positive)
            self.bias_var = float(kernel.bias_var)

    @property
    def weight_var(self):
        return self.raw_weight_var_constraint.transform(self.raw_weight_var)

    @weight_var.setter
    def weight_var(self, value):
        self.initialize(raw_weight_var=self.raw_weight_var_constraint.inverse_transform(torch.as_tensor(value)))

    @property
    def bias_var(self):
        if self.bias_is_zero:
            return torch.zeros(())
        return self.raw_bias_var_constraint.transform(self.raw_bias_var)

    @bias_var.setter
    def bias_var(self, value):
        self.initialize(raw_bias_var=self.raw_bias_var_constraint.inverse_transform(torch.as_tensor(value)))

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        if last_dim_is_batch:
            raise ConfigError("NeuralKernel does not support last_dim_is_batch")
        w, b = self.weight_var.to(x1.dtype), self.bias_var.to(x1.dtype)
        out = fully_connected(x1, x2, weight_var=w, bias_var=b, maps=self.maps, xp=torch, diagonal=diag,
                              **self.settings)
        return out[self.which]
