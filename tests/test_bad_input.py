"""Bad input gets a named bayeskit error that says what was expected, never a raw JAX, NumPyro or
h5py traceback (issue 17's corpus: each case here failed that way before)."""

import re

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
import re

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


# -- the corpus: every engine x every kind of bad input -------------------------------------------
# Each cell must fail at `bk.fit` entry or engine construction, before anything compiles or samples,
# with a `BayeskitError` whose message names the argument (data key or setting) and what was expected.
#
# Decisions: NaN and ±inf in data are refused (NumPyro does not read NaN as missing; the state-space
# engines do with missing='skip', off by default). A data key the model does not take is refused, as
# NumPyro's MCMC.run(**kwargs) refuses it: accepting it would let a misspelt observation leave its site
# sampled as a latent without a word. An observation with no elements is refused (the posterior would
# be the prior). Object arrays that hold anything but numbers are refused; strings always.
def _gp_data(n=6):
    X = np.linspace(0, 1, n)[:, None]
    return {"X": X, "y": np.sin(3 * X[:, 0])}


def _engines():
    from bayeskit.models.processes import ProcessClassifier
    from bayeskit.models.state_space import LinearGaussian

    h = lambda x, x_next, t: x[..., 0]  # noqa: E731
    numpyro_data = {"x": np.linspace(0, 1, 5), "y": np.ones(5)}
    labels = {"X": _gp_data()["X"], "y": np.array([0, 1, 0, 1, 1, 0])}
    ssm_data = {"y": np.ones(5)}
    return {  # name: (model, good data, input key or None, observation key, engine, absurd settings)
        "NUTS": (line, numpyro_data, "x", "y", lambda **s: bk.NUTS(**{**QUICK, **s}),
                 [("draws", -1), ("chains", 0), ("warmup", -1), ("target_accept", 1.5), ("target_accept", 0.0),
                  ("initial_step_size", 0.0), ("initial_step_size", float("nan")), ("draws", "100"),
                  ("max_tree_depth", 0)]),
        "HMC": (line, numpyro_data, "x", "y", lambda **s: bk.HMC(**{**QUICK, **s}),
                [("num_steps", 0), ("target_accept", -0.1), ("chains", 2.5)]),
        "VI": (line, numpyro_data, "x", "y", lambda **s: bk.VI(**{"steps": 5, "draws": 5, "progress": False, **s}),
               [("steps", 0), ("learning_rate", -1.0), ("learning_rate", float("nan")), ("draws", 0),
                ("steps", "10")]),
        "Optimize": (bk.DeepKernelMachine(layers=1, nu=1.0, bias_var=0.1), _gp_data(), "X", "y",
                     lambda **s: bk.Optimize(**{"steps": 2, "progress": False, **s}),
                     [("steps", 0), ("learning_rate", -0.1), ("learning_rate", float("inf")), ("batch_size", 0)]),
        "Exact": (ScaleMixtureProcess(RBF(), noise=0.1), _gp_data(), "X", "y",
                  lambda **s: bk.Exact(**{"optimize": False, **s}),
                  [("steps", 0), ("learning_rate", 0.0), ("learning_rate", float("nan")), ("optimize", "yes")]),
        "SparseVariational": (ProcessClassifier(RBF(), num_classes=2, num_inducing=3), labels, "X", "y",
                              lambda **s: bk.SparseVariational(**{"steps": 2, "progress": False, **s}),
                              [("steps", 0), ("learning_rate", -1.0), ("num_samples", 0)]),
        "PaRIS": (LinearGaussian.scalar(), ssm_data, None, "y",
                  lambda **s: bk.PaRIS(**{"n_particles": 8, "functional": h, "progress": False, **s}),
                  [("n_particles", 0), ("n_particles", "100"), ("K", 0), ("ess_threshold", float("nan")),
                   ("runs", 0)]),
        "ParticleGibbs": (LinearGaussian.scalar(), ssm_data, None, "y",
                          lambda **s: bk.ParticleGibbs(**{"n_particles": 8, "functional": h, "sweeps": 2,
                                                          "burn_in": 0, "progress": False, **s}),
                          [("sweeps", 0), ("burn_in", -1), ("n_particles", 1)]),
        "MartingalePosterior": (bk.martingale.NormalNormal(), ssm_data, None, "y",
                                lambda **s: bk.MartingalePosterior(**{"draws": 4, "horizon": 10, "progress": False,
                                                                      **s}),
                                [("draws", 0), ("draws", -3.5), ("horizon", 0)]),
        "PFN": ("learning_curve_model", {"X": np.arange(1.0, 5.0), "y": np.full(4, 0.3)}, "X", "y",
                lambda **s: bk.PFN(**{"network": "lc-tiny", **s}), [("device", 3), ("network", 5)]),
    }


