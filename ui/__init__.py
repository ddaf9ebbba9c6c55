"""The Gradio chat page (issue 5) lives here; it imports from ``rag`` only."""
