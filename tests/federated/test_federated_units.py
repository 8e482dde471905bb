"""MOON / FedProx / FedAvg pieces against moon.md §9, without starting Flower."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, MetricRecord, RecordDict

from contrastkit.data import load_digits
from contrastkit.federated import FederatedModel, LocalSettings, dirichlet_partition, label_histograms, local_train
from contrastkit.federated.strategy import check_update
from contrastkit.functional import model_contrastive
from contrastkit.views import normalize_images

DIGITS = load_digits(16)


def _pre(x):
    return normalize_images(x, DIGITS.mean, DIGITS.std)


# --- the model-contrastive term ---------------------------------------------------------------


def test_model_contrastive_against_a_loop():
    z, zg, zp = torch.randn(5, 6), torch.randn(5, 6), torch.randn(5, 6)
    t = 0.5
    expected = []
    for i in range(5):
        cos = torch.nn.functional.cosine_similarity
        pos = math.exp(float(cos(z[i], zg[i], dim=0)) / t)
        neg = math.exp(float(cos(z[i], zp[i], dim=0)) / t)
        expected.append(-math.log(pos / (pos + neg)))
    torch.testing.assert_close(model_contrastive(z, zg, zp, temperature=t), torch.tensor(sum(expected) / 5))


def test_model_contrastive_oracles():
    z = torch.randn(4, 8, requires_grad=True)
    zg = torch.randn(4, 8)
    assert float(model_contrastive(z, zg, None)) == 0.0  # one logit column
    same = model_contrastive(z, zg, zg.clone())
    torch.testing.assert_close(same, torch.tensor(math.log(2)))
    (grad,) = torch.autograd.grad(same, z)
    torch.testing.assert_close(grad, torch.zeros_like(grad))
    torch.testing.assert_close(
        model_contrastive(zg, zg.clone(), -zg, temperature=0.5), torch.tensor(math.log(1 + math.exp(-2 / 0.5)))
    )
    pool = torch.randn(3, 4, 8)
    assert torch.isfinite(model_contrastive(z, zg, pool))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_model_contrastive_with_a_pool_matches_a_loop_in_value_and_gradient(reduction):
    """Several previous models (``[M, B, D]``): the loop's loss and its gradients w.r.t. all inputs."""
    z = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    zg = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    pool = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    t = 0.3
    cos = torch.nn.functional.cosine_similarity
    rows = []
    for i in range(5):
        pos = torch.exp(cos(z[i], zg[i], dim=0) / t)
        neg = sum(torch.exp(cos(z[i], pool[m, i], dim=0) / t) for m in range(3))
        rows.append(-torch.log(pos / (pos + neg)))
    loop = torch.stack(rows)
    expected = {"mean": loop.mean(), "sum": loop.sum(), "none": loop}[reduction]
    ours = model_contrastive(z, zg, pool, temperature=t, reduction=reduction)
    torch.testing.assert_close(ours, expected)
    grads = torch.autograd.grad(ours.sum(), [z, zg, pool])
    for g_ours, g_ref in zip(grads, torch.autograd.grad(expected.sum(), [z, zg, pool])):
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_model_contrastive_low_precision_is_finite_and_close(dtype):
    z, zg, zp = torch.randn(8, 16) * 30, torch.randn(8, 16) * 30, torch.randn(2, 8, 16) * 30
    low = model_contrastive(z.to(dtype), zg.to(dtype), zp.to(dtype), temperature=0.01)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    torch.testing.assert_close(low, model_contrastive(z, zg, zp, temperature=0.01), rtol=0.05, atol=0.5)


def test_model_contrastive_rejects_bad_settings():
    z = torch.randn(4, 8)
    with pytest.raises(ValueError, match="temperature"):
        model_contrastive(z, z, z, temperature=0.0)
    with pytest.raises(ValueError, match="reduction"):
        model_contrastive(z, z, z, reduction="max")
    with pytest.raises(ValueError, match="z_prev"):
        model_contrastive(z, z, torch.randn(4, 7))


# --- partition ------------------------------------------------------------------------------------


