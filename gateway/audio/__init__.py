"""Speech-to-text (issue #23 item 4, docs/audio.md): audio inspection, transcription providers and
the use case behind ``POST /v1/audio/transcriptions`` and the ``transcription`` job type."""
