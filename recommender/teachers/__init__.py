"""Teachers for distillation (issue 12; DESIGN 4.7).

* :mod:`recommender.teachers.text_teacher`: the language-model teacher that runs here (MiniLM item
  text, fine-tuned; a Transformer over the history's text vectors), registered as ``text-teacher``.
* :mod:`recommender.teachers.llm_teacher`: chain-of-thought rationales from an OpenAI-compatible LLM,
  embedded into user knowledge vectors (no LLM runs on the development machines).
* :mod:`recommender.teachers.seed_users`: rationales for a clustered seed set of users only; every
  other user takes its nearest seeds' knowledge.
"""

from .text_teacher import TEACHER_NAME, TextTeacher, train_text_teacher

__all__ = ["TEACHER_NAME", "TextTeacher", "train_text_teacher"]
