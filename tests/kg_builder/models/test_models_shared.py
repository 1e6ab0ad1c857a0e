import numpy as np
import pytest
import torch

from kg_builder.errors import InvalidInputError
from kg_builder.models.encoder import TextEncoder, encoder_path
from kg_builder.models.saved import ModelNotTrainedError, load_folder, model_dir, save_folder
from kg_builder.settings import Settings


@pytest.fixture(scope="session")
def encoder() -> TextEncoder:
    return TextEncoder()


def test_encoder_loads_locally_and_embeds_meaningfully(encoder):
    assert encoder_path().is_dir()
    vectors = encoder.encode(["a virus infects cells", "viruses infect living cells", "a stapler joins paper"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_encoder_forward_keeps_gradients(encoder):
    out = encoder(["virus"])
    assert out.requires_grad and out.shape == (1, encoder.dim)


def test_saved_folder_round_trip(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.zeros(4)}
    save_folder(tmp_path / "m", kind="toy", config={"dataset": "umls", "metrics": {"mrr": 0.5}}, state=state)
    config, loaded = load_folder(tmp_path / "m", kind="toy", train_hint="kgforge train toy")
    assert config["dataset"] == "umls" and config["kind"] == "toy" and "created" in config
    assert torch.equal(loaded["w"], state["w"])
    with pytest.raises(ModelNotTrainedError, match="kgforge train toy"):
        load_folder(tmp_path / "absent", kind="toy", train_hint="kgforge train toy")


def test_model_names_are_checked(tmp_path):
    settings = Settings(home=tmp_path)
    assert model_dir(settings, "dense-umls") == tmp_path.resolve() / "models" / "dense-umls"
    with pytest.raises(InvalidInputError):
        model_dir(settings, "../escape")
