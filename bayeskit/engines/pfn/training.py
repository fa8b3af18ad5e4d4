"""Training a PFN on a prior: minimise E_{D ~ prior}[−log q_φ(y_query | x_query, D_context)].

Each step draws a batch of datasets from the prior (JAX, keyed by fold_in(seed, step)), splits
every dataset of the batch at one position n (context = the first n points, queries = the rest;
P(n) ∝ 1 / (T − n), so that each split size contributes alike to the loss), and takes an Adam step
on the bar distribution's negative log-likelihood, with linear warm-up, cosine decay and gradient
clipping. A checkpoint holds everything the next step depends on, so a resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings

import numpy as np
import torch

from ...core import loop, seeds
from ...core.checks import check_bool, check_checkpoint, check_choice, check_int, check_type
from ...core.errors import ConfigError, SamplingError
from . import data_parallel
from .bar import BarDistribution
from .network import PFNTransformer, check_shapes
from .settings import LC_TINY, PAPER, TINY, Training

__all__ = ["LC_TINY", "PAPER", "PRETRAINED", "TINY", "TrainedPFN", "Training", "load", "pretrained", "train"]


class TrainedPFN:
    """A trained network with its bar distribution, what it was trained on and its loss trace.

    ``network`` is a `PFNTransformer`, or any torch module with the same call (`wrap`):
    ``network(x_context (B, n, d), y_context (B, n), x_query (B, m, d)) -> logits (B, m, K)``.
    """

    def __init__(self, network, bar: BarDistribution, training: Training | None, prior_name: str,
                 history=(), step: int | None = None, x_loc=None, x_scale=None, max_context: int | None = None,
                 queries: str | None = None):
        self.network = network.eval()
        # the prior's `queries`: "after" for a network that learned to extrapolate ordered inputs (files
        # from before this field: known from the prior's name)
        self.queries = queries or ("after" if prior_name.startswith("LearningCurvePrior") else "anywhere")
        self._max_context = training.seq_len - 1 if max_context is None else max_context
        # inputs are standardised by the prior's input moments before they reach the network
        self.x_loc = np.zeros(network.x_dim) if x_loc is None else np.asarray(x_loc, dtype=float)
        self.x_scale = np.ones(network.x_dim) if x_scale is None else np.asarray(x_scale, dtype=float)
        self.bar = bar.cpu()  # predictions come back to the CPU as float64 (`logits`): the bar lives there
        self.training = training
        self.prior_name = prior_name
        self.history = np.asarray(history, dtype=float)
        self.step = len(self.history) if step is None else step

    @classmethod
    def wrap(cls, module, borders, *, x_dim: int, max_context: int, name: str = "a torch module",
             full_support: bool = True, x_loc=None, x_scale=None) -> TrainedPFN:
        """A PFN trained elsewhere, e.g. by the reference ``pfns`` package behind a small adapter.

        ``module(x_context (B, n, d), y_context (B, n), x_query (B, m, d))`` must return bucket logits
        (B, m, K) for the K = len(borders) − 1 buckets of ``borders``; inputs reach it as given, or
        standardised by ``x_loc`` and ``x_scale`` when these are set. ``max_context``: the most
        context points it was trained for. Checked once, on a small batch.
        """
        import torch

        check_int("x_dim", x_dim)
        check_int("max_context", max_context)
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
        bar = BarDistribution(torch.as_tensor(np.asarray(borders, dtype=float)), full_support)
        device = next(iter(module.parameters()), torch.zeros(())).device
        with torch.no_grad():
            out = module.eval()(torch.zeros(1, 2, x_dim, device=device), torch.zeros(1, 2, device=device),
                                torch.zeros(1, 3, x_dim, device=device))
        expected = (1, 3, bar.num_buckets)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"`module` must return logits of shape (B, m, K) = {expected} for 2 context points "
                              f"and 3 queries (K = len(borders) − 1), got {got}")
        if not hasattr(module, "x_dim"):
            module.x_dim = x_dim
        return cls(module, bar, None, name, x_loc=x_loc, x_scale=x_scale, max_context=max_context)

    def __repr__(self):
        if not isinstance(self.network, PFNTransformer):
            return f"TrainedPFN({self.prior_name}; {type(self.network).__name__}, {self.bar.num_buckets} buckets)"
        c = self.network.config
        final = self.history[-20:].mean() if self.history.size else float("nan")
        return (f"TrainedPFN({self.prior_name}; d={c['d_model']}, {c['layers']} layers, {c['num_buckets']} buckets; "
                f"{self.step} steps, final loss {final:.3f})")

    @property
    def x_dim(self) -> int:
        return self.network.x_dim

    @property
    def max_context(self) -> int:
        """The most context points seen in training (seq_len − 1)."""
        return self._max_context

    @torch.no_grad()
    def logits(self, x_context, y_context, x_query, backend: str = "auto") -> torch.Tensor:
        """Bucket logits (B, m, K), float64 on the CPU, for batches of datasets (arrays, float).

        ``backend``: "torch" runs the torch module; "xla" the same network compiled by XLA
        (`compiled`, about 2x faster on a CPU); "auto" picks XLA for a `PFNTransformer`
        on the CPU, torch otherwise.
        """
        check_choice("backend", backend, ("auto", "torch", "xla"))
        device = next(self.network.parameters()).device
        xc = (np.asarray(x_context, dtype=float) - self.x_loc) / self.x_scale
        xq = (np.asarray(x_query, dtype=float) - self.x_loc) / self.x_scale
        yc = np.asarray(y_context, dtype=float)
        native = isinstance(self.network, PFNTransformer)
        if backend == "xla" and not native:
            raise ConfigError("`backend='xla'` needs a bayeskit PFNTransformer; this network is a wrapped module")
        if backend == "xla" or (backend == "auto" and native and device.type == "cpu"):
            from . import compiled

            check_shapes(xc, yc, xq, self.x_dim)
            if getattr(self, "_xla_params", None) is None:
                self._xla_params = compiled.params_of(self.network)  # the weights, copied once
            out = compiled.logits(self._xla_params, self.network.config["heads"], xc, yc, xq)
            return torch.from_numpy(out.astype(np.float64))
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)  # noqa: E731
        return self.network(as_t(xc), as_t(yc), as_t(xq)).double().cpu()

    def save(self, path) -> None:
        """Write the network, its bar distribution and its settings to one file (`load` reads it). A
        wrapped module is stored whole (pickled): loading it needs its class importable."""
        native = isinstance(self.network, PFNTransformer)
        _atomic_save({"format": "bayeskit.pfn/1", "network": self.network.state_dict() if native else self.network,
                      "network_config": self.network.config if native else None, "borders": self.bar.borders,
                      "full_support": self.bar.full_support,
                      "training": dataclasses.asdict(self.training) if self.training else None,
                      "max_context": self.max_context,
                      "prior_name": self.prior_name, "history": self.history.tolist(), "step": self.step,
                      "x_loc": self.x_loc.tolist(), "x_scale": self.x_scale.tolist(), "queries": self.queries}, path)


def load(path, device: str = "cpu"):
    """A `TrainedPFN` or `TrainedNP` written by its ``save``."""
    saved = torch.load(path, map_location=device, weights_only=False)
    if isinstance(saved, dict) and saved.get("format") == "bayeskit.np/1":
        from .neural_process import TrainedNP

        return TrainedNP.from_saved(saved, device)
    if not isinstance(saved, dict) or saved.get("format") != "bayeskit.pfn/1":
        raise ConfigError(f"{path!s} is not a bayeskit PFN or neural-process file (write one with .save)")
    if saved["network_config"] is None:  # a wrapped module, stored whole
        network = saved["network"]
    else:
        network = PFNTransformer(**saved["network_config"])
        network.load_state_dict(saved["network"])
    training = Training(**saved["training"]) if saved["training"] else None
    return TrainedPFN(network.to(device), BarDistribution(saved["borders"], saved["full_support"]), training,
                      saved["prior_name"], saved["history"], saved["step"], saved.get("x_loc"), saved.get("x_scale"),
                      saved.get("max_context"), saved.get("queries"))


def _atomic_save(obj, path):
    tmp = f"{path}.tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write leaves the previous file


def split_position(rng: np.random.Generator, seq_len: int) -> int:
    """n in 1 … T − 1 with P(n) ∝ 1 / (T − n)."""
    n = np.arange(1, seq_len)
    weights = 1.0 / (seq_len - n)
    return int(rng.choice(n, p=weights / weights.sum()))


@contextlib.contextmanager
def torch_threads(threads):
    """Run with ``threads`` torch intra-op threads, restoring the setting afterwards: an int, "auto"
    (the cores other processes leave idle, measured again as the work goes on: `core.threads`; the
    context yields the controller, whose ``update()`` a loop calls once per step) or None (torch's own
    setting). A pool sized to the machine spins at every barrier while its threads wait for cores other
    processes hold: a small PFN's step took 3x longer beside one busy process than with one thread."""
    from ...core.threads import AdaptiveThreads

    if threads is None:
        yield None
        return
    before = torch.get_num_threads()
    try:
        yield AdaptiveThreads(torch.set_num_threads, threads)
    finally:
        torch.set_num_threads(before)


