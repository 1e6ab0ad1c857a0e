"""Target generation (DESIGN 4.3): several generators propose targets T for (S, R); votes count.

==========  ===================================================================================
graph       ComplEx-N3 link prediction (:mod:`kg_builder.models.structural`): S must be an entity
            the model was trained on; ranks every known entity.
dense       the SimKGC-style bi-encoder (:mod:`kg_builder.models.dense`): embeds "S text, R text"
            and retrieves the nearest entity texts; works for an S the graph has never seen.
corpus      entities named in S's retrieved documents (the utility-ranked ones), kept when the
            relation already points at them elsewhere in the graph (its range); score = document
            utility x the entity's share of the relation's range. Evidence = the document ids.
llm         the ``entity_generation`` prompt (factorisation over structural, descriptive and
            inherited knowledge), ``samples`` independent answers; names are matched to known
            entities by normalised name, the rest become new entities at resolution.
==========  ===================================================================================

Every proposal excludes S itself and, with ``skip_known``, targets S already has for R.
:func:`vote` groups the proposals of all generators (and LLM samples) by target; the number of
distinct voters is the consistency signal the confidence model uses.

The package holds one module per generator, each registered by name (:data:`REGISTRY`,
:func:`build_generator`), and :mod:`.base` with what they share.
"""

from .base import REGISTRY, Generator, GeneratorContext, Proposal, Voted, build_generator, register, vote
from .corpus import CorpusGenerator
from .dense import DenseGenerator
from .graph import GraphGenerator
from .llm import LLMGenerator

GENERATORS = ("graph", "dense", "corpus", "llm")
assert set(GENERATORS) == set(REGISTRY), "every generator module registers itself"

__all__ = ["CorpusGenerator", "DenseGenerator", "GENERATORS", "Generator", "GeneratorContext", "GraphGenerator",
           "LLMGenerator", "Proposal", "REGISTRY", "Voted", "build_generator", "register", "vote"]
