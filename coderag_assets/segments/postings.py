"""BM25 postings of one segment: building them from chunk token streams, reading them per
query term, and Okapi BM25 with global statistics summed over segments (`bm25_scores`).

Each segment stores raw term counts, not scores, so independently built segments combine into
exactly the scores of a single-segment build.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from coderag_assets.features import (
    name_tokens,
)
from coderag_assets.segments.layout import (
    NAME_TF_FILE,
    OFFSETS_FILE,
    ROWS_FILE,
    TERMS_FILE,
    TF_FILE,
)
from coderag_assets.tokens import stem

POSTINGS_BATCH_ROWS = 2048  # chunks tokenised at once while building postings
STEM_CACHE_SIZE = 1 << 16  # distinct tokens whose stem a process remembers (~8 MB at most)
BM25_K1 = 1.2
BM25_B = 0.75


def term_key(terms: np.ndarray | _NpyFile, term: str) -> str | bytes:
    """`term` as the vocabulary `terms` stores it: UTF-8 bytes (dtype `S`, segment format 4:
    a quarter of the fixed-width UTF-32 size; UTF-8 sorts in code point order, so the sorted
    vocabulary stays sorted) or str (dtype `U`, segments written before)."""
    return term.encode() if terms.dtype.kind == "S" else term


def vocabulary_array(vocabulary: Sequence[str]) -> np.ndarray:
    """The sorted `vocabulary` as a fixed-width UTF-8 byte-string array (see `term_key`)."""
    if not vocabulary:
        return np.zeros(0, dtype="S1")
    return np.array([term.encode() for term in vocabulary], dtype=np.bytes_)


@dataclass(frozen=True)
class Postings:
    """Term counts of one segment in CSC layout: term `terms[i]` occurs in chunk rows
    `rows[offsets[i]:offsets[i+1]]`, `tf` times in its token stream and `name_tf` times in its
    definition's name. `body_len`/`name_len` are per-chunk token counts (BM25 lengths)."""

    terms: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    name_tf: np.ndarray
    body_len: np.ndarray
    name_len: np.ndarray

    def lookup(self, term: str) -> slice | None:
        """The posting range of `term`, None when the segment does not have it."""
        key = term_key(self.terms, term)
        index = int(np.searchsorted(self.terms, key))
        if index >= len(self.terms) or self.terms[index] != key:
            return None
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def term_postings(self, where: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, tf, name_tf) of a posting range from `lookup`."""
        return self.rows[where], self.tf[where], self.name_tf[where]

    def save(self, directory: Path) -> None:
        np.save(directory / TERMS_FILE, self.terms)
        np.save(directory / OFFSETS_FILE, self.offsets)
        np.save(directory / ROWS_FILE, self.rows)
        np.save(directory / TF_FILE, self.tf)
        np.save(directory / NAME_TF_FILE, self.name_tf)


class _NpyFile:
    """A 1-d `.npy` file read by position (`os.pread`), never mapped: a read costs what it
    returns, and the pages it touched are not charged to the process."""

    def __init__(self, path: Path):
        mapped = np.load(path, mmap_mode="r")  # header only: nothing is paged in
        if mapped.ndim != 1:
            raise ValueError(f"{path.name} is not one-dimensional")
        self.dtype = mapped.dtype
        self.length = len(mapped)
        self.offset = int(mapped.offset) if isinstance(mapped, np.memmap) else 0
        del mapped
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.length

    def __del__(self) -> None:
        fd = getattr(self, "fd", None)
        if fd is not None:
            os.close(fd)

    def read(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start)
        size = self.dtype.itemsize
        data = os.pread(self.fd, count * size, self.offset + start * size)
        if len(data) != count * size:
            raise OSError(f"{self.length} entries were recorded but the file is shorter")
        return np.frombuffer(data, dtype=self.dtype)


class PostingsFile:
    """A saved segment's postings, read per query term: a term is found by binary search over
    the sorted vocabulary and its posting range (rows, tf, name_tf) is read by position
    (`_NpyFile`, three `pread` calls), so a process touches the terms it looks up, not the
    segment's postings. `offsets` (one entry per term) is held in memory.

    `mapped` (long-lived readers) maps the vocabulary, so a lookup is a
    NumPy binary search rather than about 14 `pread` calls per term and segment, which at 64
    segments was most of a warm query's time (in-process warm hybrid p50 at 400k chunks:
    33 → 28 ms; bm25: 16 → 10 ms). The posting ranges are still read by position: mapped,
    they ended up resident whole (readahead and fault-around: 220 of 250 MB at 400k chunks
    after 100 queries; `MADV_RANDOM` did not help, the kernel still maps the cached pages
    around each fault), while a range read costs what it returns and is not charged to the
    process."""

    def __init__(
        self, directory: Path, body_len: np.ndarray, name_len: np.ndarray, *, mapped: bool = False
    ):
        self.terms: _NpyFile | np.ndarray
        if mapped:
            self.terms = np.load(directory / TERMS_FILE, mmap_mode="r")
            if self.terms.ndim != 1:
                raise ValueError(f"{TERMS_FILE} is not one-dimensional")
        else:
            self.terms = _NpyFile(directory / TERMS_FILE)
        self.offsets = np.load(directory / OFFSETS_FILE)
        self.rows = _NpyFile(directory / ROWS_FILE)
        self.tf = _NpyFile(directory / TF_FILE)
        self.name_tf = _NpyFile(directory / NAME_TF_FILE)
        self.body_len = body_len
        self.name_len = name_len
        if len(self.offsets) != len(self.terms) + 1 or not (
            len(self.rows) == len(self.tf) == len(self.name_tf) == int(self.offsets[-1])
        ):
            raise ValueError("postings files disagree on their sizes")

    def lookup(self, term: str) -> slice | None:
        """The posting range of `term`, None when the segment does not have it."""
        terms = self.terms
        key = term_key(terms, term)
        if isinstance(terms, np.ndarray):
            index = int(np.searchsorted(terms, key))
            if index >= len(terms) or terms[index] != key:
                return None
            return slice(int(self.offsets[index]), int(self.offsets[index + 1]))
        low, high = 0, len(terms)
        while low < high:  # first index whose term is >= `term`
            middle = (low + high) // 2
            if terms.read(middle, middle + 1)[0] < key:
                low = middle + 1
            else:
                high = middle
        if low >= len(terms) or terms.read(low, low + 1)[0] != key:
            return None
        return slice(int(self.offsets[low]), int(self.offsets[low + 1]))

    def term_postings(self, where: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, tf, name_tf) of a posting range from `lookup`."""
        start, stop = where.start, where.stop
        return (
            self.rows.read(start, stop),
            self.tf.read(start, stop),
            self.name_tf.read(start, stop),
        )


