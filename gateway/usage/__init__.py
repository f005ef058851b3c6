"""Usage records: one per /v1 request, written in durable batches off the request path."""
