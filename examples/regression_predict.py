"""Linear regression with a NumPyro model: fit, then predict at new inputs with intervals.

Run: python examples/regression_predict.py   (BAYESKIT_FAST=1 for a quick smoke run)
"""

import os

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

import bayeskit as bk

jax.config.update("jax_enable_x64", True)
fast = os.environ.get("BAYESKIT_FAST") == "1"


def model(x, y=None):
    intercept = numpyro.sample("intercept", dist.Normal(0.0, 10.0))
    slope = numpyro.sample("slope", dist.Normal(0.0, 10.0))
    noise = numpyro.sample("noise", dist.HalfNormal(2.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(intercept + slope * x, noise), obs=y)


rng = np.random.default_rng(0)
x = rng.uniform(0, 10, 50)
y = 2.0 + 0.5 * x + rng.normal(0, 1.0, 50)

post = bk.fit(model, data={"x": x, "y": y}, engine=bk.NUTS(warmup=300 if fast else 1000,
                                                            draws=300 if fast else 1000), seed=0)
print(post.summary())

x_new = np.linspace(-2, 12, 8)
y_new = post.predict({"x": x_new}, seed=1)["y"]
lo, mid, hi = np.quantile(y_new, [0.05, 0.5, 0.95], axis=0)
for xi, a, b, c in zip(x_new, lo, mid, hi, strict=True):
    print(f"x = {xi:5.1f}: median {b:6.2f}, 90% interval [{a:6.2f}, {c:6.2f}]")
