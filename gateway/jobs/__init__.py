"""Asynchronous jobs (``/v1/jobs``, docs/jobs.md): uploads checked at submit, pipelines registered
by job type, run on Celery workers (or in process without a broker), OCR in Korean and English."""
