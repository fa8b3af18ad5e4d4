"""The PFN transformer's symmetries (query isolation, context-order invariance), its named
errors, and training: the loss falls, a resumed run repeats the uninterrupted one, a saved
network reloads to the same predictions, and a non-finite loss stops with the network kept."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

torch = pytest.importorskip("torch")

from bayeskit.core.errors import ConfigError, DataError, SamplingError  # noqa: E402
from bayeskit.engines.pfn import network as pfn_network  # noqa: E402
from bayeskit.engines.pfn import training as pfn_train  # noqa: E402
from bayeskit.models.kernels import RBF  # noqa: E402
from bayeskit.models.priors import ModelPrior, ProcessPrior  # noqa: E402
from bayeskit.models.processes import Fixed  # noqa: E402
from bayeskit.models.processes import ScaleMixtureProcess as Process  # noqa: E402

SMALL = pfn_train.Training(steps=60, batch_size=16, seq_len=20, d_model=32, layers=2, heads=2, num_buckets=20,
                           border_samples=4000, learning_rate=3e-3, warmup=5, device="cpu")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return pfn_network.PFNTransformer(x_dim=2, num_buckets=10, d_model=32, layers=2, heads=4).eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 7, 2, generator=g), torch.randn(3, 7, generator=g), torch.rand(3, 5, 2, generator=g)


def test_a_query_does_not_see_the_other_queries(net, batch):
    # float32 arithmetic in a different batch shape: equal to 1e-5
    xc, yc, xq = batch
    with torch.no_grad():
        together = net(xc, yc, xq)
        for j in range(xq.shape[1]):
            alone = net(xc, yc, xq[:, j:j + 1])
            np.testing.assert_allclose(alone[:, 0].numpy(), together[:, j].numpy(), atol=1e-5)
        other = xq.clone()
        other[:, 1:] = torch.rand_like(other[:, 1:])
        np.testing.assert_allclose(net(xc, yc, other)[:, 0].numpy(), together[:, 0].numpy(), atol=1e-5)


def test_predictions_do_not_depend_on_the_context_order(net, batch):
    xc, yc, xq = batch
    perm = torch.randperm(xc.shape[1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        np.testing.assert_allclose(net(xc[:, perm], yc[:, perm], xq).numpy(), net(xc, yc, xq).numpy(), atol=1e-5)
        changed = yc.clone()
        changed[:, 0] += 1.0
        assert not np.allclose(net(xc, changed, xq).numpy(), net(xc, yc, xq).numpy(), atol=1e-3)  # context matters


def test_bad_inputs_are_named(net, batch):
    xc, yc, xq = batch
    with pytest.raises(DataError, match="2-dimensional"):
        net(xc[..., :1], yc, xq[..., :1])
    with pytest.raises(DataError, match="at least one context point"):
        net(xc[:, :0], yc[:, :0], xq)
    with pytest.raises(DataError, match="disagree"):
        net(xc, yc[:, :3], xq)
    with pytest.raises(ConfigError, match="multiple"):
        pfn_network.PFNTransformer(x_dim=1, num_buckets=10, d_model=30, heads=4)
    with pytest.raises(ConfigError, match="seq_len"):
        pfn_train.Training(seq_len=1)
    with pytest.raises(ConfigError, match="`learning_rate` must be a finite number > 0"):
        pfn_train.Training(learning_rate=-1.0)
    with pytest.raises(ConfigError, match="warmup"):
        pfn_train.Training(steps=10, warmup=10)
    with pytest.raises(ConfigError, match="prior"):
        pfn_train.train("gp", SMALL)


def gp_prior():
    return ProcessPrior(Process(RBF(lengthscale=0.2), noise=0.01, scale_prior=Fixed()))


def test_split_positions_weight_short_query_sets():
    # P(n) ∝ 1/(T − n): for T = 5, n = 1..4 with weights (1/4, 1/3, 1/2, 1) / (25/12); 40,000 draws, 4 SE
    rng = np.random.default_rng(0)
    draws = np.array([pfn_train.split_position(rng, 5) for _ in range(40_000)])
    p = np.array([1 / 4, 1 / 3, 1 / 2, 1]) / (25 / 12)
    freq = np.bincount(draws, minlength=5)[1:] / draws.size
    assert np.all(np.abs(freq - p) < 4 * np.sqrt(p * (1 - p) / draws.size))


def test_training_learns_to_use_the_context():
    # A network that ignores the context can at best reach the entropy of the prior's marginal,
    # N(0, 1 + 0.01): 1.424 nats. 200 small steps (7 s) take the loss well below it (measured:
    # 1.45 over the first 25 steps, 0.93 over the last 25), so the context is being read.
    trained = pfn_train.train(gp_prior(), dataclasses_replace(SMALL, steps=200), seed=3, progress=False)
    assert trained.history.shape == (200,) and np.all(np.isfinite(trained.history))
    assert trained.history[-25:].mean() < 0.5 * np.log(2 * np.pi * np.e * 1.01) - 0.3


def test_a_resumed_training_run_repeats_the_uninterrupted_one(tmp_path):
    full = pfn_train.train(gp_prior(), SMALL, seed=3, progress=False)
    path = str(tmp_path / "pfn.ckpt")
    # Ctrl-C during step 35, after the step-30 checkpoint
    with pytest.warns(UserWarning, match="interrupted during step 35"):
        kept = pfn_train.train(Interrupted(gp_prior(), calls=1 + 35), SMALL, seed=3, progress=False,
                               checkpoint=path, checkpoint_every=30)
    assert kept.step == 34 and kept.history.shape == (34,)  # Ctrl-C returns the network trained so far
    np.testing.assert_array_equal(kept.history, full.history[:34])
    resumed = pfn_train.train(gp_prior(), SMALL, seed=3, progress=False, checkpoint=path, resume=True)
    np.testing.assert_array_equal(resumed.history, full.history)
    for a, b in zip(resumed.network.state_dict().values(), full.network.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(KeyboardInterrupt):  # interrupted before any step: nothing to return
        pfn_train.train(Interrupted(gp_prior(), calls=2), SMALL, seed=3, progress=False)


def test_an_int_seed_and_its_key_train_the_same_network_and_leave_torch_alone():
    short = dataclasses_replace(SMALL, steps=6)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = pfn_train.train(gp_prior(), short, seed=3, progress=False)
    np.testing.assert_array_equal(torch.rand(3), before)  # torch's global generator is untouched
    b = pfn_train.train(gp_prior(), short, seed=jax.random.key(3), progress=False)
    c = pfn_train.train(gp_prior(), short, seed=jax.random.PRNGKey(3), progress=False)
    np.testing.assert_array_equal(a.history, b.history)
    np.testing.assert_array_equal(a.history, c.history)
    with pytest.raises(ConfigError, match="seed"):
        pfn_train.train(gp_prior(), short, seed=-1, progress=False)


class Interrupted(ProcessPrior):
    """A prior whose simulator is killed (Ctrl-C) on its `calls`-th batch (the first batch sets the borders)."""

    def __init__(self, prior, calls):
        super().__init__(prior.process, prior.priors, prior.x_dim, prior.inputs)
        object.__setattr__(self, "calls", [calls])  # a counter beside the frozen fields

    def sample(self, key, num_datasets, num_points):
        self.calls[0] -= 1
        if self.calls[0] == 0:
            raise KeyboardInterrupt
        return super().sample(key, num_datasets, num_points)


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_a_saved_network_reloads_to_the_same_predictions(tmp_path):
    trained = pfn_train.train(gp_prior(), dataclasses_replace(SMALL, steps=8), seed=0, progress=False)
    path = tmp_path / "pfn.pt"
    trained.save(path)
    loaded = pfn_train.load(path)
    x = np.random.default_rng(0).uniform(size=(2, 6, 1))
    y = np.random.default_rng(1).normal(size=(2, 6))
    np.testing.assert_array_equal(loaded.logits(x[:, :4], y[:, :4], x[:, 4:]), trained.logits(x[:, :4], y[:, :4],
                                                                                              x[:, 4:]))
    np.testing.assert_array_equal(loaded.bar.borders, trained.bar.borders)
    assert loaded.step == 8 and loaded.max_context == SMALL.seq_len - 1


def sometimes_nan(X, y=None):
    mean = jnp.where(X[:, 0] > 0.97, jnp.nan, 0.0)
    numpyro.sample("y", dist.Normal(mean, 1.0), obs=y)


def test_a_non_finite_loss_stops_with_the_network_before_it():
    with pytest.raises(SamplingError, match="step 0") as err:
        pfn_train.train(ModelPrior(sometimes_nan), SMALL, seed=0, progress=False)
    partial = err.value.partial
    assert partial.step == 0 and all(torch.isfinite(p).all() for p in partial.network.parameters())


@pytest.mark.parametrize(("B", "n", "m"), [(1, 20, 100), (3, 8, 9), (2, 1, 1), (1, 65, 513)])
def test_the_compiled_forward_pass_equals_the_torch_one(B, n, m):
    """The XLA path (padded to a size grid, padded keys masked) against the torch module it reads
    its weights from, to float32 rounding: 3e-5 of the largest logit (float32's epsilon, 1.2e-7,
    grown by sums over up to 65 keys, d = 32 and two layers; a wrong mask, scale or padding is off by order 1)."""
    from bayeskit.engines.pfn import BarDistribution, TrainedPFN, Training

    torch.manual_seed(0)
    training = Training(d_model=32, layers=2, heads=4, num_buckets=30)
    net = training.network(2)
    with torch.no_grad():  # random but not tiny weights, so that a wrong mask or scale shows
        for p in net.parameters():
            p.mul_(3.0)
    trained = TrainedPFN(net, BarDistribution(torch.linspace(-3, 3, 31)), training, "test", x_loc=[0.5, -1.0],
                         x_scale=[2.0, 0.5])
    rng = np.random.default_rng(n)
    xc, yc, xq = rng.normal(size=(B, n, 2)), rng.normal(size=(B, n)), rng.normal(size=(B, m, 2))
    a = trained.logits(xc, yc, xq, backend="torch")
    b = trained.logits(xc, yc, xq, backend="xla")
    assert a.shape == b.shape == (B, m, 30)
    np.testing.assert_allclose(b.numpy(), a.numpy(), atol=3e-5 * float(a.abs().max()), rtol=0)
    with pytest.raises(ConfigError, match="backend"):
        trained.logits(xc, yc, xq, backend="numpy")
