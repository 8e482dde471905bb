"""The zoo: metafiles, get (cache, URL, training), verify, path, the lock, and ``model.init: zoo:``."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from contrastkit import zoo
from contrastkit.cli import main
from tests.zoo.conftest import copy_home, write_family


def test_every_shipped_entry_names_a_recipe_and_its_band_is_mean_plus_minus_three_std():
    from contrastkit.config import list_recipes

    shipped = {name: e for name, e in zoo.entries().items() if e.family == "cifar10"}
    assert {
        "moco-v2-cifar10-s0",
        "moco-v2-cifar10-s1",
        "moco-v2-cifar10-s2",
        "simclr-cifar10-s0",
        "hcl-cifar10-s0",
    } <= set(shipped)
    for entry in shipped.values():
        assert entry.recipe in list_recipes()
        mean, std = map(float, re.search(r"([\d.]+) \+- ([\d.]+)", entry.band_from).groups())
        assert entry.band == pytest.approx((mean - 3 * std, mean + 3 * std), abs=0.006), entry.name


def test_a_bad_metafile_is_one_line_naming_the_field(tmp_path, monkeypatch):
    bad = write_family(tmp_path / "bad.yaml", broken={"band": [60.0, 50.0]})
    monkeypatch.setenv("CONTRASTKIT_ZOO_FILES", str(bad))
    with pytest.raises(zoo.ZooError, match="bad.yaml.*band.*empty"):
        zoo.entries()
    write_family(bad, broken={"url": "file:///x.pt"})
    with pytest.raises(zoo.ZooError, match="sha256"):
        zoo.entries()


def test_get_trains_once_then_serves_the_cache_and_list_and_path_say_so(tiny_zoo, capsys):
    said: list[str] = []
    first = zoo.get("tiny", progress=False, say=said.append)
    assert first.verified and first.source == "trained" and len(said) == 1 and "training tiny" in said[0]
    assert zoo.get("tiny", progress=False, say=said.append) == first and len(said) == 1
    assert main(["zoo", "path", "tiny"]) == 0
    assert capsys.readouterr().out.strip() == str(first.weights)
    assert main(["zoo", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny "))
    assert f"verified ({first.value:.2f})" in row


def test_a_tampered_cached_file_is_one_line_and_exit_2(tiny_zoo, trained_tiny, capsys):
    copy_home(trained_tiny, tiny_zoo)
    weights = tiny_zoo / "zoo" / "tiny" / "backbone.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensors
    weights.write_bytes(bytes(data))
    for command in (["zoo", "get", "tiny"], ["zoo", "path", "tiny"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "sha256" in err[0] and "tiny" in err[0]


def test_a_result_outside_the_band_exits_1_and_keeps_the_weights_unverified(tiny_zoo, capsys):
    assert main(["zoo", "get", "tiny-strict", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "outside its band" in err[-1] and "unverified" in err[-1]
    cached = zoo.read_cached("tiny-strict")
    assert cached is not None and not cached.verified and cached.weights.is_file()
    assert main(["zoo", "list"]) == 0
    assert "UNVERIFIED" in next(line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny-strict"))


def test_a_url_is_fetched_with_its_hash_checked_and_an_unreachable_one_falls_back_to_training(
    tiny_zoo, trained_tiny, tmp_path, monkeypatch
):
    published = trained_tiny / "zoo" / "tiny" / "backbone.pt"
    digest = json.loads((published.parent / "entry.json").read_text())["sha256"]
    metafile = write_family(
        tmp_path / "urls.yaml",
        fetched={"url": published.as_uri(), "sha256": digest},
        wrong={"url": published.as_uri(), "sha256": "0" * 64},
        unreachable={"url": "http://127.0.0.1:9/backbone.pt", "sha256": digest},
    )
    monkeypatch.setenv("CONTRASTKIT_ZOO_FILES", str(metafile))
    said: list[str] = []
    fetched = zoo.get("fetched", progress=False, say=said.append)
    assert fetched.source == published.as_uri() and fetched.sha256 == digest and said == []
    with pytest.raises(zoo.ZooError, match="sha256"):
        zoo.get("wrong", progress=False)
    assert zoo.read_cached("wrong") is None
    fallback = zoo.get("unreachable", progress=False, say=said.append)
    assert len(said) == 2 and "unreachable" in said[0] and "training" in said[0] and fallback.source == "trained"
    assert fallback.sha256 == digest  # the same recipe and seed on the same machine: the same weights


def test_verify_retrains_and_compares_with_the_band(tiny_zoo, trained_tiny, capsys):
    copy_home(trained_tiny, tiny_zoo)
    assert main(["zoo", "verify", "tiny", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^tiny: knn_top1 [\d.]+ inside \[0.00, 100.00\]$", captured.out, re.M)
    assert "bit-identical" in captured.err
    assert main(["zoo", "verify"]) == 2  # neither names nor --all


def test_two_processes_asking_for_one_entry_train_it_once(tiny_zoo):
    command = [sys.executable, "-m", "contrastkit.cli", "zoo", "get", "tiny", "--no-progress"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0]  # the same weights file
    assert sum(err.count("zoo: training tiny") for _, err in outs) == 1
    assert len(list((tiny_zoo / "zoo" / "tiny" / "run" / "moco-digits").iterdir())) == 1


def test_a_recipe_starts_from_a_zoo_entry_and_an_uncached_one_is_refused_in_one_line(
    tiny_zoo, trained_tiny, tmp_path, capsys
):
    base = ["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(tmp_path / "runs")]
    assert main([*base, "--set", "model.init=zoo:tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "contrastkit zoo get tiny" in err[0]
    copy_home(trained_tiny, tiny_zoo)
    assert main([*base, "--set", "model.init=zoo:tiny"]) == 0
    (run,) = (tmp_path / "runs" / "moco-digits").iterdir()
    assert "zoo:tiny" in json.loads((run / "results.json").read_text())["model"]
