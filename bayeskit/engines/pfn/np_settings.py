"""`NPTraining`: the recipe and settings of a neural-process training run (no torch needed to build
or check them). `bk.pfn.train(prior, NPTraining(...))` runs it on the same loop as a PFN's."""

from __future__ import annotations

from ...core.checks import check_choice, check_int, check_positive, check_real, check_threads
from ...core.module import Module
from .settings import check_shards

#: Network kinds: the baselines, MPNP and its attentive variant MPANP.
MODELS = ("cnp", "np", "anp", "canp", "bnp", "mpnp", "mpanp")


class NPTraining(Module, pytree=False):
    """A neural process and how to train it, after the 1-D GP protocol of the NP literature.

    ``model``: one of `MODELS`. ``hidden``: width of every layer (128 in the papers, 64 here by
    default); ``encoder_depth``/``decoder_depth``: layers of the encoders' MLPs and of the decoder.
    ``pseudo_points`` (M), ``noise_dim``, ``amortised_weight``, ``pseudo_weight``: MPNP's generator
    and loss terms (`bayeskit.models.neural_processes.MPNP`; the pseudo-only term is off by default:
    in the GP benchmark's ablation it cost 0.08 nats per target point at CPU size).
    ``train_samples``: latent draws, bootstrap sets or pseudo-context sets per task in the loss (K).
    ``threads``: torch threads on a CPU: "auto" (the default: the cores other processes leave idle,
    measured every 2 s; on a busy machine more threads wait on one another, 10 times slower measured),
    an int, or None (torch's setting).
    ``shards``: the batch is cut into this many equal shards whose gradients are averaged in order
    (`data_parallel`); None: one per process (one for a single process: the plain full-batch step).
    A run with a given ``shards`` gives the same weights on any number of processes.
    Each step draws ``batch_size`` tasks of ``max_points`` points; n ~ U{min_context … max_context}
    of them are the context and U{min_target … max_points − n} more the targets (the loss scores
    context and targets).
    """

    model: str = "mpnp"
    hidden: int = 64
    encoder_depth: int = 4
    decoder_depth: int = 3
    pseudo_points: int = 16
    noise_dim: int = 32
    amortised_weight: float = 1.0
    pseudo_weight: float = 0.0
    train_samples: int = 4
    steps: int = 5000
    batch_size: int = 32
    max_points: int = 50
    min_context: int = 3
    max_context: int = 47
    min_target: int = 3
    learning_rate: float = 5e-4
    warmup: int = 0
    clip: float = 100.0
    weight_decay: float = 0.0
    device: str = "auto"
    threads: int | str | None = "auto"
    shards: int | None = None

    def __check_init__(self):
        check_choice("model", self.model, MODELS)
        for name in ("hidden", "noise_dim", "train_samples", "steps", "batch_size"):
            check_int(name, getattr(self, name))
        check_int("encoder_depth", self.encoder_depth, 3, why="an MLP of two layers before self-attention")
        check_int("decoder_depth", self.decoder_depth, 2)
        check_int("pseudo_points", self.pseudo_points, 0)
        check_int("min_context", self.min_context)
        check_int("max_context", self.max_context, self.min_context, why="at least `min_context`")
        check_int("min_target", self.min_target)
        check_int("max_points", self.max_points, self.max_context + self.min_target,
                  why="room for `max_context` context points and `min_target` targets")
        check_int("warmup", self.warmup, 0, why="warm-up steps, fewer than `steps`", maximum=self.steps - 1)
        check_real("amortised_weight", self.amortised_weight, 0.0)
        check_real("pseudo_weight", self.pseudo_weight, 0.0)
        check_positive("learning_rate", self.learning_rate)
        check_positive("clip", self.clip)
        check_real("weight_decay", self.weight_decay, 0.0)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))
        check_threads(self.threads)
        check_shards(self.shards, self.batch_size)

    @property
    def label(self) -> str:
        return self.model.upper()

    # -- the recipe `bk.pfn.train` follows ----------------------------------------------------------
    @property
    def points(self) -> int:
        return self.max_points

    @property
    def calibration_sets(self) -> int:
        return 200  # input moments only: a neural process has no output head to fit

    def network(self, x_dim: int):
        from ...models.neural_processes import models

        common = dict(x_dim=x_dim, y_dim=1, hidden=self.hidden, encoder_depth=self.encoder_depth,
                      decoder_depth=self.decoder_depth)
        if self.model in ("mpnp", "mpanp"):
            return models.MPNP(**common, pseudo_points=self.pseudo_points, noise_dim=self.noise_dim,
                               attentive=self.model == "mpanp", amortised_weight=self.amortised_weight,
                               pseudo_weight=self.pseudo_weight)
        return models.KINDS[self.model](**common)

    def head(self, ys, device):
        return None

    def split(self, rng) -> tuple[int, int]:
        n = int(rng.integers(self.min_context, self.max_context + 1))
        targets = int(rng.integers(self.min_target, self.max_points - n + 1))
        return n, n + targets

    def loss(self, network, head, x, y, n: int):
        y = y.unsqueeze(-1)
        return network.loss(x[:, :n], y[:, :n], x, y, self.train_samples)

    def trained(self, network, head, prior_name, history, step, x_loc, x_scale):
        from .neural_process import TrainedNP

        return TrainedNP(network, self, prior_name, history, step, x_loc, x_scale)

    def torch_device(self):
        from .settings import torch_device

        return torch_device(self.device)


#: CPU size: the papers' depths at half their width, 5,000 steps of 32 tasks (minutes per model on one core).
NP_CPU = NPTraining(hidden=64, steps=5000, batch_size=32)
#: The papers' protocol, for a GPU: 100,000 steps of 100 tasks (BNP's `gp.py`: Adam 5e-4, cosine decay).
NP_PAPER = NPTraining(hidden=128, steps=100_000, batch_size=100, device="cuda")
