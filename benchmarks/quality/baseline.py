"""The reference the ranking work is measured against, built in memory by the runner.

Every indexed file is cut into 60-line windows overlapping by 20 lines; BM25 (k1 1.2, b 0.75,
over the same code-aware tokens as the index) and MiniLM cosine rank the windows, and RRF (k 60)
fuses the two rankings. Window vectors are cached under the work directory by text hash.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from coderag_assets.embedding import Embedder
from coderag_assets.search import rrf_fuse
from coderag_assets.tokens import code_tokens

WINDOW_LINES = 60
WINDOW_OVERLAP_LINES = 20
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True, slots=True)
class Window:
    path: str
    start_line: int
    end_line: int
    text: str


def line_windows(path: str, text: str) -> list[Window]:
    lines = text.splitlines()
    step = WINDOW_LINES - WINDOW_OVERLAP_LINES
    windows = []
    for start in range(0, max(len(lines), 1), step):
        chunk_lines = lines[start : start + WINDOW_LINES]
        if "".join(chunk_lines).strip():
            windows.append(
                Window(path, start + 1, start + len(chunk_lines), "\n".join(chunk_lines))
            )
        if start + WINDOW_LINES >= len(lines):
            break
    return windows


class WindowIndex:
    """BM25, vector and RRF rankings over the line windows of a set of files."""

    def __init__(self, files: dict[str, str], embedder: Embedder, cache_dir: Path):
        self.windows = [w for path, text in sorted(files.items()) for w in line_windows(path, text)]
        vocabulary: dict[str, int] = {}
        rows, cols, counts = [], [], []
        lengths = []
        for row, window in enumerate(self.windows):
            tokens = code_tokens(f"{window.path} {window.text}")
            lengths.append(len(tokens))
            for token, count in Counter(tokens).items():
                rows.append(row)
                cols.append(vocabulary.setdefault(token, len(vocabulary)))
                counts.append(count)
        self.vocabulary = vocabulary
        tf = sparse.csr_matrix(
            (np.array(counts, dtype=np.float32), (rows, cols)),
            shape=(len(self.windows), len(vocabulary)),
        )
        doc_len = np.array(lengths, dtype=np.float32)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * doc_len / max(doc_len.mean(), 1.0))
        tf = tf.tocoo()
        weighted = tf.data * (BM25_K1 + 1) / (tf.data + norm[tf.row])
        document_frequency = np.bincount(tf.col, minlength=len(vocabulary))
        n = len(self.windows)
        self.idf = np.log(1 + (n - document_frequency + 0.5) / (document_frequency + 0.5))
        self.term_matrix = sparse.csc_matrix((weighted, (tf.row, tf.col)), shape=tf.shape)
        self.matrix = self._vectors(embedder, cache_dir)

    def _vectors(self, embedder: Embedder, cache_dir: Path) -> np.ndarray:
        digest = hashlib.sha256(
            ("\0".join(w.text for w in self.windows) + embedder.model_id).encode()
        ).hexdigest()[:16]
        cache_file = cache_dir / f"windows-{digest}.npy"
        if cache_file.exists():
            return np.load(cache_file)
        vectors = embedder.embed([w.text for w in self.windows])
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(cache_file, vectors)
        return vectors

    def bm25(self, query: str, depth: int) -> list[int]:
        terms = [self.vocabulary[t] for t in set(code_tokens(query)) if t in self.vocabulary]
        if not terms:
            return []
        scores = self.term_matrix[:, terms] @ self.idf[terms]
        order = np.argsort(-scores, kind="stable")[:depth]
        return [int(row) for row in order if scores[row] > 0]

    def vector(self, query_vector: np.ndarray, depth: int) -> list[int]:
        scores = self.matrix @ query_vector
        return [int(row) for row in np.argsort(-scores, kind="stable")[:depth]]

    def rankings(self, query: str, query_vector: np.ndarray, depth: int) -> dict[str, list[int]]:
        bm25_rows = self.bm25(query, 100)
        vector_rows = self.vector(query_vector, 100)
        fused = [row for row, _ in rrf_fuse([vector_rows, bm25_rows])]
        return {"bm25": bm25_rows[:depth], "vector": vector_rows[:depth], "hybrid": fused[:depth]}
