"""Which broker for the jobs queue: RabbitMQ or Redis under Celery's transport (kombu), measured.

For each broker: publish N small messages (confirmed publishes), consume them with manual acks
(prefetch 1, as the workers do), and report publish rate and round-trip latency; then the number
that decides: a consumer takes a message and its connection dies without acking (a SIGKILLed
worker) — how long until another consumer gets the message again?

    python scripts/bench_queue.py [--messages 500] [--redis redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
import uuid

from kombu import Connection, Exchange, Queue


def measure(url: str, messages: int, visibility_timeout: float | None) -> dict[str, float | str]:
    name = f"bench.{uuid.uuid4().hex[:8]}"
    options = {"confirm_publish": True} if url.startswith("amqp") else {}
    if visibility_timeout is not None:
        options["visibility_timeout"] = visibility_timeout
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name, auto_delete=False)
    latencies: list[float] = []
    with Connection(url, transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        started = time.perf_counter()
        for _ in range(messages):
            producer.publish(
                {"t": time.perf_counter()}, exchange=queue.exchange, routing_key=name, declare=[queue]
            )
        publish_s = time.perf_counter() - started
        simple = conn.SimpleQueue(queue)
        consumed_started = time.perf_counter()
        for _ in range(messages):
            message = simple.get(timeout=30)
            latencies.append(time.perf_counter() - message.payload["t"])
            message.ack()
        consume_s = time.perf_counter() - consumed_started
        simple.close()
        # redelivery after a consumer dies holding an unacked message
        producer.publish({"t": 0}, exchange=queue.exchange, routing_key=name, declare=[queue])
    # a consumer process takes the message, then is SIGKILLed (no close, no ack: a dead worker)
    code = (
        "import sys, time\nfrom kombu import Connection, Exchange, Queue\n"
        f"q = Queue({name!r}, Exchange({name!r}, type='direct'), routing_key={name!r}, auto_delete=False)\n"
        f"c = Connection({url!r}, transport_options={options!r})\n"
        "m = c.SimpleQueue(q).get(timeout=10)\nprint('taken', flush=True)\ntime.sleep(600)\n"
    )
    dying = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert dying.stdout is not None and dying.stdout.readline().strip() == b"taken"
    dying.send_signal(signal.SIGKILL)
    dying.wait()
    died = time.perf_counter()
    redelivery: float | str = "none within 40 s"
    with Connection(url, transport_options=options) as conn:
        survivor = conn.SimpleQueue(queue)
        deadline = died + 40
        while time.perf_counter() < deadline:
            try:
                message = survivor.get(timeout=1)
            except survivor.Empty:
                continue
            message.ack()
            redelivery = round(time.perf_counter() - died, 2)
            break
        survivor.clear()
        survivor.close()
        queue(conn.default_channel).delete()
    return {
        "publish_per_s": round(messages / publish_s),
        "consume_per_s": round(messages / consume_s),
        "p50_latency_ms": round(statistics.median(latencies) * 1000, 1),
        "redelivery_after_consumer_death_s": redelivery,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    print(
        "| broker | publish/s | consume+ack/s | p50 time in queue, all published first (ms) "
        "| redelivery after consumer death |"
    )
    print("| --- | ---: | ---: | ---: | --- |")
    for label, url, visibility in (
        ("RabbitMQ", args.amqp, None),
        ("Redis (visibility 10 s)", args.redis, 10.0),
    ):
        r = measure(url, args.messages, visibility)
        print(
            f"| {label} | {r['publish_per_s']} | {r['consume_per_s']} | {r['p50_latency_ms']} "
            f"| {r['redelivery_after_consumer_death_s']} s |"
        )


if __name__ == "__main__":
    main()
