"""Training a PFN on a prior: minimise E_{D ~ prior}[−log q_φ(y_query | x_query, D_context)].

Each step draws a batch of datasets from the prior (JAX, keyed by fold_in(seed, step)), splits
every dataset of the batch at one position n (context = the first n points, queries = the rest;
P(n) ∝ 1 / (T − n), so that each split size contributes alike to the loss), and takes an Adam step
on the bar distribution's negative log-likelihood, with linear warm-up, cosine decay and gradient
clipping. A checkpoint holds everything the next step depends on, so a resumed run repeats the
uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import torch

from ...core.checks import check_int
from ...core.errors import ConfigError, SamplingError
from .bar import BarDistribution, borders_from_samples
from .network import PFNTransformer, check_shapes


@dataclasses.dataclass(frozen=True)
class Training:
    """Settings of a training run: the network's size and the optimisation.

    ``seq_len``: points per simulated dataset (context + queries): the most context points the
    network is trained for. ``num_buckets``: of the bar distribution, with borders at equal-mass
    quantiles of ``border_samples`` prior targets. ``device``: "auto" (CUDA when present), "cpu",
    "cuda". ``bf16``: autocast the forward pass to bfloat16 (on CUDA).
    """

    steps: int = 3500
    batch_size: int = 32
    seq_len: int = 40
    d_model: int = 64
    layers: int = 4
    heads: int = 4
    d_ff: int | None = None
    dropout: float = 0.0
    num_buckets: int = 100
    border_samples: int = 100_000
    learning_rate: float = 3e-3
    warmup: int = 100
    clip: float = 1.0
    weight_decay: float = 0.0
    device: str = "auto"
    bf16: bool = False

    def __post_init__(self):
        for name in ("steps", "batch_size", "d_model", "layers", "heads", "num_buckets", "border_samples"):
            check_int(name, getattr(self, name))
        check_int("seq_len", self.seq_len, 2, why="one context point and one query")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or not 0 <= self.warmup < self.steps:
            raise ConfigError(f"`warmup` must be an int in [0, steps), got {self.warmup!r}")
        for name in ("learning_rate", "clip"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"`{name}` must be a positive number, got {value!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"`device` must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    def network(self, x_dim: int) -> PFNTransformer:
        return PFNTransformer(x_dim, self.num_buckets, d_model=self.d_model, layers=self.layers, heads=self.heads,
                              d_ff=self.d_ff, dropout=self.dropout)

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("`device='cuda'` but torch sees no CUDA device")
        return torch.device(self.device)


#: A configuration that trains on a CPU in minutes (3,500 steps of about 40 ms on 2 cores): on the
#: 1-D GP prior (lengthscale 0.2, noise 0.01) its NLL gap to the exact GP is 0.08-0.13 nats.
TINY = Training()
#: The size of the paper's GP experiments, for a GPU: d = 256, 6 layers, 1,000 buckets, batch 256, T = 60, bf16.
PAPER = Training(steps=20_000, batch_size=256, seq_len=60, d_model=256, layers=6, heads=4, num_buckets=1000,
                 border_samples=1_000_000, learning_rate=3e-4, warmup=1000, bf16=True)

#: LC-PFN at CPU size: curves of 100 epochs, 1,000 buckets (the paper's head) on a TINY-sized body.
#: `bk.pfn.pretrained("lc-tiny")` is this trained on `LearningCurvePrior()` with seed 0.
LC_TINY = Training(steps=3000, batch_size=32, seq_len=100, d_model=64, layers=4, heads=4, num_buckets=1000,
                   border_samples=200_000, learning_rate=3e-3, warmup=100)


class TrainedPFN:
    """A trained network with its bar distribution, what it was trained on and its loss trace.

    ``network`` is a `PFNTransformer`, or any torch module with the same call (`wrap`):
    ``network(x_context (B, n, d), y_context (B, n), x_query (B, m, d)) -> logits (B, m, K)``.
    """

    def __init__(self, network, bar: BarDistribution, training: Training | None, prior_name: str,
                 history=(), step: int | None = None, x_loc=None, x_scale=None, max_context: int | None = None):
        self.network = network.eval()
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
        if backend not in ("auto", "torch", "xla"):
            raise ConfigError(f"`backend` must be 'auto', 'torch' or 'xla', got {backend!r}")
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
                      "x_loc": self.x_loc.tolist(), "x_scale": self.x_scale.tolist()}, path)


def load(path, device: str = "cpu") -> TrainedPFN:
    """A `TrainedPFN` written by `TrainedPFN.save`."""
    saved = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(saved, dict) or saved.get("format") != "bayeskit.pfn/1":
        raise ConfigError(f"{path!s} is not a bayeskit PFN file (write one with TrainedPFN.save)")
    if saved["network_config"] is None:  # a wrapped module, stored whole
        network = saved["network"]
    else:
        network = PFNTransformer(**saved["network_config"])
        network.load_state_dict(saved["network"])
    training = Training(**saved["training"]) if saved["training"] else None
    return TrainedPFN(network.to(device), BarDistribution(saved["borders"], saved["full_support"]), training,
                      saved["prior_name"], saved["history"], saved["step"], saved.get("x_loc"), saved.get("x_scale"),
                      saved.get("max_context"))


def _atomic_save(obj, path):
    tmp = f"{path}.tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write leaves the previous file


def split_position(rng: np.random.Generator, seq_len: int) -> int:
    """n in 1 … T − 1 with P(n) ∝ 1 / (T − n)."""
    n = np.arange(1, seq_len)
    weights = 1.0 / (seq_len - n)
    return int(rng.choice(n, p=weights / weights.sum()))


def _to_torch(a, device) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32)).to(device)  # a writable copy: JAX arrays are read-only


def _schedule(training: Training):
    def factor(step):
        if step < training.warmup:
            return (step + 1) / training.warmup
        progress = (step - training.warmup) / max(1, training.steps - training.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def train(prior, training: Training = TINY, *, seed: int = 0, checkpoint: str | None = None, resume: bool = False,
          checkpoint_every: int = 100, progress: bool = True) -> TrainedPFN:
    """Train a PFN on datasets from ``prior`` (a `DatasetPrior`). A non-finite loss stops the run
    with a `SamplingError` whose ``partial`` is the network before that step."""
    import jax
    from tqdm.auto import tqdm

    from .priors import DatasetPrior

    if not isinstance(prior, DatasetPrior):
        raise ConfigError(f"`prior` must be a dataset prior (ProcessPrior, ModelPrior, ...), got "
                          f"{type(prior).__name__}")
    if not isinstance(training, Training):
        raise ConfigError(f"`training` must be a bk.pfn.Training, got {type(training).__name__}")
    if resume and not checkpoint:
        raise ConfigError("`resume=True` needs `checkpoint=` (the file to resume from)")
    device = training.torch_device()
    key = jax.random.key(seed)
    prior_name = repr(prior)

    # borders: equal-mass quantiles of the prior's targets; input standardisation: the prior's input
    # moments (a key of their own, so training keys are untouched)
    n_sets = math.ceil(training.border_samples / training.seq_len)
    xs, ys = prior.sample(jax.random.fold_in(key, 2**31 - 1), n_sets, training.seq_len)
    bar = BarDistribution(borders_from_samples(np.asarray(ys), training.num_buckets)).to(device)
    xs = np.asarray(xs, dtype=float).reshape(-1, prior.x_dim)
    x_loc, x_scale = xs.mean(axis=0), xs.std(axis=0)
    x_scale = np.where(x_scale > 0, x_scale, 1.0)  # a constant input stays as it is, shifted to 0
    loc_t, scale_t = _to_torch(x_loc, device), _to_torch(x_scale, device)
    torch.manual_seed(seed)
    network = training.network(prior.x_dim).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(training))
    history, start = [], 0
    if resume and os.path.exists(checkpoint):
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        if saved["training"] != dataclasses.asdict(training) or saved["seed"] != seed:
            raise ConfigError(f"checkpoint {checkpoint!r} was written by a run with other settings or seed")
        network.load_state_dict(saved["network"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        history, start = list(saved["history"]), saved["step"]

    def save_state(step):
        _atomic_save({"network": network.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "history": history,
                      "step": step, "training": dataclasses.asdict(training), "seed": seed}, checkpoint)

    network.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=training.bf16)
    with tqdm(total=training.steps, initial=start, desc="PFN", disable=not progress, dynamic_ncols=True) as shown:
        for step in range(start, training.steps):
            step_key = jax.random.fold_in(key, step)
            x, y = prior.sample(step_key, training.batch_size, training.seq_len)
            n = split_position(np.random.default_rng([seed, step]), training.seq_len)
            x, y = (_to_torch(x, device) - loc_t) / scale_t, _to_torch(y, device)
            with autocast:
                logits = network(x[:, :n], y[:, :n], x[:, n:])
            loss = bar(logits.float(), y[:, n:]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(network.parameters(), training.clip)
            if not (torch.isfinite(loss) and torch.isfinite(norm)):  # checked before the update: nothing is lost
                partial = TrainedPFN(network, bar, training, prior_name, history, step, x_loc, x_scale)
                raise SamplingError(f"the training loss or its gradient was not finite at step {step}: the run "
                                    f"stopped there and kept the network before it (error.partial)", partial=partial)
            optimizer.step()
            scheduler.step()
            history.append(loss.item())
            shown.update(1)
            if step % 10 == 0:
                shown.set_postfix_str(f"loss {np.mean(history[-50:]):.3f}", refresh=False)
            if checkpoint and ((step + 1) % checkpoint_every == 0 or step + 1 == training.steps):
                save_state(step + 1)
    return TrainedPFN(network, bar, training, prior_name, history, x_loc=x_loc, x_scale=x_scale)


#: Networks shipped with bayeskit: name -> (file in bayeskit/engines/pfn/weights, how it was made).
PRETRAINED = {
    "lc-tiny": ("lc_tiny.pfn", "bk.pfn.train(bk.pfn.LearningCurvePrior(), bk.pfn.LC_TINY, seed=0)"),
}


def pretrained(name: str, device: str = "cpu") -> TrainedPFN:
    """A network shipped with bayeskit (``PRETRAINED`` lists them and how each was trained)."""
    from importlib.resources import as_file, files

    if name not in PRETRAINED:
        raise ConfigError(f"`name` must be one of {', '.join(map(repr, PRETRAINED))}, got {name!r}")
    with as_file(files("bayeskit.engines.pfn") / "weights" / PRETRAINED[name][0]) as path:
        return load(path, device=device)