ENGINES = ("NUTS", "HMC", "VI", "Optimize", "Exact", "SparseVariational", "PaRIS", "ParticleGibbs",
           "MartingalePosterior", "PFN")


def _bad_data(name, data, x, y):
    """(case id, bad data, regex the message must match) for one engine's data layout."""
    n = len(data[y])
    Y = f"(`{y}`|data\\['{y}'\\]|'{y}')"  # how each entry point names the observation key
    X = f"(`{x}`|data\\['{x}'\\]|'{x}')"
    at = lambda key, i, v: {**data, key: np.where(np.arange(len(data[key])) == i, v, data[key]) if np.ndim(  # noqa: E731
        data[key]) == 1 else np.where(np.arange(len(data[key]))[:, None] == i, v, data[key])}
    cases = [
        ("nan-obs", at(y, 1, np.nan), f"{Y}.*non-finite"),
        ("inf-obs", at(y, 1, np.inf), f"{Y}.*non-finite"),
        ("wrong-shape-obs", {**data, y: np.ones((n, 2, 3))}, f"{Y}.*shape \\({n}, 2, 3\\)"),
        ("object-obs", {**data, y: np.array([1.0, None] + [0.0] * (n - 2), dtype=object)},
         f"{Y} must be numeric.*object array whose element 1 is None"),
        ("strings-obs", {**data, y: np.array(["a"] * n)}, f"{Y} must be numeric.*dtype <U1"),
        ("ragged-obs", {**data, y: [[1.0]] + [[1.0, 2.0]] * (n - 1)}, f"{Y} could not be converted"),
        ("missing-key", {k: v for k, v in data.items() if k != (x or y)},
         f"(no key '{x or y}'|keys? .*'{x or y}'.*got \\[)"),
        ("extra-key", {**data, "z": data[y]}, "'z'"),
        ("not-a-dict", [data[y]], "`data`.*(dict).*got list"),
    ]
    if name in ("PaRIS", "ParticleGibbs"):
        cases.append(("empty", {y: np.ones(0)}, f"{Y}.*T >= 2, got shape \\(0, 1\\)"))
    else:
        empty = {k: np.ones((0,) + np.shape(v)[1:]) for k, v in data.items()}
        cases.append(("empty", empty, f"{Y}.*(empty|at least one observation)"))
    if x is not None:
        cases += [
            ("-inf-input", at(x, 2, -np.inf), f"{X}.*non-finite"),
            ("nan-input", at(x, 0, np.nan), f"{X}.*non-finite"),
            ("strings-input", {**data, x: np.array(["a"] * n)}, f"{X} must be numeric"),
            ("mismatched-lengths", {**data, y: data[y][:-1]}, f"{Y}.*(shape|entries|row)"),
        ]
    return cases


def _corpus():
    out = []
    for name, (_, data, x, y, _, settings) in _engines().items():
        for case, bad, match in _bad_data(name, data, x, y):
            out.append(pytest.param(name, "data", bad, match, id=f"{name}-{case}"))
        for setting, value in settings:
            out.append(pytest.param(name, "setting", {setting: value}, rf"`{setting}` must be",
                                    id=f"{name}-{setting}={value!r}"))
    return out


