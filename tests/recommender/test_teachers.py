"""Teachers: the MiniLM text teacher (trains, round-trips, teacher interface), the LLM teacher
against the OpenAI-compatible TEST DOUBLE, and seed-user knowledge propagation."""

import json

import numpy as np
import pytest
import torch

from kg_builder.errors import InvalidInputError
from kg_builder.evaluation.titles import Sequences
from recommender.data import history_batch
from recommender.metrics import model_metrics
from recommender.models.base import to_tensors
from recommender.store import RecommenderStore
from recommender.teachers.llm_teacher import LLMTeacher, Rationale
from recommender.teachers.seed_users import (
    choose_seeds,
    evaluate_seed_users,
    history_embeddings,
    propagate,
    seed_user_knowledge,
)
from recommender.teachers.text_teacher import TextTeacher, teacher_item_texts, train_text_teacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder():
    from kg_builder.models.encoder import TextEncoder

    return TextEncoder()


def _valid(sequences) -> Sequences:
    return Sequences(users=[f"u{u:03d}" for u in range(len(sequences))], histories=[s[:-1] for s in sequences],
                     targets=np.array([s[-1] for s in sequences]))


# --- the language-model teacher ---------------------------------------------------------------------
def test_text_teacher_fine_tunes_minilm_and_learns_the_sequences(tmp_path, cyclic, encoder):
    data, sequences = cyclic
    before = [p.detach().clone() for p in encoder.model.encoder.layer[-1].parameters()]
    result = train_text_teacher(data=data, encoder=encoder, epochs=4, batch_size=32, max_minutes=None, patience=0,
                                holdout_fraction=0.1, max_len=10, item_tokens=8, grad_items=16, seed=0,
                                whiten=False)  # whitening 40 near-identical titles would only amplify noise
    teacher = result.model
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0], losses
    # the shared encoder is untouched (the teacher fine-tunes its own copy of the top layer)
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.model.encoder.layer[-1].parameters()))
    valid = _valid(sequences)
    metrics = model_metrics(teacher, valid)
    base = TextTeacher(data.n_items, max_len=10)  # MiniLM as it comes, untrained user tower
    encoder.max_length = 8
    try:
        base.item_vectors.copy_(torch.as_tensor(encoder.encode(teacher_item_texts(data))))
    finally:
        encoder.max_length = 256
    assert metrics["ndcg@10"] > 0.5 and metrics["ndcg@10"] > model_metrics(base, valid)["ndcg@10"] + 0.1
    # the item side was fine-tuned: its vectors moved away from MiniLM's
    assert float((teacher.item_vectors * base.item_vectors).sum(1).min()) < 0.99
    assert result.metrics["parameters_incl_frozen_minilm"] > 20_000_000  # larger than any student
    # the teacher interface
    batch = to_tensors(history_batch([[1, 2, 3], [7]], 10))
    assert teacher.item_embeddings().shape == (data.n_items, 384)
    assert torch.allclose(teacher.item_embeddings().norm(dim=1), torch.ones(data.n_items), atol=1e-4)
    hidden = teacher.hidden(batch)
    assert hidden.shape == (2, 384)
    items, scores = teacher.topk(batch, k=5)
    assert items.shape == scores.shape == (2, 5)
    assert not set(items[0].tolist()) & {1, 2, 3} and 7 not in items[1].tolist()  # history left out
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    # round trip through the recommender store (registered as text-teacher)
    store = RecommenderStore(root=tmp_path)
    store.save("teacher", teacher, item_ids=data.item_ids, dataset="synthetic", train_config=result.config,
               metrics=result.metrics)
    loaded = store.load("teacher")
    assert loaded.meta.model == "text-teacher"
    assert torch.equal(teacher.full_sort_predict(batch), loaded.model.full_sort_predict(batch))


def test_whitening_starts_the_item_side_decorrelated(cyclic, encoder):
    from recommender.teachers.text_teacher import ItemTextTower

    data, _ = cyclic
    texts = teacher_item_texts(data)
    raw = ItemTextTower(texts, encoder=encoder, item_tokens=8, whiten=False).table()
    white = ItemTextTower(texts, encoder=encoder, item_tokens=8, whiten=True).table()
    off_diagonal = ~torch.eye(len(texts), dtype=torch.bool)
    assert (raw @ raw.T)[off_diagonal].mean() > 0.3  # raw MiniLM: all alike
    assert abs(float((white @ white.T)[off_diagonal].mean())) < 0.05


def test_text_teacher_rejects_bad_budgets(cyclic, encoder):
    data, _ = cyclic
    with pytest.raises(InvalidInputError) as e:
        train_text_teacher(data=data, encoder=encoder, user_fraction=0.0)
    assert e.value.field == "user_fraction"
    with pytest.raises(InvalidInputError) as e:
        train_text_teacher(data=data, encoder=encoder, trainable_layers=9, max_len=10)
    assert e.value.field == "trainable_layers"


# --- the LLM teacher, against the TEST DOUBLE ---------------------------------------------------------
ANSWER = {
    "reasoning": "The customer buys 3D printer filament, mostly eSUN; the next purchase is likely more filament.",
    "brand_preferences": ["eSUN"], "category_preferences": ["3D Printing Filament"],
    "coarse_categories": ["3D printing supplies"], "recommendations": ["eSUN PLA 3D printer filament 1.75mm"],
}


def _llm_teacher(make_llm, encoder, items):
    lines = [f"{t} | {b} | {c}" for t, b, c in items]
    vectors = encoder.encode([t for t, _, _ in items])
    return LLMTeacher(make_llm(), encoder, item_texts=lines, item_vectors=vectors)