def _same_settings(saved: dict, training) -> bool:
    """Whether a checkpoint's settings are ``training``'s (a setting added since it was written counts as
    its default). ``shards`` may differ: like the number of processes, it changes only the rounding of
    the batch mean, so a run may continue with another."""
    defaults = {f.name: f.default for f in dataclasses.fields(training)}
    ignore = {"shards": None}
    return {**defaults, **saved, **ignore} == {**dataclasses.asdict(training), **ignore}


def _to_torch(a, device) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32)).to(device)  # a writable copy: JAX arrays are read-only


def _schedule(training: Training):
    def factor(step):
        if step < training.warmup:
            return (step + 1) / training.warmup
        progress = (step - training.warmup) / max(1, training.steps - training.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def train(prior, training=TINY, *, seed=0, checkpoint: str | None = None, resume: bool = False,
          checkpoint_every: int = 100, progress: bool = True):
    """Train an amortised network on datasets from ``prior`` (a `DatasetPrior`), driven by `core.loop.run`.

    ``training`` is the recipe and its settings: a `Training` (a PFN) or an `NPTraining` (a neural
    process). Every recipe gives ``points`` per dataset, ``calibration_sets`` (datasets drawn once, for
    the input moments and the output head), ``network(x_dim)``, ``head(ys, device)``, ``split(rng) ->
    (n_context, n_points)``, ``loss(network, head, x, y, n_context)`` and ``trained(...)``; the loop,
    its schedule (linear warm-up, cosine decay), clipping, checkpoints and failures are the same for all.

    ``seed`` (an int or a JAX key) decides every random number of the run (`core.seeds`): the
    batch of step t is drawn with the key fold_in(key, t), its split by numpy_rng of that key, and
    the network is initialised (and its losses sample) from int_seed(key) in a forked torch
    generator (torch's global generator is left as it was). An int seed and its key train the same
    network. ``checkpoint``: a file written every ``checkpoint_every`` steps and at the end;
    ``resume=True`` continues from it and repeats the uninterrupted run exactly.

    A non-finite loss stops the run with a `SamplingError` whose ``partial`` is the network before
    that step; Ctrl-C returns the network trained so far, with a warning.

    Several processes (``bayeskit launch -n P``, ``torchrun``, or a torch process group already
    running) train one network data-parallel (`data_parallel`): the same call on every process; each
    computes its share of the batch's ``shards`` (the recipe's setting, by default one per process),
    gradients are averaged in shard order, process 0 shows progress and writes the checkpoint, and
    every process returns the same network. A run with ``shards=S`` gives the same weights on any
    number of processes, and its checkpoint resumes on any number.
    """
    import jax

    from ...models.priors import DatasetPrior
    from .np_settings import NPTraining

    check_type("prior", prior, DatasetPrior, "a dataset prior (ProcessPrior, ModelPrior, ...)")
    check_type("training", training, (Training, NPTraining), "a bk.pfn.Training or a bk.pfn.NPTraining")
    check_checkpoint(checkpoint, resume)
    check_int("checkpoint_every", checkpoint_every)
    check_bool("progress", progress)
    key = seeds.as_key(seed)
    words = seeds.words(key)
    rank, world, device = data_parallel.join(training.torch_device())
    lay = data_parallel.layout(rank, world, getattr(training, "shards", None), training.batch_size)
    progress = progress and lay.root
    prior_name = repr(prior)

    # the output head and the input standardisation come from datasets drawn once, before training
    # (a key of their own, so training keys are untouched)
    xs, ys = prior.sample(jax.random.fold_in(key, 2**31 - 1), training.calibration_sets, training.points)
    head = training.head(np.asarray(ys), device)
    xs = np.asarray(xs, dtype=float).reshape(-1, prior.x_dim)
    x_loc, x_scale = xs.mean(axis=0), xs.std(axis=0)
    x_scale = np.where(x_scale > 0, x_scale, 1.0)  # a constant input stays as it is, shifted to 0
    loc_t, scale_t = _to_torch(x_loc, device), _to_torch(x_scale, device)

    # network initialisation, dropout and the losses' own sampling use torch's global generator:
    # fork it, seeded from the key (its state is part of a checkpoint)
    cuda = device.type == "cuda"
    forked = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    threads = None if cuda else getattr(training, "threads", None)
    if world > 1 and threads == "auto":
        threads = None  # the launcher's per-process share of the cores (OMP_NUM_THREADS), not a share measured here
    with torch.random.fork_rng(devices=forked), torch_threads(threads) as pool:
        torch.manual_seed(seeds.int_seed(key))
        network = training.network(prior.x_dim).to(device)
        optimizer = torch.optim.AdamW(network.parameters(), lr=training.learning_rate,
                                      weight_decay=training.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(training))
        history, start = [], 0
        if resume and os.path.exists(checkpoint):
            saved = torch.load(checkpoint, map_location=device, weights_only=False)
            if not _same_settings(saved["training"], training) or saved["seed"] != words:
                raise ConfigError(f"checkpoint {checkpoint!r} was written by a run with other settings or seed")
            network.load_state_dict(saved["network"])  # every process reads rank 0's file: one state for all
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["torch_rng"])
            history, start = list(saved["history"]), saved["step"]

        def trained(step=None):
            out = training.trained(network, head, prior_name, history, step, x_loc, x_scale)
            out.queries = getattr(prior, "queries", "anywhere")
            return out

        network.train()
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=getattr(training, "bf16", False))

        def one_step(step) -> bool:
            """One optimiser step; False (and nothing changed) when the loss or its gradient is not finite."""
            step_key = jax.random.fold_in(key, step)
            x, y = prior.sample(step_key, training.batch_size, training.points)
            n, used = training.split(seeds.numpy_rng(step_key))
            x, y = (_to_torch(x, device)[:, :used] - loc_t) / scale_t, _to_torch(y, device)[:, :used]
            optimizer.zero_grad(set_to_none=True)
            if lay.shards == 1 and lay.world == 1:
                with autocast:
                    loss = training.loss(network, head, x, y, n)
                loss.backward()
            else:
                loss = sharded_step(step_key, x, y, n)
            norm = torch.nn.utils.clip_grad_norm_(network.parameters(), training.clip)
            if not (torch.isfinite(loss) and torch.isfinite(norm)):  # checked before the update: nothing is lost
                return False
            optimizer.step()
            scheduler.step()
            history.append(loss.item())
            return True

        params = list(network.parameters())
        rows = training.batch_size // lay.shards

        def sharded_step(step_key, x, y, n):
            """This process's shards, one backward pass each, then every shard's gradient and loss averaged
            in shard order across the processes (`data_parallel.reduce`); returns the step's loss."""
            grads, losses = [], []
            for s in lay.mine:
                # dropout and the losses' sampling: torch's generator seeded per (step, shard), wherever it runs
                torch.manual_seed(seeds.int_seed(jax.random.fold_in(step_key, s)))
                with autocast:
                    shard_loss = training.loss(network, head, x[s * rows:(s + 1) * rows], y[s * rows:(s + 1) * rows],
                                               n)
                optimizer.zero_grad(set_to_none=True)
                shard_loss.backward()
                grads.append(data_parallel.flat_grad(params))
                losses.append(shard_loss.detach())
            return data_parallel.reduce(lay, params, grads, losses)

        def advance(state, first, last):
            """Steps first … last − 1, a host loop of torch steps (the chunk of `loop.run`)."""
            for step in range(first, last):
                if pool is not None:
                    pool.update()  # follow the machine's load (threads="auto")
                try:
                    finite = one_step(step)
                except KeyboardInterrupt:
                    if step == start:
                        raise  # nothing done: nothing to return
                    raise loop.Stop(state, step, reason="interrupted") from None
                if not finite:
                    raise loop.Stop(state, step, reason="non-finite")
            return state, last

        def on_chunk(state, done, records):
            if checkpoint and (done % checkpoint_every == 0 or done == training.steps):
                if not lay.root:  # process 0 writes; the others wait until the file is whole
                    data_parallel.barrier(lay)
                    return
                _atomic_save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                              "history": history, "step": done, "training": dataclasses.asdict(training),
                              "seed": words}, checkpoint)
                data_parallel.barrier(lay)

        result = loop.run(advance, None, total=training.steps, start=start,
                          chunk=math.gcd(10, checkpoint_every) if checkpoint else 10, progress=progress,
                          desc=getattr(training, "label", "PFN"),
                          postfix=lambda records, done: f"loss {np.mean(history[-50:]):.3f}", on_chunk=on_chunk,
                          partial=lambda state, records, done: trained(len(history)))
    stopped = result.stopped
    if stopped is not None and stopped.reason == "non-finite":
        raise SamplingError(f"the training loss or its gradient was not finite at step {stopped.done}: the run "
                            f"stopped there and kept the network before it (error.partial)",
                            partial=trained(stopped.done))
    if stopped is not None:
        warnings.warn(f"training interrupted during step {stopped.done + 1} of {training.steps}: returning the "
                      f"network after {stopped.done} steps", stacklevel=2)
    return trained(len(history))