def test_dirichlet_partition_loses_nothing_and_is_seeded():
    labels = torch.randint(0, 10, (3000,))
    parts = dirichlet_partition(labels, 10, 0.5, seed=3)
    joined = torch.cat(parts).sort().values
    assert torch.equal(joined, torch.arange(3000))
    assert min(len(p) for p in parts) >= 10
    again = dirichlet_partition(labels, 10, 0.5, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))


def test_small_beta_skews_and_large_beta_approaches_uniform():
    labels = torch.arange(10).repeat(500)
    skew = []
    for beta in (0.1, 100.0):
        hist = label_histograms(labels, dirichlet_partition(labels, 10, beta, seed=0), 10).float()
        share = hist / hist.sum(1, keepdim=True)
        skew.append(float((share - 0.1).abs().sum(1).mean()))
    assert skew[0] > 0.8 and skew[1] < 0.15, skew


def test_partition_rejects_impossible_requests():
    with pytest.raises(ValueError, match="beta must be > 0"):
        dirichlet_partition(torch.zeros(100, dtype=torch.long), 2, 0.0)
    with pytest.raises(ValueError, match="cannot give"):
        dirichlet_partition(torch.zeros(15, dtype=torch.long), 2, 1.0)


# --- local training ---------------------------------------------------------------------------------


def _model(seed=0):
    torch.manual_seed(seed)
    return FederatedModel("moon_cnn", 1, 16, 10, proj_dim=32)


def _train(model, algorithm, mu, global_model=None, previous=None, seed=0):
    x, y = DIGITS.train_images[:128], DIGITS.train_labels[:128]
    settings = LocalSettings(algorithm, epochs=1, batch_size=32, mu=mu)
    return local_train(
        model,
        x,
        y,
        settings,
        preprocess=_pre,
        augment=False,
        generator=torch.Generator().manual_seed(seed),
        global_model=global_model,
        previous_models=previous,
    )


