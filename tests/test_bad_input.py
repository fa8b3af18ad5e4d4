"""Bad input gets a named bayeskit error that says what was expected, never a raw JAX, NumPyro or
h5py traceback (issue 17's corpus: each case here failed that way before)."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeskit as bk
from bayeskit.core.errors import ConfigError, DataError
from bayeskit.models.kernels import RBF
from bayeskit.models.processes import ScaleMixtureProcess

QUICK = dict(chains=1, warmup=30, draws=30, progress=False)


def line(x, y=None):
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(a * x, 1.0), obs=y)


@pytest.fixture(scope="module")
def nuts_post():
    return bk.fit(line, {"x": np.linspace(0, 1, 10), "y": np.ones(10)}, engine=bk.NUTS(**QUICK))


@pytest.fixture(scope="module")
def exact_post():
    X = np.linspace(0, 1, 20)[:, None]
    return bk.fit(ScaleMixtureProcess(RBF(), noise=0.1), {"X": X, "y": np.sin(X[:, 0])},
                  engine=bk.Exact(optimize=False))


@pytest.mark.parametrize(("data", "match"), [
    # was JAX's "Error interpreting argument ... as an abstract array" (static_argnums advice)
    ({"x": np.ones(3), "y": np.array(["a", "b", "c"])}, r"data\['y'\] must be numeric .* got dtype <U1"),
    # was NumPyro's "Model and guide shapes disagree" (no guide was written)
    ({"x": np.ones(50), "y": np.ones(40)}, r"observed site 'y'.*data\['y'\] has shape \(40,\).*shape \(50,\)"),
], ids=["strings", "mismatched-lengths"])
def test_bad_data_for_a_numpyro_model(data, match):
    with pytest.raises(DataError, match=match):
        bk.fit(line, data, engine=bk.NUTS(**QUICK))


def test_predict_names_the_key_it_needs(exact_post):
    with pytest.raises(DataError, match=r"key 'X'.*got key\(s\) \['x'\]"):  # was KeyError: 'X'
        exact_post.predict({"x": np.ones((3, 1))})


def test_summary_names_the_variables_there_are(nuts_post):
    with pytest.raises(DataError, match=r"`var_names` names 'alpha', not in the posterior; its variables are 'a'"):
        nuts_post.summary(var_names=["alpha"])  # was ArviZ's KeyError


def test_save_into_a_missing_folder(nuts_post, tmp_path):
    with pytest.raises(ConfigError, match="folder .* does not exist"):  # was FileNotFoundError on x.nc.tmp
        nuts_post.save(tmp_path / "nowhere" / "x.nc")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_load_of_a_damaged_file_names_it(nuts_post, tmp_path, damage):
    good = tmp_path / "good.nc"
    nuts_post.save(good)
    raw = good.read_bytes()
    content = {"empty": b"", "garbage": b"not a netCDF file " * 20, "truncated": raw[: len(raw) // 2]}[damage]
    bad = tmp_path / f"{damage}.nc"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=rf"{damage}\.nc' is not a readable bayeskit posterior file"):
        bk.load(bad)  # was h5py's OSError, without the path
    assert bk.load(good).draws["a"].shape == (1, 30)


MISSING_TORCH = """
import sys
sys.modules["torch"] = None  # as if the torch extra were not installed
import numpy as np
import bayeskit as bk
from bayeskit.models.kernels import RBF
from bayeskit.models.processes import ScaleMixtureProcess

X = np.linspace(0, 1, 30)[:, None]
for what in ("pfn", "matrix-free"):
    try:
        if what == "pfn":
            bk.pfn.pretrained("lc-tiny")
        else:
            bk.fit(ScaleMixtureProcess(RBF(), noise=0.1), {"X": X, "y": np.sin(X[:, 0])},
                   engine=bk.Exact(solver="cg", optimize=False))
    except ModuleNotFoundError as exc:
        print(exc)
"""


def test_a_missing_torch_extra_says_which_extra():
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", MISSING_TORCH], cwd=root, capture_output=True, text=True, timeout=300)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout + out.stderr[-2000:]  # was a bare "No module named 'torch'"
    assert lines[0].startswith("bk.pfn.pretrained needs the `torch` extra")
    assert lines[1].startswith("the matrix-free solver") and "pip install 'bayeskit[torch]'" in lines[1]


def test_pfn_takes_a_shipped_network_by_name():
    pytest.importorskip("torch")
    from bayeskit.models.learning_curves import learning_curve_model

    data = {"X": np.arange(1.0, 5.0), "y": np.full(4, 0.3)}
    assert bk.fit(learning_curve_model, data, engine=bk.PFN(network="lc-tiny")).predict().mean.shape == (96,)
    with pytest.raises(ConfigError, match=r"'lc-huge' is neither a file nor a shipped network.*'lc-tiny'"):
        bk.fit(learning_curve_model, data, engine=bk.PFN(network="lc-huge"))  # was a raw file error


def test_an_observation_left_out_of_the_data_is_warned_about():
    # `y` missing from data: NUTS samples it as a latent and only R-hat used to complain
    with pytest.warns(UserWarning, match=r"argument 'y' was not given, so site 'y' is sampled as a latent variable"):
        bk.fit(line, {"x": np.ones(5)}, engine=bk.NUTS(**QUICK))