#: Networks shipped with bayeskit: name -> (file in bayeskit/engines/pfn/weights, how it was made).
#: "lc-tiny" was trained before split positions were drawn through `core.seeds` (they came from
#: ``np.random.default_rng([seed, step])``): the recipe today trains a network of the same kind,
#: not the same weights.
PRETRAINED = {
    "lc-tiny": ("lc_tiny.pfn", "bk.pfn.train(bk.pfn.LearningCurvePrior(), bk.pfn.LC_TINY, seed=0)"),
    # the NP benchmark's networks (benchmarks/np_gp.py train <model>): RBF tasks of the NP literature
    "mpnp-gp": ("mpnp_gp.np", "bk.pfn.train(gp_tasks('rbf'), replace(bk.pfn.NP_CPU, model='mpnp', device='cpu'), "
                              "seed=0)"),
    "mpanp-gp": ("mpanp_gp.np", "bk.pfn.train(gp_tasks('rbf'), replace(bk.pfn.NP_CPU, model='mpanp', "
                                "device='cpu'), seed=0)"),
    "cnp-gp": ("cnp_gp.np", "bk.pfn.train(gp_tasks('rbf'), replace(bk.pfn.NP_CPU, model='cnp', device='cpu'), "
                            "seed=0)"),
}


def pretrained(name: str, device: str = "cpu"):
    """A network shipped with bayeskit (``PRETRAINED`` lists them and how each was trained): a
    `TrainedPFN` or a `TrainedNP`."""
    from importlib.resources import as_file, files

    check_choice("name", name, PRETRAINED)
    with as_file(files("bayeskit.engines.pfn") / "weights" / PRETRAINED[name][0]) as path:
        return load(path, device=device)
