"""TextEncoder on sentence-transformers: the model's own length, encode == forward, weights round-trip."""

import copy

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder

TEXTS = ["a virus infects cells", "viruses infect living cells", "a stapler joins paper", ""]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_the_models_own_max_length_is_used(encoder):
    assert encoder.max_length == encoder.sentence_transformer.max_seq_length == 256
    long_text = " ".join(["word"] * 1000)
    assert encoder.tokenize([long_text])["input_ids"].shape == (1, 256)
    # a text of 200 tokens was cut at 64 before: its tail now changes the embedding
    head = " ".join(["virus"] * 100)
    a, b = encoder.encode([head + " " + "stapler " * 80, head + " " + "galaxy " * 80])
    assert a @ b < 0.99


def test_a_smaller_budget_truncates_and_bad_budgets_are_refused():
    short = TextEncoder(max_length=24)
    assert short.tokenize(["word " * 100])["input_ids"].shape == (1, 24)
    for bad in (0, 1, 10_000, "64"):
        with pytest.raises(InvalidInputError) as err:
            short.max_length = bad
        assert err.value.field == "max_length"


def test_encode_is_normalised_float32_and_matches_forward(encoder):
    seen: list[int] = []
    vectors = encoder.encode(TEXTS, batch_size=2, progress=seen.append)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32 and encoder.dim == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert sum(seen) == len(TEXTS)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    encoder.eval()
    with torch.no_grad():
        forward = encoder(TEXTS).numpy()
    assert np.abs(forward - vectors).max() < 1e-5
    assert encoder.encode([]).shape == (0, 384)


def test_encode_restores_training_mode_and_rejects_a_bare_string(encoder):
    encoder.train()
    encoder.encode(["virus"])
    assert encoder.training and encoder.model.training
    encoder.eval()
    with pytest.raises(InvalidInputError) as err:
        encoder.encode("virus")
    assert err.value.field == "texts"


def test_fine_tuning_moves_the_shared_weights_and_the_state_dict_round_trips(tmp_path, encoder, one_torch_thread):
    tuned = copy.deepcopy(encoder)
    assert tuned.sentence_transformer[0].auto_model is tuned.model  # one set of weights, not two
    before = tuned.encode(["virus", "stapler"])
    tuned.train()
    optimiser = torch.optim.SGD(tuned.parameters(), lr=0.5)
    a, b = tuned(["virus", "stapler"])
    (a @ b).neg().backward()  # pull the two embeddings together; any real step will do
    optimiser.step()
    after = tuned.encode(["virus", "stapler"])
    assert np.abs(after - before).max() > 1e-3  # encode() sees the fine-tuned weights
    assert np.allclose(encoder.encode(["virus", "stapler"]), before, atol=1e-6)  # the original is untouched

    state = tuned.state_dict()
    # the key layout kgforge has always saved (dense / reranker folders): the transformer under "model."
    assert all(k.startswith("model.") for k in state) and "model.embeddings.word_embeddings.weight" in state
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    fresh = TextEncoder()
    fresh.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    assert np.allclose(fresh.encode(["virus", "stapler"]), after, atol=1e-5)
