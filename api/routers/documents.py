"""``/v1/documents``: add documents to a domain's retrieval corpus.

Documents go into the retriever saved with the domain's utility model, which every job of that
domain loads (:mod:`kg_builder.retrieval.documents` explains the choice): they are retrievable by
every job that starts after the answer. Ids are stored as ``api:<id>`` so a posted document can
never replace a dataset's; posting an id again replaces that document. A domain without a
trained utility model answers 409 with the command that trains it.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep, WriteAccess
from api.routers.jobs import WRITE_RESPONSES
from api.schemas import DocumentsCreate, DocumentsPublic, ErrorPublic
from kg_builder.retrieval.corpus import Document
from kg_builder.retrieval.documents import API_SOURCE, add_documents, api_document_id

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.post(
    "",
    response_model=DocumentsPublic,
    dependencies=[WriteAccess],
    responses={**WRITE_RESPONSES, 409: {"model": ErrorPublic, "description": "No utility model yet."}},
)
def post_documents(body: DocumentsCreate, services: ServicesDep) -> DocumentsPublic:
    """Add (or replace) documents; returns the stored ids and the corpus size."""
    documents = [
        Document(
            id=api_document_id(d.id), text=d.text, title=d.title, source=API_SOURCE, entity_id=d.entity_id
        )
        for d in body.documents
    ]
    result = add_documents(services.settings, body.domain, documents, encoder=lambda: services.encoder)
    return DocumentsPublic(domain=body.domain, **result.model_dump())