def build_postings(
    bm25_texts: pa.Array | pa.ChunkedArray | Sequence[str],
    symbols: Sequence[str],
    *,
    stemmed: bool,
    batch_rows: int = POSTINGS_BATCH_ROWS,
) -> Postings:
    """Postings of chunks given their stored token streams (`bm25_text`, space-separated) and
    symbols; tokens sharing a stem share a term when `stemmed`. Chunks are tokenised
    `batch_rows` at a time, so memory follows the batch (token arrays) plus the postings, not
    the segment's token count."""
    size = len(symbols)
    if isinstance(bm25_texts, pa.ChunkedArray):
        texts = bm25_texts.combine_chunks()
    elif isinstance(bm25_texts, pa.Array):
        texts = bm25_texts
    else:
        texts = pa.array(list(bm25_texts), pa.string())
    term_ids: dict[str, int] = {}
    batch_terms: list[np.ndarray] = []
    batch_rows_found: list[np.ndarray] = []
    batch_tf: list[np.ndarray] = []
    batch_name_tf: list[np.ndarray] = []
    body_len = np.zeros(size, dtype=np.int32)
    name_len = np.zeros(size, dtype=np.int32)
    for first in range(0, size, max(batch_rows, 1)):
        last = min(size, first + max(batch_rows, 1))
        batch = _batch_postings(texts.slice(first, last - first), symbols[first:last], stemmed)
        ids = np.array([term_ids.setdefault(t, len(term_ids)) for t in batch.vocabulary])
        batch_terms.append(ids[batch.terms].astype(np.int64) if len(ids) else batch.terms)
        batch_rows_found.append(batch.rows + first)
        batch_tf.append(batch.tf)
        batch_name_tf.append(batch.name_tf)
        body_len[first:last] = batch.body_len
        name_len[first:last] = batch.name_len
    vocabulary = sorted(term_ids)
    rank = np.zeros(len(term_ids), dtype=np.int64)
    rank[[term_ids[term] for term in vocabulary]] = np.arange(len(vocabulary))
    terms = rank[np.concatenate(batch_terms)] if batch_terms else np.zeros(0, np.int64)
    rows = np.concatenate(batch_rows_found) if batch_rows_found else np.zeros(0, np.int64)
    order = np.lexsort((rows, terms))
    offsets = np.zeros(len(vocabulary) + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=len(vocabulary)), out=offsets[1:])
    empty = np.zeros(0, dtype=np.float32)
    return Postings(
        terms=vocabulary_array(vocabulary),
        offsets=offsets,
        rows=rows[order].astype(np.int32),
        tf=np.concatenate(batch_tf)[order] if batch_tf else empty,
        name_tf=np.concatenate(batch_name_tf)[order] if batch_name_tf else empty,
        body_len=body_len,
        name_len=name_len,
    )


