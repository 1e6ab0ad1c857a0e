"""``/v1/recommendations``: students trained here on a tiny synthetic RecBole folder, saved under the
app's home, answered through the API (round trip against ``recommender.recommend``), and the
404 / 422 / 409 cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.data import load_rec_data
from recommender.recommend import recommend
from recommender.serving import ModelCache
from recommender.store import RecommenderStore
from recommender.train import train_student

N_ITEMS, N_USERS = 80, 50
DATASET = "amazon18_scientific"


def write_scientific(root: Path) -> Path:
    """``root/rec/amazon18_scientific`` in RecBole's atomic format: users walk a cycle of items."""
    folder = root / "rec" / DATASET
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    asins = [f"B{i:09d}" for i in range(N_ITEMS)]
    (folder / "Scientific.item2index").write_text("".join(f"{a}\t{i}\n" for i, a in enumerate(asins)))
    (folder / "Scientific.user2index").write_text("".join(f"U{u}\t{u}\n" for u in range(N_USERS)))
    (folder / "Scientific.text").write_text("item_id:token\ttext:token_seq\n" + "".join(
        f"{a}\tGadget {i}. Lab. Brand{i % 4}. \n" for i, a in enumerate(asins)))
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    train_rows, valid_rows = [], []
    for u in range(N_USERS):
        length, start = int(rng.integers(4, 9)), int(rng.integers(N_ITEMS))
        seq = [str((start + j) % N_ITEMS) for j in range(length + 1)]
        train, valid = seq[:length], seq[length]
        for end in range(len(train) - 1, 0, -1):
            train_rows.append(f"{u}\t{' '.join(train[:end])}\t{train[end]}\n")
        valid_rows.append(f"{u}\t{' '.join(train)}\t{valid}\n")
    (folder / "Scientific.train.inter").write_text(header + "".join(train_rows))
    (folder / "Scientific.valid.inter").write_text(header + "".join(valid_rows))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data folder and a home with two saved students: sasrec (ID only, 2 versions) and gru4rec
    (with a random knowledge matrix)."""
    root = write_scientific(tmp_path_factory.mktemp("data"))
    home = tmp_path_factory.mktemp("home")
    data = load_rec_data(DATASET, root)
    store = RecommenderStore(root=home / "recommenders")
    knowledge = np.random.default_rng(0).normal(size=(data.n_items, 8)).astype(np.float32)
    for name, model, matrix, epochs in (("sas", "sasrec", None, 2), ("sas", "sasrec", None, 3),
                                        ("gru", "gru4rec", knowledge, 3)):
        result = train_student(data=data, model=model, knowledge=matrix, knowledge_spec="random" if matrix is not None
                               else "none", epochs=epochs, holdout_fraction=0.0, max_len=10, seed=0)
        store.save(name, result.model, item_ids=data.item_ids, dataset=DATASET,
                   knowledge="random" if matrix is not None else "none", train_config=result.config,
                   metrics=result.metrics)
    return {"root": root, "home": home, "data": data, "store": store}


@pytest.fixture
def api(make_client, trained):
    return make_client(home=trained["home"], data_dir=trained["root"])


def _items(body: dict) -> list[str]:
    return [i["item_id"] for i in body["items"]]


@pytest.mark.parametrize("name,version", [("sas", 1), ("sas", 2), ("gru", 1)])
def test_every_saved_model_answers_like_recommend(api, trained, name, version):
    history = ["3", "4", "5", "6"]
    response = api.post("/v1/recommendations", json={"history": history, "k": 7, "model": name, "version": version})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["version"], body["dataset"]) == (name, version, DATASET)
    assert body["student"] == {"sas": "sasrec", "gru": "gru4rec"}[name]
    assert body["source"] == "history" and body["history_length"] == 4 and body["exclude_seen"] is True
    expected = recommend(trained["store"].load(name, version), history, k=7)
    assert _items(body) == expected["items"]
    np.testing.assert_allclose([i["score"] for i in body["items"]], expected["scores"], atol=1e-4)
    assert not set(_items(body)) & set(history)
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_default_model_is_the_latest_saved_and_the_setting_overrides_it(make_client, trained):
    latest = make_client(home=trained["home"], data_dir=trained["root"])
    body = latest.post("/v1/recommendations", json={"history": ["1", "2"]}).json()
    assert (body["model"], body["version"]) == ("gru", 1) and len(body["items"]) == 10
    pinned = make_client(home=trained["home"], data_dir=trained["root"], rec_model="sas:1")
    body = pinned.post("/v1/recommendations", json={"history": ["1", "2"]}).json()
    assert (body["model"], body["version"]) == ("sas", 1)
    named = make_client(home=trained["home"], data_dir=trained["root"], rec_model="sas")
    assert named.get("/v1/recommendations/7").json()["version"] == 2


def test_known_user_uses_their_history_get_and_post_agree(api, trained):
    response = api.get("/v1/recommendations/7?k=5&model=sas")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "user" and body["user_id"] == "7"
    data = trained["data"]
    valid = data.evaluation("valid")
    user_items = [data.item_ids[i] for i in data.train["7"]] + [data.item_ids[valid.targets[valid.users.index("7")]]]
    assert body["history_length"] == len(user_items)
    post = api.post("/v1/recommendations", json={"history": user_items, "k": 5, "model": "sas"}).json()
    assert _items(post) == _items(body)
    also = api.post("/v1/recommendations", json={"user_id": "7", "k": 5, "model": "sas"}).json()
    assert _items(also) == _items(body) and also["source"] == "user"
    kept = api.get("/v1/recommendations/7?k=80&exclude_seen=false&model=sas").json()
    assert len(kept["items"]) == 80 and set(user_items) <= set(_items(kept))
    everything = api.get("/v1/recommendations/7?k=100&model=sas").json()  # k is capped by what is left
    assert len(everything["items"]) == N_ITEMS - len(set(user_items))


def test_unknown_user_is_404_naming_it_or_cold_start_from_a_history(api):
    response = api.get("/v1/recommendations/nobody")
    assert response.status_code == 404 and "user_id 'nobody'" in response.json()["detail"]
    response = api.post("/v1/recommendations", json={"user_id": "nobody"})
    assert response.status_code == 404 and "user_id" in response.json()["detail"]
    response = api.post("/v1/recommendations", json={"user_id": "nobody", "history": ["10", "11"], "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "history" and body["history_length"] == 2 and len(body["items"]) == 3


def test_unknown_history_items_are_422_naming_them(api):
    response = api.post("/v1/recommendations", json={"history": ["3", "B-nope", "4", "zzz"]})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "history"]
    assert "'B-nope'" in detail["msg"] and "'zzz'" in detail["msg"] and "'3'" not in detail["msg"]
    # even for a known user: a history the model cannot read is refused
    response = api.post("/v1/recommendations", json={"user_id": "7", "history": ["nope"]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "history"]


@pytest.mark.parametrize("body,field", [
    ({}, "user_id"),
    ({"history": []}, "history"),
    ({"history": ["1"], "k": 0}, "k"),
    ({"history": ["1"], "k": 101}, "k"),
    ({"history": ["1"] * 1001}, "history"),
    ({"history": ["1"], "model": "../x"}, "model"),
    ({"history": ["1"], "version": 0}, "version"),
])
def test_bad_requests_are_422_naming_the_field(api, body, field):
    response = api.post("/v1/recommendations", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


def test_bad_query_parameters_are_422(api):
    response = api.get("/v1/recommendations/7?k=1000")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "k"]


def test_missing_named_model_or_version_is_404_naming_it(api):
    response = api.post("/v1/recommendations", json={"history": ["1"], "model": "nothing"})
    assert response.status_code == 404
    assert "'nothing'" in response.json()["detail"] and "kgforge rec train" in response.json()["detail"]
    response = api.get("/v1/recommendations/7?model=sas&version=9")
    assert response.status_code == 404 and "version 9" in response.json()["detail"]


def test_no_saved_model_is_409_with_the_training_command(make_client, trained, tmp_path):
    empty = make_client(home=tmp_path / "empty-home", data_dir=trained["root"])
    for response in (empty.post("/v1/recommendations", json={"history": ["1"]}),
                     empty.get("/v1/recommendations/7")):
        assert response.status_code == 409
        assert "kgforge rec train" in response.json()["detail"]
    missing = make_client(home=trained["home"], data_dir=trained["root"], rec_model="gone")
    response = missing.post("/v1/recommendations", json={"history": ["1"]})
    assert response.status_code == 409 and "KGFORGE_REC_MODEL='gone'" in response.json()["detail"]


def test_users_need_the_dataset_on_the_server(make_client, trained, tmp_path):
    client = make_client(home=trained["home"], data_dir=tmp_path / "no-data")
    response = client.get("/v1/recommendations/7?model=sas")
    assert response.status_code == 503 and "KGFORGE_DATA_DIR" in response.json()["detail"]
    # a history still answers, with or without a user id
    response = client.post("/v1/recommendations", json={"user_id": "7", "history": ["1", "2"], "model": "sas"})
    assert response.status_code == 200 and response.json()["source"] == "history"


def test_models_load_once_per_process_and_new_versions_are_picked_up(api, trained, monkeypatch):
    api.post("/v1/recommendations", json={"history": ["1"], "model": "sas", "version": 1})
    cache: ModelCache = api.app.state.recommenders
    loads = []
    original = cache.store.load
    monkeypatch.setattr(cache.store, "load", lambda *a: loads.append(a) or original(*a))
    first = cache.get("sas", 1)
    for _ in range(5):
        assert api.post("/v1/recommendations", json={"history": ["1"], "model": "sas", "version": 1}).status_code == 200
    assert cache.get("sas", 1) is first and loads == []
    # the served item vectors are the student's final item table, computed once
    assert first.item_vectors.shape == (N_ITEMS, first.model.hidden_size)
    # a new version of the default model is served once the latest is looked up again
    cache.refresh_s = 0.0
    before = api.post("/v1/recommendations", json={"history": ["1"], "model": "sas"}).json()["version"]
    data = trained["data"]
    result = train_student(data=data, model="sasrec", epochs=1, holdout_fraction=0.0, max_len=10, seed=1)
    store = RecommenderStore(root=Path(trained["home"]) / "recommenders")
    meta = store.save("sas", result.model, item_ids=data.item_ids, dataset=DATASET)
    try:
        after = api.post("/v1/recommendations", json={"history": ["1"], "model": "sas"}).json()["version"]
        assert (before, after) == (2, meta.version)
    finally:
        import shutil

        shutil.rmtree(Path(trained["home"]) / "recommenders" / "sas" / f"v{meta.version}")


def test_a_read_key_is_needed_outside_development(production, trained):
    client = production(home=trained["home"], data_dir=trained["root"], api_read_keys="read-only-key-0123456789")
    assert client.post("/v1/recommendations", json={"history": ["1"]}).status_code == 401
    response = client.post("/v1/recommendations", json={"history": ["1"], "model": "sas"},
                           headers={"Authorization": "Bearer read-only-key-0123456789"})
    assert response.status_code == 200, response.text


def test_generated_requests_never_get_a_server_error(api):
    """schemathesis over the two routes, with saved models present (the suite-wide fuzz test runs
    on a home without any, where every answer is 409)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    operations = [op for op in (r.ok() for r in schema.get_all_operations()) if op.path.startswith("/v1/recommendations")]
    assert len(operations) == 2
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case):
                response = case.call()
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {case.query} {case.body!r:.200} -> "
                                    f"{response.status_code} {response.text[:200]}")

            run()
    assert not failures, "\n".join(failures[:10])
