"""One formula, two frameworks: the NNGP/NTK recursion on torch tensors inside GPyTorch."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gpytorch = pytest.importorskip("gpytorch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bayeskit.models.kernels import NNGP, NTK  # noqa: E402
from bayeskit.models.kernels.torch_backend import NeuralKernel  # noqa: E402
from bayeskit.models.processes import Fixed, ScaleMixtureProcess  # noqa: E402

X = np.random.default_rng(0).normal(size=(6, 3))
X = np.vstack([X, X[:1]])


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize(
    "kernel",
    [NNGP(), NTK(), NNGP(activation="erf", bias_var=0.2, hidden_layers=3),
     NTK(activation="erf", weight_var=1.3, bias_var=0.1), NTK(parameterization="standard", width=512, bias_var=0.1)],
)
def test_torch_recursion_equals_jax(kernel):
    # the same formula evaluated by two frameworks in float64: equal to rounding (1e-12)
    t = NeuralKernel(kernel)
    xt = torch.as_tensor(X)
    np.testing.assert_allclose(t(xt).to_dense().detach().numpy(), kernel(X), rtol=1e-12)
    np.testing.assert_allclose(t(xt, diag=True).detach().numpy(), kernel.diag(X), rtol=1e-12)


def test_gpytorch_exact_gp_marginal_and_gradient_match_bayeskit():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3))
    y = np.sin(x[:, 0]) + 0.1 * rng.standard_normal(200)
    kernel, noise = NNGP(weight_var=1.7, bias_var=0.2, hidden_layers=2), 0.05

    class GP(gpytorch.models.ExactGP):
        def __init__(self, x, y, likelihood):
            super().__init__(x, y, likelihood)
            self.covar = NeuralKernel(kernel)

        def forward(self, z):
            return gpytorch.distributions.MultivariateNormal(torch.zeros(z.shape[0]), self.covar(z))

    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    likelihood = gpytorch.likelihoods.GaussianLikelihood()
    likelihood.noise = noise
    model = GP(xt, yt, likelihood)
    model.train()
    with gpytorch.settings.max_cholesky_size(10**6), gpytorch.settings.fast_computations(False, False, False):
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)(model(xt), yt) * len(y)
        mll.backward()
    raw = model.covar.raw_weight_var
    torch_grad = raw.grad.item() / float(torch.sigmoid(raw.detach()))  # d softplus(r)/dr = sigmoid(r)

    def bk_lml(w):
        p = ScaleMixtureProcess(NNGP(weight_var=w, bias_var=0.2, hidden_layers=2), noise=noise, scale_prior=Fixed(1.0))
        return p.log_marginal_likelihood(jnp.asarray(x), jnp.asarray(y))

    assert float(mll) == pytest.approx(float(bk_lml(1.7)), rel=1e-9)
    # d/d(weight_var): torch's gradient is w.r.t. the softplus raw parameter (chain rule above)
    assert torch_grad == pytest.approx(float(jax.grad(bk_lml)(1.7)), rel=1e-7)
