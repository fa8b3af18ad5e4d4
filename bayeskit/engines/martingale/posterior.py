"""The posterior a martingale-posterior fit returns: draws of the functional, with the predictive
P_n it started from and an estimate of what the finite horizon left out."""

from __future__ import annotations

import numpy as np

from ...core.errors import ConfigError
from ...core.posterior import DrawsPosterior, check_n
from ...core.seeds import as_key

RELEVANT = 1e-2  # a component counts in `truncation` when its variance is at least this fraction of the largest


class MartingaleDraws(DrawsPosterior):
    """Independent draws (one chain) of the functional θ = f(P_N).

    ``predictive``: P_n, the rule's predictive given the data (what `predict` draws from);
    ``truncation``: per variable, the fraction of the posterior variance the horizon misses, estimated
    by Σ_j Var(θ_N − θ_{N/2})_j / Σ_j Var(θ_N)_j over its components j that vary (variance at least 1%
    of the largest); ``horizon``: N. A posterior read back by `bk.load` is a plain `DrawsPosterior`
    of the draws (the rule and its predictive are not stored).
    """

    def __init__(self, draws, halves=None, *, rule=None, state=None, horizon: int = 0, engine=None):
        super().__init__(draws, engine=engine, markov=False)
        self.rule, self.state, self.horizon = rule, state, horizon
        self.truncation = {}
        for name, end in self.draws.items():
            if halves is None or name not in halves:
                continue
            end = end.reshape(end.shape[1], -1)
            increment = end - halves[name].reshape(end.shape)
            total = end.var(axis=0)
            # pooled over the components that vary (a density's far tails say nothing): a ratio of sums
            # is steadier than the largest of many noisy per-component ratios, which is biased upward
            counted = total > RELEVANT * total.max(initial=0.0)
            pooled = total[counted].sum()
            self.truncation[name] = float(increment.var(axis=0)[counted].sum() / pooled) if pooled > 0 else 0.0

    @property
    def predictive(self):
        """P_n: the predictive given the observed data."""
        if self.rule is None:
            raise ConfigError("this posterior was loaded from a file: it holds the draws, not the predictive rule")
        return self.rule.distribution(self.state)

    def problems(self) -> list[str]:
        from .engine import TRUNCATION_LIMIT

        worst = {k: v for k, v in self.truncation.items() if v > TRUNCATION_LIMIT}
        return [f"the horizon N = {self.horizon} misses about {100 * v:.0f}% of the posterior variance of {k!r} "
                f"(Var(θ_N − θ_N/2) / Var(θ_N)); raise `horizon`" for k, v in worst.items()]

    def predict(self, new_data=None, *, seed=0, n: int | None = None, **options) -> dict:
        """Draws of a new observation from P_n (one per evaluation input for a regression rule):
        ``{"y": (n, ...)}``, n = the number of posterior draws by default."""
        if options:
            raise ConfigError(f"unknown option(s) {', '.join(map(repr, options))} for MartingaleDraws.predict")
        if new_data is not None:
            raise ConfigError("a martingale posterior predicts at the inputs its rule was conditioned at; set "
                              "`x_eval` on the rule and fit again for other inputs")
        n = self.shape[1] if n is None else check_n(n)
        return {"y": np.asarray(self.predictive.sample(as_key(seed), (n,)))}

    def attrs(self):
        out = super().attrs()
        out["bayeskit_horizon"] = int(self.horizon)
        return out