_cached_stem = functools.lru_cache(maxsize=STEM_CACHE_SIZE)(stem)
"""`tokens.stem` remembered per token: a segment's batches, and every rebuild of an edited
shard in a long-lived process (`coderag watch`), stem the same few thousand tokens again."""


@dataclass(frozen=True)
class _BatchPostings:
    """Postings of a batch of chunks: `vocabulary` (its terms), and per (term, row) pair the
    index of the term in `vocabulary`, the row in the batch and the two term counts."""

    vocabulary: list[str]
    terms: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    name_tf: np.ndarray
    body_len: np.ndarray
    name_len: np.ndarray


def _batch_postings(texts: pa.Array, symbols: Sequence[str], stemmed: bool) -> _BatchPostings:
    size = len(symbols)
    split = pc.split_pattern(texts, " ")
    body_tokens = pc.list_flatten(split)
    body_rows = pc.list_parent_indices(split).to_numpy().astype(np.int64)
    keep = pc.not_equal(body_tokens, "")
    body_tokens = body_tokens.filter(keep)
    body_rows = body_rows[keep.to_numpy(zero_copy_only=False)]
    name_row_list: list[int] = []
    name_token_list: list[str] = []
    for row, symbol in enumerate(symbols):
        if symbol:
            for token in name_tokens(symbol):
                name_row_list.append(row)
                name_token_list.append(token)
    tokens = pa.concat_arrays([body_tokens, pa.array(name_token_list, pa.string())])
    rows = np.concatenate([body_rows, np.array(name_row_list, dtype=np.int64)])
    is_name = np.zeros(len(rows), dtype=bool)
    is_name[len(body_rows) :] = True
    encoded = tokens.dictionary_encode()
    token_terms = [_cached_stem(t) if stemmed else t for t in encoded.dictionary.to_pylist()]
    vocabulary = sorted(set(token_terms))
    term_id = {term: index for index, term in enumerate(vocabulary)}
    term_of_token = np.array([term_id[t] for t in token_terms], dtype=np.int64)
    terms_of_rows = (
        term_of_token[encoded.indices.to_numpy(zero_copy_only=False)]
        if len(rows)
        else (np.zeros(0, dtype=np.int64))
    )
    keys = terms_of_rows * max(size, 1) + rows
    body_keys, body_counts = np.unique(keys[~is_name], return_counts=True)
    name_keys, name_counts = np.unique(keys[is_name], return_counts=True)
    # both are sorted and distinct: their union by one sort (`np.union1d` goes through
    # NumPy 2.4's hash-based `unique`, ~30x slower on these arrays)
    all_keys = np.sort(np.concatenate((body_keys, name_keys)))
    if len(all_keys):
        all_keys = all_keys[np.concatenate(([True], all_keys[1:] != all_keys[:-1]))]
    tf = np.zeros(len(all_keys), dtype=np.float32)
    tf[np.searchsorted(all_keys, body_keys)] = body_counts
    name_tf = np.zeros(len(all_keys), dtype=np.float32)
    name_tf[np.searchsorted(all_keys, name_keys)] = name_counts
    return _BatchPostings(
        vocabulary=vocabulary,
        terms=all_keys // max(size, 1),
        rows=all_keys % max(size, 1),
        tf=tf,
        name_tf=name_tf,
        body_len=np.bincount(body_rows, minlength=size).astype(np.int32),
        name_len=np.bincount(np.array(name_row_list, dtype=np.int64), minlength=size).astype(
            np.int32
        ),
    )