@pytest.mark.parametrize("algorithm", ["moon", "fedprox"])
def test_mu_zero_equals_fedavg_exactly(algorithm):
    fedavg, other = _model(), _model()
    global_model = copy.deepcopy(other)
    previous = [_model(seed=1)]
    _train(fedavg, "fedavg", 0.0)
    _train(other, algorithm, 0.0, global_model, previous if algorithm == "moon" else None)
    for a, b in zip(fedavg.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


def test_frozen_models_stay_unchanged_and_moon_term_is_active():
    model = _model()
    global_model, previous = copy.deepcopy(model), [_model(seed=1)]
    before = [copy.deepcopy(m.state_dict()) for m in (global_model, *previous)]
    losses = _train(model, "moon", 5.0, global_model, previous)
    assert losses["extra"] > 0
    for m, state in zip((global_model, *previous), before):
        for k, v in m.state_dict().items():
            assert torch.equal(v, state[k])
        assert all(p.grad is None and not p.requires_grad for p in m.parameters())


def test_classifier_sits_on_the_projection():
    model = _model()
    h, z, logits = model(_pre(DIGITS.train_images[:1]))  # batch of one must work (pitfall 5)
    assert h.shape == (1, 84) and z.shape == (1, 32) and logits.shape == (1, 10)
    assert model.classifier.in_features == 32


# --- the strategy's update checks ------------------------------------------------------------------------


def _reply(state, n=10):
    return RecordDict(
        {"arrays": ArrayRecord({k: v.clone() for k, v in state.items()}), "metrics": MetricRecord({"num-examples": n})}
    )


def test_check_update_accepts_sound_and_names_what_is_wrong():
    state = _model().state_dict()
    reference = ArrayRecord(state)
    assert check_update(reference, _reply(state)) is None
    nan_state = {k: v.clone() for k, v in state.items()}
    first = next(iter(nan_state))
    nan_state[first][...] = float("nan")
    assert "NaN" in check_update(reference, _reply(nan_state))
    wrong = {k: v.clone() for k, v in state.items()}
    wrong[first] = torch.zeros(3, 3)
    assert "expected" in check_update(reference, _reply(wrong))
    missing = dict(list(state.items())[1:])
    assert "names differ" in check_update(reference, _reply(missing))
    assert "positive" in check_update(reference, _reply(state, n=0))


def test_weighted_average_by_samples():
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    a = RecordDict({"arrays": ArrayRecord({"w": torch.ones(2)}), "metrics": MetricRecord({"num-examples": 30})})
    b = RecordDict({"arrays": ArrayRecord({"w": torch.zeros(2)}), "metrics": MetricRecord({"num-examples": 10})})
    merged = aggregate_arrayrecords([a, b], "num-examples")
    np.testing.assert_allclose(merged["w"].numpy(), [0.75, 0.75])


def test_aggregation_is_the_same_whatever_order_the_replies_arrive_in():
    """Parties finish in a different order every run; the weighted average must not depend on it
    (float sums do), or two runs with the same seed drift apart round by round."""
    from flwr.app import Message, Metadata

    from contrastkit.federated.strategy import CheckedFedAvg

    torch.manual_seed(0)
    state = _model().state_dict()
    global_arrays = ArrayRecord(state)

    def reply(node: int, seed: int) -> Message:
        g = torch.Generator().manual_seed(seed)
        local = {k: v + torch.randn(v.shape, generator=g) * 10.0 ** (seed % 5 - 2) for k, v in state.items()}
        content = RecordDict(
            {
                "arrays": ArrayRecord(local),
                "metrics": MetricRecord({"num-examples": 17 + 13 * seed, "partition-id": seed}),
            }
        )
        meta = Metadata(
            run_id=1,
            message_id=f"m{node}",
            src_node_id=node,
            dst_node_id=0,
            reply_to_message_id="instruction",
            group_id="1",
            created_at=0.0,
            ttl=60.0,
            message_type="train",
        )
        return Message(content=content, metadata=meta)

    replies = [reply(node, seed) for seed, node in enumerate([901, 17, 455, 3, 62, 7000, 88])]
    results = []
    for order in ([0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0], [3, 0, 6, 2, 5, 1, 4]):
        strategy = CheckedFedAvg(fraction_train=1.0, fraction_evaluate=0.0)
        strategy._global = global_arrays
        arrays, _ = strategy.aggregate_train(1, [replies[i] for i in order])
        assert arrays is not None
        results.append(arrays.to_torch_state_dict())
    for other in results[1:]:
        assert all(torch.equal(results[0][k], other[k]) for k in results[0])


def test_the_heap_setting_applies_once_per_process_when_asked():
    import platform

    from contrastkit._allocator import _apply, keep_heap_warm

    first = keep_heap_warm(force=True)
    misses = _apply.cache_info().misses
    assert keep_heap_warm(force=True) == first
    assert _apply.cache_info().misses == misses == 1  # mallopt runs once per process
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True


def test_fedprox_term_pulls_the_local_model_toward_the_global_one():
    """moon.md §1: FedProx adds (mu / 2) ||w - w_global||^2. Its value after one epoch is that
    formula, and a large mu keeps the trained model closer to the global one than FedAvg does
    (with the sign flipped it would be pushed away, farther than FedAvg)."""
    start = _model()
    global_model = _model(seed=3)  # a different global model: the term is non-zero from step 1
    distances = {}
    for algorithm, mu in (("fedavg", 0.0), ("fedprox", 1.0)):
        model = copy.deepcopy(start)
        losses = _train(model, algorithm, mu, global_model if mu else None)
        distances[algorithm] = sum(
            float(((p - g) ** 2).sum()) for p, g in zip(model.parameters(), global_model.parameters())
        )
        if mu:
            assert losses["extra"] > 0
    assert distances["fedprox"] < 0.9 * distances["fedavg"], distances
    settings = LocalSettings("fedprox", mu=0.5)
    model = _model(seed=4)
    from contrastkit.federated.local import _extra_term

    term = _extra_term(model, None, None, settings, [p.detach() for p in global_model.parameters()], None)
    expected = 0.25 * sum(((p - g) ** 2).sum() for p, g in zip(model.parameters(), global_model.parameters()))
    torch.testing.assert_close(term, expected)


def test_dirichlet_capacity_cap_stops_filling_full_parties():
    """moon.md §4 (official utils.py): a party holding >= n / N samples gets no share of later
    classes, so no party exceeds n / N by more than one class's samples. Without the cap, skewed
    draws hand single parties several whole classes."""
    labels = torch.arange(2000) % 20  # 20 classes of 100
    n, parties = len(labels), 10
    for seed in range(5):
        parts = dirichlet_partition(labels, parties, beta=0.05, seed=seed, min_size=1)
        assert max(len(p) for p in parts) <= n / parties + 100, [len(p) for p in parts]


def test_a_submitted_results_file_is_a_name_inside_the_operators_folder(tmp_path, monkeypatch):
    from contrastkit.federated.apps import RESULTS_DIR_ENV, results_path

    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path))
    assert results_path(None, {"results-file": "rounds.json"}) == tmp_path / "rounds.json"
    assert results_path(None, {"results-file": ""}) is None
    for bad in ("../escape.json", "/etc/passwd", "a/b.json", ".."):
        with pytest.raises(ValueError, match="must be a plain file name"):
            results_path(None, {"results-file": bad})
    bound = {"results-file": str(tmp_path / "run" / "rounds_moon.json")}  # contrastkit federate's own run folder
    assert results_path(bound, {"results-file": "/elsewhere"}) == tmp_path / "run" / "rounds_moon.json"


