"""The Gradio chat page; it imports from ``rag`` (and ``ingest`` for uploads) only through their APIs."""
