"""The Celery side of jobs: the app (the ``prism.jobs`` queue, ``GATEWAY_JOBS_QUEUE``, on RabbitMQ
with a dead-letter queue ``prism.jobs.dead``), the ``prism.jobs.run`` task and the dispatcher.

Start workers with ``make worker`` (``celery -A gateway.workers.jobs worker -Q prism.jobs``).
Delivery guarantees: ``acks_late`` (a message is acknowledged only when its task has ended) with
``reject_on_worker_lost`` (a worker child that dies gives its message back) and prefetch 1; a broker
connection that drops (the whole worker SIGKILLed) returns its unacknowledged messages too. The job
itself is fenced by its lease in the database (``executor.py``), so a redelivered message can
never run a job twice at once or finish it twice: it waits (``retry`` with the lease's remaining
time) and then resumes the job from its last checkpoint, or finds it finished and does nothing.
A task that fails with an error other than the pipeline's (database away, hard time limit) is
retried with exponential backoff up to ``GATEWAY_JOBS_MAX_ATTEMPTS`` times, then its job is failed
and the message rejected into the dead-letter queue.
"""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from gateway.config.settings import Settings

TASK = "prism.jobs.run"


def queues(name: str) -> list[Queue]:
    """The work queue ``name`` (``GATEWAY_JOBS_QUEUE``) and its dead-letter queue ``name.dead``."""
    dead, dlx = f"{name}.dead", f"{name}.dlx"
    return [
        Queue(
            name,
            Exchange(name, type="direct"),
            routing_key=name,
            queue_arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": dead},
        ),
        Queue(dead, Exchange(dlx, type="direct"), routing_key=dead),
    ]


def create_celery(settings: Settings) -> Celery:
    if not settings.jobs_broker_url:
        raise ValueError("GATEWAY_JOBS_BROKER_URL is not set")
    app = Celery("prism", broker=settings.jobs_broker_url, set_as_current=False)
    app.conf.update(
        task_queues=queues(settings.jobs_queue),
        task_default_queue=settings.jobs_queue,
        task_default_exchange=settings.jobs_queue,
        task_default_routing_key=settings.jobs_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=False,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_time_limit=settings.jobs_time_limit_s + 60,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"confirm_publish": True},
    )
    return app


def declare_queues(app: Celery) -> None:
    """Declare both queues (the dead-letter one is not consumed, so no worker would declare it)."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in app.conf.task_queues:
            queue(channel).declare()


class CeleryDispatcher:
    """The gateway's side: publish ``prism.jobs.run(job_id)`` (a blocking publish, in a thread)."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._declared = False

    def _publish(self, job_id: str) -> Any:
        if not self._declared:
            declare_queues(self._app)
            self._declared = True
        queue = self._app.conf.task_default_queue
        return self._app.send_task(TASK, args=[job_id], queue=queue, routing_key=queue)

    async def enqueue(self, job_id: str) -> None:
        await asyncio.to_thread(self._publish, job_id)
