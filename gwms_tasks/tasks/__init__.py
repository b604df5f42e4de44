"""The factory's Celery tasks (registered by name, see gwms_tasks/queues.py TaskName).

Importing this package registers them all: workers include it (celery_app.DEFAULT_INCLUDE).
"""

from gwms_tasks.tasks import factory, user

__all__ = ["factory", "user"]