def test_the_round_config_names_the_algorithm_and_mu_over_bound_settings():
    from flwr.app import Context, RecordDict

    from contrastkit.federated.apps import ROUND_KEYS, settings_of

    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={"algorithm": "fedavg"})
    bound = {"algorithm": "fedavg", "mu": 0.0, "lr": 0.02}
    s = settings_of(bound, context, {"algorithm": "moon", "mu": 1.0, "lr": 9.0, "server-round": 3})
    assert (s["algorithm"], s["mu"], s["lr"]) == ("moon", 1.0, 0.02)  # only ROUND_KEYS come from the round
    assert set(ROUND_KEYS) == {"algorithm", "mu"}


def test_the_run_config_written_for_flwr_run_reads_back_exactly(tmp_path):
    import tomllib

    from contrastkit.federated.apps import DEFAULTS
    from contrastkit.federated.simulation import write_flower_app

    settings = {
        **DEFAULTS,
        "data-root": 'C:\\data "x"',
        "weight-decay": 1e-5,
        "quiet": True,
        "algorithms": "fedavg,moon",
    }
    app = write_flower_app(tmp_path / "app", settings)
    parsed = tomllib.loads((app / "pyproject.toml").read_text())
    assert parsed["tool"]["flwr"]["app"]["config"] == settings
    assert parsed["tool"]["flwr"]["app"]["components"]["serverapp"] == "contrastkit.federated.apps:server_app"


def test_a_run_lists_its_algorithms_with_their_mu():
    from contrastkit.federated.apps import DEFAULTS, _each_algorithm, results_path

    s = {**DEFAULTS, "algorithms": "fedavg, fedprox,moon", "mus": "0.0,0.01,1.0"}
    assert _each_algorithm(s) == [
        {"algorithm": "fedavg", "mu": 0.0},
        {"algorithm": "fedprox", "mu": 0.01},
        {"algorithm": "moon", "mu": 1.0},
    ]
    assert _each_algorithm({**DEFAULTS, "algorithms": ""}) == [{}]  # the one "algorithm" of the run config
    with pytest.raises(ValueError, match="one value for each"):
        _each_algorithm({**s, "mus": "0.0,1.0"})
    path = results_path(None, {"results-file": "rounds_{algorithm}.json", "algorithm": "moon"})
    assert path is not None and path.name == "rounds_moon.json"


def test_a_failed_flower_run_is_one_line_naming_its_log(tmp_path, monkeypatch, capsys):
    from contrastkit.cli import main
    from contrastkit.federated import run as federated_run
    from contrastkit.federated.simulation import FlowerRunError

    def broken(run_dir, *args, **kwargs):
        raise FlowerRunError(f"flwr run failed with code 1; see {run_dir / 'flower.log'}")

    monkeypatch.setattr(federated_run, "simulate", broken)
    assert main(["federate", "moon-digits", "--smoke", "--runs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contrastkit: error: flwr run failed") and "flower.log" in err[0]
