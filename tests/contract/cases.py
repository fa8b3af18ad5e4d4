"""Every (model kind, engine) pair that exists, as one line each: the contract suite runs them all.

A new engine joins the suite by adding one `Case` to `CASES`. Settings are small: the suite checks
the contract (shapes, seeds, files, errors), not accuracy, which each engine's own tests check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

import bayeskit as bk
from tests.conftest import normal_mean_model


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    model: Callable[[], object]  # builds the model
    data: Callable[[], dict]  # builds the data
    engine: Callable[[], object]  # builds the engine
    predict: dict | None = None  # new_data for predict (None: predict at the fit's data)
    random_fit: bool = True  # False where the fit itself draws nothing (type-II ML; a trained PFN)


def _normal_data():
    rng = np.random.default_rng(0)
    sigma = np.full(20, 1.5)
    return {"sigma": sigma, "y": 0.7 + sigma * rng.standard_normal(20)}


def _process():
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import ScaleMixtureProcess

    return ScaleMixtureProcess(RBF(), noise=0.1)


def _process_data():
    x = np.linspace(-2, 2, 15)
    return {"X": x[:, None], "y": np.sin(2 * x) + 0.1 * np.random.default_rng(1).standard_normal(15)}


def _classifier():
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import ProcessClassifier

    return ProcessClassifier(RBF(), num_classes=2, num_inducing=8)


def _classifier_data():
    x = np.linspace(-2, 2, 24)
    return {"X": x[:, None], "y": (x > 0).astype(int)}


def _deep_kernel_machine():
    return bk.DeepKernelMachine(layers=1, nu=1.0, bias_var=0.1)


def _linear_gaussian():
    from bayeskit.models.state_space import LinearGaussian

    return LinearGaussian(A=np.array([[0.9]]), C=np.array([[1.0]]), Q=np.array([[0.5]]), R=np.array([[1.0]]),
                          m0=np.zeros(1), P0=np.eye(1))


def _state_space_data():
    import jax

    _, ys = _linear_gaussian().simulate(jax.random.PRNGKey(0), 25)
    return {"y": np.asarray(ys)}


def _learning_curve_data():
    return {"X": np.arange(1.0, 11.0), "y": 0.4 + 0.3 * (1 - np.exp(-np.arange(1.0, 11.0) / 4))}


def _importance():
    from tests.contract.importance import ImportanceSampling

    return ImportanceSampling(particles=4000, draws=500)


def _martingale_rule():
    from bayeskit.models.predictive import NormalNormal

    return NormalNormal(loc=0.0, scale=2.0, noise=1.5)


def _y_data():
    return {"y": _normal_data()["y"]}


def _untrained_mpnp():
    """An MPNP with its initial weights: the contract needs a network, not a good one."""
    import torch

    from bayeskit.engines.pfn.neural_process import TrainedNP

    torch.manual_seed(0)
    settings = bk.pfn.NPTraining(hidden=16, encoder_depth=3, decoder_depth=2, pseudo_points=4, noise_dim=4)
    return bk.NeuralProcess(network=TrainedNP(settings.network(1), settings, "untrained"), samples=8)


def _learning_curve_model():
    from bayeskit.models.learning_curves import learning_curve_model

    return learning_curve_model


def first_state(x, x_next, t):
    """The additive functional Σ_t x_t (one function object, so refits reuse the compiled program)."""
    return x[..., 0]


def _kernel_classifier():
    from bayeskit.models.classifiers import Erf, KernelClassifier, WideDeep

    return KernelClassifier(WideDeep(Erf(), depth=20), ridge=0.1)


def _two_class_data():
    rng = np.random.default_rng(2)
    X = rng.dirichlet([1.0, 2.0], 24)
    return {"X": X, "y": (X[:, 0] > 0.3).astype(int)}


FAST_MCMC = {"chains": 2, "warmup": 150, "draws": 150, "progress": False}

CASES = [
    Case("nuts", lambda: normal_mean_model, _normal_data, lambda: bk.NUTS(**FAST_MCMC), {"sigma": np.ones(3)}),
    Case("hmc", lambda: normal_mean_model, _normal_data, lambda: bk.HMC(num_steps=8, **FAST_MCMC),
         {"sigma": np.ones(3)}),
    Case("vi", lambda: normal_mean_model, _normal_data, lambda: bk.VI(steps=200, draws=200, progress=False),
         {"sigma": np.ones(3)}),
    Case("importance", lambda: normal_mean_model, _normal_data, _importance, {"sigma": np.ones(3)}),
    Case("exact", _process, _process_data, lambda: bk.Exact(steps=20, progress=False), {"X": np.zeros((4, 1))},
         random_fit=False),
    Case("sparse", _classifier, _classifier_data, lambda: bk.SparseVariational(steps=20, progress=False),
         {"X": np.zeros((4, 1))}),
    Case("optimize", _deep_kernel_machine, _process_data, lambda: bk.Optimize(steps=20, progress=False),
         {"X": np.zeros((4, 1))}, random_fit=False),
    Case("kernel_classifier", _kernel_classifier, _two_class_data, lambda: bk.Exact(optimize=False, progress=False),
         {"X": np.full((4, 2), 0.5)}, random_fit=False),
    Case("particle_filter", _linear_gaussian, _state_space_data,
         lambda: bk.ParticleFilter(n_particles=64, progress=False)),
    Case("paris", _linear_gaussian, _state_space_data,
         lambda: bk.PaRIS(n_particles=64, functional=first_state, keep_particles=True,
                          progress=False)),
    Case("particle_gibbs", _linear_gaussian, _state_space_data,
         lambda: bk.ParticleGibbs(n_particles=32, sweeps=6, burn_in=2, functional=first_state,
                                  progress=False)),
    Case("pfn", _learning_curve_model, _learning_curve_data,
         lambda: bk.PFN(network=bk.pfn.pretrained("lc-tiny"), progress=False), {"X": np.array([[20.0], [50.0]])},
         random_fit=False),
    Case("neural_process", _process, _process_data, _untrained_mpnp, {"X": np.zeros((4, 1))}, random_fit=False),
    Case("martingale", _martingale_rule, _y_data, lambda: bk.MartingalePosterior(horizon=1000, draws=200,
                                                                                progress=False)),
]