def bm25_norms(
    body_len: np.ndarray,
    name_len: np.ndarray,
    name_tf: float,
    *,
    k1: float = BM25_K1,
    b: float = BM25_B,
) -> np.ndarray:
    """Per-chunk BM25 length normalisation `k1 (1 - b + b·len/avg)` with the global average
    length (name tokens count `name_tf` each, as in the postings)."""
    lengths = body_len.astype(np.float32) + np.float32(name_tf) * name_len.astype(np.float32)
    size = len(lengths)
    average = max(float(lengths.sum(dtype=np.float64)) / size if size else 1.0, 1.0)
    return np.float32(k1) * (1 - np.float32(b) + np.float32(b) * lengths / average)


def term_frequencies(
    parts: Sequence[tuple[int, Postings | PostingsFile]], term: str, *, name_tf: float
) -> tuple[np.ndarray, np.ndarray]:
    """Global rows holding `term` and its weighted count there (body + `name_tf` × name) over
    segments given as (first global row, postings)."""
    term_rows, term_tf = [], []
    for first_row, postings in parts:
        where = postings.lookup(term)
        if where is None:
            continue
        rows_of_term, body_tf, name_tf_of_term = postings.term_postings(where)
        tf = body_tf + np.float32(name_tf) * name_tf_of_term
        present = tf > 0
        term_rows.append(rows_of_term[present].astype(np.int64) + first_row)
        term_tf.append(tf[present])
    if not term_rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return np.concatenate(term_rows), np.concatenate(term_tf)


#: (global rows, weighted counts) of terms already gathered by `term_frequencies`.
TermFrequencies = Mapping[str, tuple[np.ndarray, np.ndarray]]


def _frequencies_of(
    parts: Sequence[tuple[int, Postings | PostingsFile]],
    term: str,
    name_tf: float,
    frequencies: TermFrequencies | None,
) -> tuple[np.ndarray, np.ndarray]:
    gathered = frequencies.get(term) if frequencies is not None else None
    return gathered if gathered is not None else term_frequencies(parts, term, name_tf=name_tf)


def bm25_scores(
    parts: Sequence[tuple[int, Postings | PostingsFile]],
    norms: np.ndarray,
    terms: Sequence[str],
    *,
    name_tf: float,
    frequencies: TermFrequencies | None = None,
    k1: float = BM25_K1,
) -> np.ndarray | None:
    """Okapi BM25 of every chunk for `terms` over segments given as (first global row,
    postings); N, document frequencies and lengths are global, so the scores equal those of
    one segment holding every chunk. `frequencies` holds terms already gathered (the same
    `name_tf`). None when no term occurs anywhere."""
    size = len(norms)
    scores = np.zeros(size, dtype=np.float32)
    found = False
    for term in terms:
        rows, tf = _frequencies_of(parts, term, name_tf, frequencies)
        if not len(rows):
            continue
        found = True
        frequency = len(rows)
        idf = np.float32(np.log1p((size - frequency + 0.5) / (frequency + 0.5)))
        weights = tf * np.float32(k1 + 1) / (tf + norms[rows])
        scores[rows] += weights * idf
    return scores if found else None


def bm25_group_scores(
    parts: Sequence[tuple[int, Postings | PostingsFile]],
    group_of_row: np.ndarray,
    group_norms: np.ndarray,
    terms: Sequence[str],
    *,
    name_tf: float,
    row_mask: np.ndarray | None = None,
    frequencies: TermFrequencies | None = None,
) -> np.ndarray | None:
    """Okapi BM25 of groups of chunks (files: `group_of_row[row]` is the row's group) as if
    each group were one document: a term's counts are summed over the group's rows, N and
    document frequencies count groups, `group_norms` are the groups' length normalisations
    (`bm25_norms` of the summed lengths). Rows outside `row_mask` count nowhere. None when no
    term occurs anywhere."""
    size = len(group_norms)
    scores = np.zeros(size, dtype=np.float32)
    found = False
    for term in terms:
        rows, tf = _frequencies_of(parts, term, name_tf, frequencies)
        if row_mask is not None and len(rows):
            kept = row_mask[rows]
            rows, tf = rows[kept], tf[kept]
        if not len(rows):
            continue
        found = True
        group_tf = np.bincount(group_of_row[rows], weights=tf, minlength=size).astype(np.float32)
        present = np.flatnonzero(group_tf)
        frequency = len(present)
        idf = np.float32(np.log1p((size - frequency + 0.5) / (frequency + 0.5)))
        tf_present = group_tf[present]
        scores[present] += (
            idf * tf_present * np.float32(BM25_K1 + 1) / (tf_present + group_norms[present])
        )
    return scores if found else None
