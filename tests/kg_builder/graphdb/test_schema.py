import pytest

from kg_builder.errors import InvalidInputError
from kg_builder.graphdb import schema


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("isa", "ISA"),
        ("_member_of_domain_usage", "MEMBER_OF_DOMAIN_USAGE"),
        ("/film/film/genre", "FILM_FILM_GENRE"),
        ("/a/b./c/d", "A_B_C_D"),
        ("is a", "IS_A"),
        ("has `part`", "HAS_PART"),
        ("3d printed", "R_3D_PRINTED"),
    ],
)
def test_relation_type_for(name, expected):
    assert schema.relation_type_for(name) == expected


@pytest.mark.parametrize("bad", ["", "   ", "```", "//", None])
def test_relation_type_for_rejects_names_without_word_characters(bad):
    with pytest.raises(InvalidInputError) as err:
        schema.relation_type_for(bad)
    assert err.value.field == "relation"


@pytest.mark.parametrize("bad", ["IS A", "A`B", "X) DETACH DELETE n //", "1X", ""])
def test_rel_type_is_strict(bad):
    with pytest.raises(InvalidInputError) as err:
        schema.rel_type(bad)
    assert err.value.field == "type"


def test_node_label_whitelist():
    assert schema.node_label("Entity") == "Entity"
    with pytest.raises(InvalidInputError, match="Entity, Item"):
        schema.node_label("Person")


@pytest.mark.parametrize(
    ("a", "b"),
    [("Acquired Abnormality", "acquired-abnormality"), ("  HP  ", "hp"), ("Café", "CAFÉ"), ("A.B.C", "a b c")],
)
def test_normalize_name_ignores_case_punctuation_and_spacing(a, b):
    assert schema.normalize_name(a) == schema.normalize_name(b)


def test_slug_is_stable():
    assert schema.slug("Office Products & Supplies") == "office-products-supplies"


def test_key_part_is_bounded_and_deterministic():
    long_a = "Abrasive & Finishing Products " + "grit " * 100 + "A"
    long_b = "Abrasive & Finishing Products " + "grit " * 100 + "B"
    assert len(schema.key_part(long_a)) <= 64
    assert schema.key_part(long_a) == schema.key_part(long_a)
    assert schema.key_part(long_a) != schema.key_part(long_b)
    assert schema.key_part("Office Products") == "office-products"
