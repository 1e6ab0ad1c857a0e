"""api: the FastAPI service (issue 4). ``api.main:app`` is the ASGI app; one router per resource in
``api/routers``; dependencies in ``api/deps.py``; request and response schemas in ``api/schemas.py``.

Start it with ``uvicorn api.main:app`` (settings from ``KGFORGE_*``).
"""
