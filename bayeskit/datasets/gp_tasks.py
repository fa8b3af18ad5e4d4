"""The 1-D GP regression tasks of the neural-process literature (CNP … BNP, MPNP), as dataset priors.

Verified in juho-lee/bnp (`regression/data/gp.py`) and yuneg11/Neural-Process-Family: x ~ U(−2, 2);
per task a lengthscale ℓ ~ U(0.1, 0.6) and an output scale s ~ U(0.1, 1) (the kernel is s²·k), noise
sd 0.02; kernels RBF, Matérn-5/2 and periodic (period p ~ U(0.1, 0.5)); the "t-noise" tasks add
γ·ε, ε ~ Student-t(2.1), γ ~ U(0, 0.15), to RBF tasks. At most 50 points per task, 3 … 47 of them
the context. Models are trained on RBF tasks and tested on all four.
"""

from __future__ import annotations

KERNELS = ("rbf", "matern", "periodic", "t-noise")
NOISE_SD = 0.02
MAX_POINTS = 50


def gp_tasks(kernel: str = "rbf"):
    """A `ProcessPrior` of tasks with the given kernel ("rbf", "matern", "periodic" or "t-noise")."""
    import numpyro.distributions as dist

    from ..core.checks import check_choice
    from ..models.kernels import RBF, Matern, Periodic
    from ..models.priors import ProcessPrior
    from ..models.processes import Fixed, ScaleMixtureProcess

    check_choice("kernel", kernel, KERNELS)
    base = {"rbf": RBF(), "t-noise": RBF(), "matern": Matern(nu=2.5), "periodic": Periodic()}[kernel]
    scale_squared = dist.TransformedDistribution(dist.Uniform(0.1, 1.0), dist.transforms.PowerTransform(2.0))
    priors = {"kernel.lengthscale": dist.Uniform(0.1, 0.6), "kernel.variance": scale_squared}
    if kernel == "periodic":
        priors["kernel.period"] = dist.Uniform(0.1, 0.5)
    process = ScaleMixtureProcess(base, noise=NOISE_SD**2, scale_prior=Fixed())
    return ProcessPrior(process, priors, x_dim=1, inputs=dist.Uniform(-2.0, 2.0).expand([1]).to_event(1),
                        t_noise=0.15 if kernel == "t-noise" else 0.0)
