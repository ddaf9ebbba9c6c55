"""The eval suite: gold Q&A pairs and a runner that scores the whole pipeline."""
