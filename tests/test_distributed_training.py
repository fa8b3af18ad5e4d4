"""PFN training data-parallel over processes (issue 19): `bayeskit launch -n 2` on this machine's CPU
(torch.distributed, gloo) against the same training in this one process.

The batch is cut into `shards` (by default one per process), each shard's gradient computed by one
backward pass, and the gradients averaged in shard order (`bayeskit.engines.pfn.data_parallel`). So a
two-process run equals, bit for bit, one process with ``shards=2`` (same float operations, one thread
per process on both sides), dropout included (torch's generator is seeded per step and shard), and
its checkpoints resume on another number of processes with the same bits. Against the plain
full-batch step (``shards=1``) the difference is float reassociation of the batch mean, the mean of
two half-batch means (checked in-process below: losses within 1e-6, 99 % of the weights within 1e-6;
a few weights with near-zero gradients up to the learning rate, through Adam's normalised update).
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import warnings

import numpy as np
import pytest

pytest.importorskip("torch")


from bayeskit.core.errors import ConfigError  # noqa: E402
from tests.test_distributed import _launch, _run, _script  # noqa: E402

TRAINING = dict(steps=12, batch_size=8, seq_len=12, d_model=16, layers=1, heads=2, num_buckets=10,
                border_samples=96, learning_rate=3e-3, warmup=2, dropout=0.1, device="cpu", threads=1)
STOP = 6  # an interrupted run stops in this step; its checkpoint (every 4 steps) is at step 4

SCRIPT = textwrap.dedent('''
    import sys
    import warnings
    import numpy as np
    import torch
    import bayeskit as bk
    from bayeskit.engines.pfn import ProcessPrior, Training, train
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import Fixed, ScaleMixtureProcess

    TRAINING = {training}
    STOP = {stop}


    PRIOR = ProcessPrior(ScaleMixtureProcess(RBF(lengthscale=0.2), noise=0.01, scale_prior=Fixed()))


    def interrupt_at(step):
        """Ctrl-C during `step` (the prior's first call draws the calibration sets, then one per step)."""
        cls, calls = ProcessPrior, [0]
        original = cls.sample

        def sample(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == step + 2:
                cls.sample = original
                raise KeyboardInterrupt
            return original(self, *args, **kwargs)

        cls.sample = sample


    def run(mode, checkpoint=None, shards=None):
        if mode == "stop":
            interrupt_at(STOP)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = train(PRIOR, Training(**TRAINING, shards=shards), seed=4, checkpoint=checkpoint,
                        resume=mode == "resume", checkpoint_every=4, progress=False)
        weights = torch.nn.utils.parameters_to_vector(out.network.parameters()).detach().numpy().copy()
        return weights, np.asarray(out.history)


    if __name__ == "__main__":
        import torch.distributed as dist

        out, folder, mode = sys.argv[1], sys.argv[2], sys.argv[3]
        res = {{}}
        if mode == "two":  # launched: shards = one per process; a checkpoint at step 4 for one process
            res["w_full"], res["h_full"] = run("full")
            run("stop", f"{{folder}}/two.ckpt")
        elif mode == "one":  # the single-process reference; it continues the two's checkpoint (rank 0's file)
            res["w_full"], res["h_full"] = run("full", shards=2)
            res["w_resumed"], res["h_resumed"] = run("resume", f"{{folder}}/two.ckpt", shards=2)
            run("stop", f"{{folder}}/one.ckpt", shards=2)  # a checkpoint at step 4 for two processes
        else:  # launched: two processes continue one's checkpoint
            res["w_resumed"], res["h_resumed"] = run("resume", f"{{folder}}/one.ckpt")
        rank, count = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        np.savez(f"{{out}}.{{rank}}.of{{count}}.npz", **res)
        print("done", rank, flush=True)
''')


def _load_script(tmp_path):
    path = _script(tmp_path, SCRIPT.format(training=TRAINING, stop=STOP))
    sys.path.insert(0, str(tmp_path))
    try:
        import script  # the same functions in this process
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("script", None)
    return path, script


def _two_then_one(tmp_path):
    # the single-process runs are separate interpreters too (pytest's runs JAX in float64: other batches)
    path = _script(tmp_path, SCRIPT.format(training=TRAINING, stop=STOP))
    launched = _launch(path, "two", tmp_path, "two")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert "[0] done 0" in launched.stdout and "[1] done 1" in launched.stdout
    one = _run([sys.executable, str(path), "one", tmp_path, "one"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    ref = np.load(tmp_path / "one.0.of1.npz")
    for rank in (0, 1):  # every process holds the whole result
        got = np.load(tmp_path / f"two.{rank}.of2.npz")
        np.testing.assert_array_equal(got["w_full"], ref["w_full"], err_msg=f"weights on process {rank}")
        np.testing.assert_array_equal(got["h_full"], ref["h_full"], err_msg=f"history on process {rank}")
    # one process continued the checkpoint two wrote, to the same bits
    np.testing.assert_array_equal(ref["w_resumed"], ref["w_full"])
    np.testing.assert_array_equal(ref["h_resumed"], ref["h_full"])
    return path, ref


def test_two_processes_train_the_weights_of_one_process_with_two_shards(tmp_path):
    _two_then_one(tmp_path)


@pytest.mark.slow  # a second launch
def test_two_processes_continue_a_one_process_checkpoint(tmp_path):
    path, ref = _two_then_one(tmp_path)
    launched = _launch(path, "back", tmp_path, "back")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    for rank in (0, 1):
        got = np.load(tmp_path / f"back.{rank}.of2.npz")
        np.testing.assert_array_equal(got["w_resumed"], ref["w_full"], err_msg=f"weights on process {rank}")
        np.testing.assert_array_equal(got["h_resumed"], ref["h_full"], err_msg=f"history on process {rank}")


def test_shards_in_one_process_are_the_full_batch_step_up_to_rounding(tmp_path):
    _, script = _load_script(tmp_path)
    script.TRAINING = {**TRAINING, "dropout": 0.0}  # dropout masks differ by design (seeded per shard)
    w_full, h_full = script.run("full", shards=None)
    w_two, h_two = script.run("full", shards=2)
    assert not np.array_equal(w_full, w_two)  # not the same operations ...
    # float32 rounding (~1e-7) of the batch mean: the losses agree to it, and so do 99 % of the weights;
    # a few weights with gradients near 0 differ more, since Adam's update g / sqrt(v) normalises a
    # rounding-sized gradient to a step of up to the learning rate (3e-3): measured 1.6e-4
    diff = np.abs(w_two - w_full)
    np.testing.assert_allclose(h_two, h_full, rtol=0, atol=1e-6)  # measured 1.2e-7
    assert np.quantile(diff, 0.99) < 1e-6  # measured 2.2e-8
    assert diff.max() < TRAINING["learning_rate"]


def test_batches_that_do_not_cut_into_equal_shards_are_refused():
    from bayeskit.engines.pfn import Training
    from bayeskit.engines.pfn.data_parallel import layout

    with pytest.raises(ConfigError, match=r"`batch_size` \(9\) must be a multiple of `shards` \(2\)"):
        Training(batch_size=9, shards=2)
    with pytest.raises(ConfigError, match=r"`batch_size` \(9\) must be a multiple of the number of processes \(2\)"):
        layout(0, 2, None, 9)
    lay = layout(1, 2, 3, 9)  # 3 shards over 2 processes: 1 on process 0, 2 on process 1
    assert list(lay.mine) == [1, 2] and not lay.root
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataclasses.replace(Training(), shards=4).shards == 4


SHARDS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    import bayeskit as bk
    import torch.distributed as dist
    from bayeskit.engines.pfn import NPTraining, ProcessPrior, Training, train
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import Fixed, ScaleMixtureProcess

    prior = ProcessPrior(ScaleMixtureProcess(RBF(lengthscale=0.2), noise=0.01, scale_prior=Fixed()))
    pfn = Training(steps=6, batch_size=6, seq_len=12, d_model=16, layers=1, heads=2, num_buckets=10,
                   border_samples=72, warmup=2, dropout=0.1, device="cpu", threads=1, shards=3)
    latent = NPTraining(model="np", hidden=16, encoder_depth=3, decoder_depth=2, steps=6, batch_size=4,
                        max_points=12, max_context=8, device="cpu", threads=1, shards=2)
    res = {}
    for name, training in (("pfn", pfn), ("np", latent)):
        out = train(prior, training, seed=2, progress=False)
        res[name] = torch.nn.utils.parameters_to_vector(out.network.parameters()).detach().numpy()
        res[name + "_history"] = np.asarray(out.history)
    rank = dist.get_rank() if dist.is_initialized() else 0
    np.savez(f"{sys.argv[1]}.{rank}.npz", **res)
    print("done", rank, flush=True)
""")


@pytest.mark.slow  # a launch and a process: ~60 s on 2 shared cores
def test_uneven_shards_and_latent_draws_over_two_processes(tmp_path):
    # 3 shards on 2 processes (1 and 2: padded gathers), and a latent neural process whose losses sample
    # from torch's generator (seeded per step and shard): both equal one process bit for bit
    path = _script(tmp_path, SHARDS_SCRIPT)
    one = _run([sys.executable, str(path), "one"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    launched = _launch(path, "two")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    ref = np.load(tmp_path / "one.0.npz")
    for rank in (0, 1):
        got = np.load(tmp_path / f"two.{rank}.npz")
        for k in ref.files:
            np.testing.assert_array_equal(got[k], ref[k], err_msg=f"{k} on process {rank}")