@pytest.mark.parametrize(("engine", "kind", "bad", "match"), _corpus())
def test_corpus(engine, kind, bad, match):
    from bayeskit.core.errors import BayeskitError

    model, data, _, _, make, _ = _engines()[engine]
    if engine == "PFN":
        pytest.importorskip("torch")
        from bayeskit.models.learning_curves import learning_curve_model as model
    expected = ConfigError if kind == "setting" else DataError
    with pytest.raises(BayeskitError) as info:
        if kind == "setting":
            bk.fit(model, data, engine=make(**bad))
        else:
            bk.fit(model, bad, engine=make())
    assert isinstance(info.value, expected), f"{type(info.value).__name__}: {info.value}"
    assert re.search(match, str(info.value)), f"{match!r} not in: {info.value}"


def test_load_of_a_file_with_zeroed_bytes_names_it(nuts_post, tmp_path):
    # was AttributeError: 'NoneType' object has no attribute 'split' (or wrong numbers read back, or h5py
    # looping for ever), with "Exception ignored in File.close" tracebacks from h5netcdf on stderr
    good = tmp_path / "good.nc"
    nuts_post.save(good)
    raw = good.read_bytes()
    for start, size in [(len(raw) // 2 - 2048, 4096), (len(raw) - 100, 100)]:  # the middle; the end
        bad = tmp_path / f"zeroed{start}.nc"
        bad.write_bytes(raw[:start] + bytes(size) + raw[start + size:])
        with pytest.raises(DataError, match=rf"zeroed{start}\.nc' is not a readable bayeskit posterior file: it was "
                                            r"damaged after it was saved"):
            bk.load(bad)
    import arviz as az

    assert az.from_netcdf(good).posterior["a"].shape == (1, 30)  # the checksum at its end is no bother to others


@pytest.mark.parametrize(("lengthscale", "X", "match"), [
    # was JAX's "Incompatible shapes for broadcasting: shapes=[(6, 2), (3,)]"
    (np.ones(3), np.ones((6, 2)), r"`X` has 2 column\(s\).*kernel.lengthscale has 3 entries"),
    # was no error: a 1-D X broadcast silently against two lengthscales
    (np.ones(2), np.linspace(0, 1, 6), r"`X` has 1 column\(s\).*kernel.lengthscale has 2 entries"),
], ids=["2-D X, 3 lengthscales", "1-D X, 2 lengthscales"])
def test_inputs_whose_dimension_the_kernel_does_not_take(lengthscale, X, match):
    with pytest.raises(DataError, match=match):
        bk.fit(ScaleMixtureProcess(RBF(lengthscale=lengthscale), noise=0.1), {"X": X, "y": np.ones(6)},
               engine=bk.Exact(optimize=False))


def test_predict_at_inputs_unlike_the_fit_names_them(exact_post):
    with pytest.raises(DataError, match=r"new inputs `X` have 2 column\(s\), but the fit's `X` had 1"):
        exact_post.predict({"X": np.ones((3, 2))})  # was the kernel's "`x1` and `x2` must have ..."
    with pytest.raises(DataError, match=r"new inputs `X` contain 1 non-finite"):
        exact_post.predict({"X": np.array([[np.nan], [0.5]])})  # was NaN predictions
    with pytest.raises(DataError, match=r"`X` must be numeric"):
        exact_post.predict({"X": np.array([["a"]])})  # was JAX's "Error interpreting argument"


def test_an_unknown_setting_is_named_with_the_closest_one():
    # was TypeError: NUTS.__init__() got an unexpected keyword argument 'step_size'
    with pytest.raises(ConfigError, match=r"NUTS has no setting 'step_size' \(did you mean 'initial_step_size'\?\); "
                                          r"it takes chains, warmup, draws"):
        bk.NUTS(step_size=0.1)
    with pytest.raises(ConfigError, match=r"RBF has no setting 'lengthscales' \(did you mean 'lengthscale'\?\)"):
        RBF(lengthscales=2.0)
