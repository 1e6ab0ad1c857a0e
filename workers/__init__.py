"""workers: the Celery app (``workers.app``) and its thin tasks (``workers.tasks``).

Start a worker with ``celery -A workers.app worker``; tasks delegate to ``kg_builder``.
"""
