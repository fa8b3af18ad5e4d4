"""`Training`: the settings of a PFN training run (no torch needed to build or check them)."""

from __future__ import annotations

from ...core.checks import check_bool, check_choice, check_int, check_positive, check_real, check_threads
from ...core.module import Module


class Training(Module, pytree=False):
    """Settings of a training run: the network's size and the optimisation.

    ``seq_len``: points per simulated dataset (context + queries): the most context points the
    network is trained for. ``num_buckets``: of the bar distribution, with borders at equal-mass
    quantiles of ``border_samples`` prior targets. ``warmup``: steps of linear learning-rate
    warm-up before the cosine decay. ``device``: "auto" (CUDA when present), "cpu", "cuda".
    ``bf16``: autocast the forward pass to bfloat16 (on CUDA). ``threads``: torch threads on a CPU:
    "auto" (the default: the cores other processes leave idle, measured every 2 s while training;
    `core.threads`), an int, or None (torch's own setting, one per core).
    ``shards``: the batch is cut into this many equal shards whose gradients are averaged in order
    (`data_parallel`); None: one per process (one for a single process: the plain full-batch step).
    A run with a given ``shards`` gives the same weights on any number of processes.
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
    threads: int | str | None = "auto"
    shards: int | None = None

    def __check_init__(self):
        for name in ("steps", "batch_size", "d_model", "layers", "heads"):
            check_int(name, getattr(self, name))
        check_int("num_buckets", self.num_buckets, 2)
        check_int("border_samples", self.border_samples)
        check_int("seq_len", self.seq_len, 2, why="one context point and one query")
        check_int("d_ff", self.d_ff, optional=True)
        check_int("warmup", self.warmup, 0, why="warm-up steps, fewer than `steps`", maximum=self.steps - 1)
        check_real("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_positive("learning_rate", self.learning_rate)
        check_positive("clip", self.clip)
        check_real("weight_decay", self.weight_decay, 0.0)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))
        check_bool("bf16", self.bf16)
        check_threads(self.threads)
        check_shards(self.shards, self.batch_size)

    # -- the recipe `train` follows (the same five methods for every amortised network) ----------
    @property
    def points(self) -> int:
        """Points per simulated dataset."""
        return self.seq_len

    @property
    def calibration_sets(self) -> int:
        """Datasets drawn once before training, for the bar's borders and the input moments."""
        return -(-self.border_samples // self.seq_len)

    def network(self, x_dim: int):
        """A fresh `PFNTransformer` of this size (initialised from torch's global generator)."""
        from .network import PFNTransformer

        return PFNTransformer(x_dim, self.num_buckets, d_model=self.d_model, layers=self.layers, heads=self.heads,
                              d_ff=self.d_ff, dropout=self.dropout)

    def head(self, ys, device):
        """The bar distribution, with borders at equal-mass quantiles of the prior's targets ``ys``."""
        from .bar import BarDistribution, borders_from_samples

        return BarDistribution(borders_from_samples(ys, self.num_buckets)).to(device)

    def split(self, rng) -> tuple[int, int]:
        """(context points n, points used T): n in 1 … T − 1 with P(n) ∝ 1 / (T − n), so each split size
        contributes alike to the loss; the rest are queries."""
        from .training import split_position

        return split_position(rng, self.seq_len), self.seq_len

    def loss(self, network, head, x, y, n: int):
        """The bar distribution's negative log-likelihood of the queries."""
        return head(network(x[:, :n], y[:, :n], x[:, n:]).float(), y[:, n:]).mean()

    def trained(self, network, head, prior_name, history, step, x_loc, x_scale):
        from .training import TrainedPFN

        return TrainedPFN(network, head, self, prior_name, history, step, x_loc, x_scale)

    def torch_device(self):
        return torch_device(self.device)


def check_shards(shards, batch_size: int) -> None:
    """``shards``: None or a divisor of ``batch_size`` (equal shards, so that their mean loss is the batch's)."""
    from ...core.errors import ConfigError

    check_int("shards", shards, optional=True)
    if shards is not None and batch_size % shards:
        raise ConfigError(f"`batch_size` ({batch_size}) must be a multiple of `shards` ({shards})")


def torch_device(device: str):
    """The torch device a setting names: "auto" (CUDA when present), "cpu" or "cuda"."""
    import torch

    from ...core.errors import ConfigError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`device='cuda'` but torch sees no CUDA device")
    return torch.device(device)


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
