"""The jobs queue as declared on RabbitMQ: a message rejected without requeue (what the task does
once it exhausted its retries, or what Celery does after a hard time limit) lands in the
dead-letter queue ``<name>.dead``; nothing is left in the work queue."""

from __future__ import annotations

import socket
import uuid

import pytest
from kombu import Connection

from gateway.config.settings import Settings
from gateway.jobs.celery_app import create_celery, declare_queues

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _rabbit_up(), reason="RabbitMQ is not running on 127.0.0.1:5672")
def test_a_rejected_job_message_is_dead_lettered() -> None:
    name = f"prism.jobs.test.{uuid.uuid4().hex[:8]}"
    app = create_celery(Settings(jobs_broker_url=BROKER, jobs_queue=name))
    declare_queues(app)
    work, dead = app.conf.task_queues
    with Connection(BROKER) as conn:
        consumer = conn.SimpleQueue(work)
        letters = conn.SimpleQueue(dead)
        try:
            conn.Producer().publish({"job": "x"}, exchange=work.exchange, routing_key=name)
            message = consumer.get(timeout=10)
            message.reject(requeue=False)
            lettered = letters.get(timeout=10)
            assert lettered.payload == {"job": "x"}
            assert lettered.headers["x-death"][0]["reason"] == "rejected"
            lettered.ack()
            assert work(conn.default_channel).queue_declare(passive=True).message_count == 0
        finally:
            consumer.close()
            letters.close()
    with Connection(BROKER) as conn:
        for queue in (work, dead):
            queue(conn.default_channel).delete()
            queue.exchange(conn.default_channel).delete()
