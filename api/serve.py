"""``python -m api.serve``: the API under uvicorn with ``KGFORGE_API_WORKERS`` processes.

What ``kgforge up`` and the image's default command run (compose may too). Each process builds its
own app (``api.main:app``): its own graph-driver pool, threadpool and rate-limit buckets, and its own
job reaper thread (a second message for a job is harmless, see ``workers/reaper.py``). uvicorn's
parent process only supervises: it restarts a worker process that dies, and stops them all on
SIGINT/SIGTERM.

Why several processes: the routes are sync functions run in each process's threadpool, and the
graph driver, the JSON encoding and the request parsing are Python code under one GIL, so one
process tops out at what one core does, however many clients wait. ``KGFORGE_API_WORKERS=N`` (default
2) serves up to N cores. Each process holds its own models when a route loads them (the text encoder
for ``/v1/embeddings/{set}/search`` by text): N processes, N copies.

Example::

    KGFORGE_API_WORKERS=4 python -m api.serve --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import argparse

import uvicorn

from kg_builder.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m api.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=settings.api_host, help="default KGFORGE_API_HOST")
    parser.add_argument("--port", type=int, default=settings.api_port, help="default KGFORGE_API_PORT")
    parser.add_argument("--workers", type=int, default=settings.api_workers, help="default KGFORGE_API_WORKERS")
    parser.add_argument("--no-access-log", action="store_true", help="no line per request")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    uvicorn.run("api.main:app", host=args.host, port=args.port, workers=args.workers,
                access_log=not args.no_access_log, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