ITEMS = [("eSUN PLA filament 1.75mm 1kg", "eSUN", "3D Printing Filament"),
         ("Digital caliper 150 mm stainless steel", "Neiko", "Measuring Tools"),
         ("Nitrile exam gloves, large, 100 count", "Medline", "Gloves"),
         ("eSUN PETG filament 1.75mm green", "eSUN", "3D Printing Filament")]


def test_llm_teacher_rationale_is_embedded_and_mapped_to_items(double, make_llm, encoder):
    teacher = _llm_teacher(make_llm, encoder, ITEMS)
    double.reply(ANSWER)
    knowledge = teacher.user_knowledge({"alice": [3, 1]})
    assert knowledge.calls == 1 and not knowledge.failed
    request = double.requests[0]
    prompt = request.messages[-1]["content"]
    # history newest first, with brand and category; structured output requested with the schema
    assert prompt.index("Digital caliper") < prompt.index("eSUN PETG")
    assert "Neiko" in prompt and "Measuring Tools" in prompt
    assert request.response_format is not None
    rationale = knowledge.rationales["alice"]
    assert isinstance(rationale, Rationale)
    expected = encoder.encode([rationale.text()])[0]
    assert np.allclose(knowledge.vectors[0], expected, atol=1e-5)
    items, scores = teacher.topk(rationale, k=2, exclude=[3])
    assert items[0] == 0 and 3 not in items  # the PLA filament: recalled by the recommendation's text
    assert scores[0] >= scores[1]


def test_llm_teacher_records_invalid_answers_instead_of_inventing_knowledge(double, make_llm, encoder):
    teacher = _llm_teacher(make_llm, encoder, ITEMS)
    # two users: one malformed answer (and its re-ask), one answer violating the schema
    double.malformed("not json").malformed("still not json")
    double.answer_by(lambda body: {**ANSWER, "category_preferences": []})
    knowledge = teacher.user_knowledge({"bob": [0], "carol": [2]})
    assert set(knowledge.failed) == {"bob", "carol"} and not knowledge.rationales
    assert np.all(knowledge.vectors == 0)
    with pytest.raises(InvalidInputError) as e:
        teacher.messages([])
    assert e.value.field == "history"
    with pytest.raises(InvalidInputError) as e:
        teacher.messages([99])
    assert e.value.field == "history"


# --- seed users ---------------------------------------------------------------------------------------
def test_seeds_are_cluster_representatives_and_propagation_takes_the_nearest_seed():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 8, dtype=np.float32)
    embeddings = np.concatenate([c + 0.05 * rng.normal(size=(10, 8)) for c in centres]).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    seeds = choose_seeds(embeddings, 4, seed=0)
    assert sorted(s // 10 for s in seeds) == [0, 1, 2, 3]  # one seed per cluster
    knowledge = np.eye(4, dtype=np.float32)[np.argsort(seeds // 10).argsort()]  # seed of cluster c -> e_c
    knowledge = np.eye(4, dtype=np.float32)[[s // 10 for s in seeds]]
    out = propagate(embeddings, seeds, knowledge, neighbours=2, temperature=0.05)
    assert np.array_equal(out[seeds], knowledge)
    assert np.array_equal(out.argmax(1), np.arange(40) // 10)  # every user takes its own cluster's seed
    # a larger temperature mixes neighbouring seeds more
    soft = propagate(embeddings, seeds, knowledge, neighbours=2, temperature=10.0)
    others = np.setdiff1d(np.arange(40), seeds)
    assert soft[others].max(1).mean() < out[others].max(1).mean()
    with pytest.raises(InvalidInputError) as e:
        choose_seeds(embeddings, 41)
    assert e.value.field == "n_seeds"


def test_seed_user_knowledge_counts_calls_and_history_embeddings_weigh_recent_items():
    vectors = np.eye(3, dtype=np.float32)
    emb = history_embeddings([[0, 1], [1, 0]], vectors, decay=0.5)
    assert emb[0, 1] > emb[0, 0] and emb[1, 0] > emb[1, 1]  # the newest item weighs most
    histories = [[0], [0, 0], [1], [1, 1], [2], [2, 2]]
    called = []

    def knowledge_of(rows):
        called.extend(rows.tolist())
        return vectors[[histories[r][0] for r in rows]]

    result = seed_user_knowledge(histories, vectors, knowledge_of, n_seeds=3, seed=0)
    assert result.teacher_calls == 3 == len(called) and result.calls_saved == 3 and result.saved_fraction == 0.5
    assert np.allclose(result.vectors, vectors[[h[0] for h in histories]], atol=1e-5)


def test_evaluate_seed_users_with_every_user_a_seed_loses_nothing(cyclic):
    data, sequences = cyclic
    torch.manual_seed(0)
    teacher = TextTeacher(data.n_items, dim=16, max_len=10)
    teacher.item_vectors.copy_(torch.nn.functional.normalize(torch.randn(data.n_items, 16), dim=-1))
    teacher.eval()
    unique = list({tuple(s[:-1]): s for s in sequences}.values())[:30]  # distinct histories
    valid = _valid(unique)
    report = evaluate_seed_users(teacher, valid, n_seeds=30)
    assert report["calls_saved"] == 0 and report["all_users"] == report["seed_propagated"]
    fewer = evaluate_seed_users(teacher, valid, n_seeds=5)
    assert fewer["teacher_calls"] <= 5 and fewer["calls_saved"] >= 25
    assert json.dumps(fewer)  # JSON-ready for the CLI
