"""The neural-process family (CNP, CANP, NP, ANP, BNP, MPNP, MPANP) and `bk.NeuralProcess`.

Structural properties every member must have, checked on untrained networks (they hold for any
weights): a query's prediction does not depend on the other queries (query isolation); permuting
the context changes nothing (context-order invariance; in law only for BNP, whose bootstrap picks
context positions); MPNP with M = 0 pseudo points is its backbone CNP exactly; the pseudo-context
generator is permutation-equivariant in its noise, so the law of the pseudo-context is
exchangeable (a two-sample test). Training shares the PFN's loop: a resumed run repeats the
uninterrupted one, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import bayeskit as bk
from bayeskit.models.neural_processes import ANP, BNP, CANP, CNP, MPNP, NP, build
from tests.test_pfn_network import Interrupted, gp_prior

KINDS = {"cnp": CNP, "canp": CANP, "np": NP, "anp": ANP, "bnp": BNP, "mpnp": lambda **k: MPNP(**k),
         "mpanp": lambda **k: MPNP(attentive=True, **k)}
SMALL = dict(hidden=32, encoder_depth=3, decoder_depth=2)


def _task(seed=0, n=7, m=5):
    g = torch.Generator().manual_seed(seed)
    xc, xt = torch.rand(2, n, 1, generator=g) * 4 - 2, torch.rand(2, m, 1, generator=g) * 4 - 2
    return xc, torch.sin(3 * xc), xt


def _network(kind):
    torch.manual_seed(0)
    return KINDS[kind](**SMALL).eval()


def _predict(net, xc, yc, xt, seed=1, samples=3):
    torch.manual_seed(seed)
    with torch.no_grad():
        return net.predict(xc, yc, xt, samples)


@pytest.mark.parametrize("kind", KINDS)
def test_query_isolation(kind):
    net = _network(kind)
    xc, yc, xt = _task()
    mu_all, sigma_all = _predict(net, xc, yc, xt)
    mu_one, sigma_one = _predict(net, xc, yc, xt[:, :1])
    # float32 arithmetic of differently shaped batches: agreement to 1e-5
    torch.testing.assert_close(mu_all[..., :1, :], mu_one, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sigma_all[..., :1, :], sigma_one, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "bnp"])
def test_context_order_invariance(kind):
    net = _network(kind)
    xc, yc, xt = _task()
    perm = torch.randperm(xc.shape[1], generator=torch.Generator().manual_seed(3))
    mu, sigma = _predict(net, xc, yc, xt)
    mu_p, sigma_p = _predict(net, xc[:, perm], yc[:, perm], xt)
    torch.testing.assert_close(mu, mu_p, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sigma, sigma_p, rtol=1e-5, atol=1e-5)


def test_bnp_is_context_order_invariant_in_law():
    net = _network("bnp")
    xc, yc, xt = _task()
    perm = torch.randperm(xc.shape[1], generator=torch.Generator().manual_seed(3))
    mu, _ = _predict(net, xc, yc, xt, samples=2000)
    mu_p, _ = _predict(net, xc[:, perm], yc[:, perm], xt, seed=2, samples=2000)
    assert stats.ks_2samp(mu[:, 0, 0, 0].numpy(), mu_p[:, 0, 0, 0].numpy()).pvalue > 1e-3


@pytest.mark.parametrize("attentive", [False, True], ids=["mpnp", "mpanp"])
def test_mpnp_without_pseudo_points_is_its_backbone(attentive):
    torch.manual_seed(0)
    mpnp = MPNP(pseudo_points=0, attentive=attentive, **SMALL).eval()
    backbone = (CANP if attentive else CNP)(**SMALL).eval()
    backbone.load_state_dict(mpnp.backbone.state_dict())
    xc, yc, xt = _task()
    mu, sigma = _predict(mpnp, xc, yc, xt, samples=4)
    mu0, sigma0 = _predict(backbone, xc, yc, xt)
    assert mu.shape[0] == 4
    torch.testing.assert_close(mu, mu0.expand_as(mu), rtol=0, atol=0)
    torch.testing.assert_close(sigma, sigma0.expand_as(sigma), rtol=0, atol=0)
    # the loss: the marginal term over K identical sets is the CNP's, plus the amortised (CNP) term
    x, y = torch.cat([xc, xt], 1), torch.sin(3 * torch.cat([xc, xt], 1))
    with torch.no_grad():
        torch.testing.assert_close(mpnp.loss(xc, yc, x, y, 4), 2 * backbone.loss(xc, yc, x, y), rtol=1e-6, atol=1e-6)


def test_pseudo_context_generator_is_equivariant_and_exchangeable():
    net = _network("mpnp")
    xc, yc, _ = _task()
    generator = net.generator
    noise = torch.randn(3, 2, 16, generator.noise_dim, generator=torch.Generator().manual_seed(4))
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x_tilde, y_tilde = generator(xc, yc, 3, 16, noise=noise)
        x_perm, y_perm = generator(xc, yc, 3, 16, noise=noise[:, :, perm])
    torch.testing.assert_close(x_perm, x_tilde[:, :, perm], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_perm, y_tilde[:, :, perm], rtol=1e-5, atol=1e-6)
    # the law: the first and the last pseudo point of 4,000 generated sets (same context), two-sample KS
    torch.manual_seed(6)
    with torch.no_grad():
        x_tilde, y_tilde = generator(xc[:1], yc[:1], 4000, 16)
    for t in (x_tilde, y_tilde):
        assert stats.ks_2samp(t[:, 0, 0, 0].numpy(), t[:, 0, -1, 0].numpy()).pvalue > 1e-3
    # and the pseudo points vary with the noise: a law, not a constant
    assert float(y_tilde[:, 0, 0, 0].std()) > 1e-3


def test_build_restores_a_network_from_its_config():
    net = _network("mpanp")
    again = build(net.config)
    again.load_state_dict(net.state_dict())
    xc, yc, xt = _task()
    torch.testing.assert_close(_predict(net, xc, yc, xt)[0], _predict(again.eval(), xc, yc, xt)[0])


# -- training and the engine -------------------------------------------------------------------------
TINY_NP = bk.pfn.NPTraining(model="mpnp", steps=20, batch_size=8, max_points=20, max_context=15, hidden=16,
                            encoder_depth=3, decoder_depth=2, pseudo_points=4, noise_dim=8, train_samples=2,
                            device="cpu")


@pytest.mark.slow  # 12 s; the shared loop's exact resume (torch generator state included) runs in the default
# tier through the PFN's resume test, and NP training through the fixture below
def test_a_resumed_neural_process_run_repeats_the_uninterrupted_one(tmp_path):
    full = bk.pfn.train(gp_prior(), TINY_NP, seed=3, progress=False)
    path = str(tmp_path / "np.ckpt")
    with pytest.warns(UserWarning, match="interrupted during step 15"):
        pfn_kept = bk.pfn.train(Interrupted(gp_prior(), calls=1 + 15), TINY_NP, seed=3, progress=False,
                                checkpoint=path, checkpoint_every=10)
    assert pfn_kept.step == 14
    resumed = bk.pfn.train(gp_prior(), TINY_NP, seed=3, progress=False, checkpoint=path, resume=True)
    # the losses sample (pseudo-context noise): the torch generator's state is part of the checkpoint
    np.testing.assert_array_equal(resumed.history, full.history)
    for a, b in zip(resumed.network.state_dict().values(), full.network.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.fixture(scope="module")
def tiny_np():
    return bk.pfn.train(gp_prior(), TINY_NP, seed=0, progress=False)


def test_fit_predict_and_file_round_trip(tiny_np, tmp_path):
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import ScaleMixtureProcess

    x = np.linspace(-1, 1, 8)[:, None]
    data = {"X": x, "y": np.sin(3 * x[:, 0])}
    post = bk.fit(ScaleMixtureProcess(RBF()), data, engine=bk.NeuralProcess(network=tiny_np, samples=20), seed=0)
    pred = post.predict({"X": np.linspace(-1.5, 1.5, 6)[:, None]}, seed=1)
    assert pred.mu.shape == (20, 6)
    # a mixture's quantile inverts its cdf; its moments are the draws' (20,000 draws: 4 SE)
    q = pred.quantile(0.3)
    np.testing.assert_allclose(pred.cdf(q), 0.3, atol=1e-8)
    draws = pred.sample(20_000, seed=2)
    se = np.sqrt(pred.variance / 20_000)
    assert np.all(np.abs(draws.mean(0) - pred.mean) < 4 * se)
    path = tmp_path / "tiny.np"
    tiny_np.save(path)
    back = bk.pfn.load(path)
    again = bk.fit(ScaleMixtureProcess(RBF()), data, engine=bk.NeuralProcess(network=back, samples=20), seed=0)
    np.testing.assert_array_equal(again.predict(seed=1).mu, post.predict(seed=1).mu)
    by_path = bk.fit(ScaleMixtureProcess(RBF()), data, engine=bk.NeuralProcess(network=str(path), samples=20))
    np.testing.assert_array_equal(by_path.predict(seed=1).mu, post.predict(seed=1).mu)


def test_engine_errors_are_named(tiny_np):
    with pytest.raises(bk.ConfigError, match="`network` must be a TrainedNP, the path of a saved one, or None"):
        bk.NeuralProcess(network=3.0)
    with pytest.raises(bk.ConfigError, match="`training` must be None or a bk.pfn.NPTraining"):
        bk.NeuralProcess(training=bk.pfn.TINY)
    with pytest.raises(bk.ConfigError, match="`model` must be one of"):
        bk.pfn.NPTraining(model="gp")
    with pytest.raises(bk.ConfigError, match="`max_points` must be an int >= 50"):
        bk.pfn.NPTraining(max_points=40)
