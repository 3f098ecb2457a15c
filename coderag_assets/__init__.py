"""CodeRAG: local code search built as a Dagster asset pipeline."""
