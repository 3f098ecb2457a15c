"""Immutable per-shard segments and the versioned manifest that publishes them.

Layout, next to the shard Parquet files of one index (see `store`)::

    segments/<shard>/<segment_id>/    one immutable segment (never modified once renamed in)
      segment.json                    SegmentInfo: counts, inputs, sizes of the files below
      chunks.parquet                  chunk rows sorted by (path, start_line, chunker order):
                                      the columns of the `chunks` view (content included)
      reader.arrow                    what search reads per chunk, row-aligned with
                                      chunks.parquet, as an uncompressed Arrow IPC file in
                                      record batches of READER_BATCH_ROWS (long-lived readers
                                      map it, one-shot readers read the batches they need,
                                      see `ReaderRows`): path, language, lines, symbol, kind, the
                                      stored ranking features (name/file words, test/glue/
                                      non-code flags, definition-run ids, BM25 document
                                      lengths) and `vector`, the row of its vector in
                                      vectors.npy (-1: none yet)
      vectors.npy                     float32 (distinct vectors × dim): each distinct vector
                                      once (see `vectors`)
      vectors_i8.npy                  int8 codes of vectors.npy: what long-lived readers scan
      vectors_i8_scales.npy           float32 (distinct vectors × 2): each one's scale and
                                      error bound (both absent in segments built before)
      terms.npy                       sorted BM25 vocabulary of the segment (stemmed terms),
                                      fixed-width UTF-8 bytes (UTF-32 in format-3 segments)
      postings_offsets.npy            int64, len(terms) + 1: term i owns rows[off[i]:off[i+1]]
      postings_rows.npy               int32 chunk rows, ascending within a term
      postings_tf.npy                 float32 term count in the chunk's token stream
      postings_name_tf.npy            float32 term count in the definition's own name
      files.parquet                   the shard's manifest rows plus chunks per file
      symbols.parquet                 definitions, sorted by (path, line)
      occurrences.parquet             identifier occurrences (`OCCURRENCE_SCHEMA`), sorted by
                                      (name, path, line, column) in small row groups, so a
                                      lookup by name reads only the groups holding it (absent
                                      in segments built before occurrences were recorded)
    segments/<shard>/LATEST           which segment the shard's current input files produced
    manifests/<version>.json          one published version: shard → segment dir, meta, totals
    CURRENT                           the live version number (replaced atomically)
    readers/<v>.<pid>.<id>.lease      a reader's hold on version <v> (`VersionLease`)
    index.duckdb                      SQL surface: `meta` table, views `chunks`/`files`/`symbols`
                                      (and `occurrences` when every segment has them) over the
                                      CURRENT version's segment Parquet files

**Segments.** `write_segment` turns one shard's Parquet files (manifest, chunks, symbols,
occurrences, embeddings) into a segment. Its id is a digest of those input bytes and the model id, so an
unchanged shard yields the same id and is not rewritten, and two processes writing the same
shard produce the same directory (the first rename wins, the other discards its copy). A
segment is built in a temporary directory and renamed into place, so a killed writer leaves
either no segment or a complete one; `segment.json` records every file's size, which is how a
truncated or deleted file is detected (`SegmentError`, naming the shard) and repaired by the
next `ensure_segment`. When only a shard's embeddings changed since its `LATEST` segment (a
cold index: the early publish wrote it without vectors), the new segment is derived from that
one: postings, files, symbols and occurrences are hard links to its files, and the chunk and
reader rows, already in segment order, are read back with their vector columns replaced.
The files equal a build from scratch, byte for byte, at about half the cost.

**Publishing.** `publish` validates the segments of the new version (the index's checks, per
segment, from the counts recorded when each was written — O(shards), no chunk rows are read),
writes `manifests/<version>.json`, builds `index.duckdb` under a temporary name, then replaces
`CURRENT` (the commit point) and finally `index.duckdb`. A failure before the `CURRENT` flip
leaves the old version live and removes what the publish wrote (its manifest, the half-built
`index.duckdb`, temporary files); a full disk anywhere on the way (a segment, the manifest,
`index.duckdb`, `CURRENT`) is a `DiskFullError` naming the step. A publish killed before the
flip leaves the same files behind for the next publish to reclaim. A kill between the flip
and the `index.duckdb` replacement leaves the SQL surface one version behind (both versions'
segments are kept) until the next publish. Readers resolve `CURRENT` once and use only that
manifest's segments, so they never see a mix.

**BM25 across segments.** Each segment stores raw term counts (postings), not scores. The
global statistics — N, each query term's document frequency, the average document length —
are summed over the manifest's segments at query time (`bm25_scores`), so scores are exactly
those of a single-segment build of the same chunks. `bm25s` and similar libraries bake their
own index's IDF (and length normalisation) into the stored score matrix, so independently
built segments cannot be combined into correct global scores; plain arrays also need no
per-open work, and a query reads only its terms' posting ranges (`PostingsFile`).

**Reclaiming.** At each publish (under the writer lock), segments and manifests referenced by
neither the current version, the `KEEP_PREVIOUS_VERSIONS` before it, a version some reader
holds, a shard's `LATEST`, nor younger than `GC_GRACE_S` are removed, and so are manifests
newer than `CURRENT` (a publish that died before its flip) whatever their age. A reader holds
its version with a `VersionLease` (a locked file under `readers/`) until it closes or moves
on, so its files, which its DuckDB views (`IndexReader.con`) read by path, stay; once it lets
go, the next publish reclaims them. Without a lease (a read-only index directory) a
long-lived reader still keeps answering on Linux after its files are unlinked: it holds
every file it reads open or mapped (a one-shot reader opens chunks.parquet and the vectors
when its query needs them, moments later).

Modules, in the order data flows through them: `layout` (file names, `SegmentInfo`,
`verify_segment`), `postings` (BM25 postings and scoring), `build` (writing a shard's
segment), `versions` (manifests and `CURRENT`), `sql_surface` (the DuckDB views),
`publishing` (validate, flip, reclaim), `gc` (reclaiming and readers' leases), `reading`
(opening a segment for search). This package re-exports what the rest of CodeRAG uses.
"""

from coderag_assets.segments.build import ensure_segment, segment_is_current, write_segment
from coderag_assets.segments.gc import (
    GC_GRACE_S,
    KEEP_PREVIOUS_VERSIONS,
    VersionLease,
    collect_garbage,
    held_versions,
)
from coderag_assets.segments.layout import (
    CHUNKS_FILE,
    CURRENT_FILE,
    LEASE_SUFFIX,
    MANIFESTS_DIR,
    OCCURRENCE_ORDER,
    OCCURRENCE_SCHEMA,
    OCCURRENCE_STRING_COLUMNS,
    OCCURRENCE_WRITE_OPTIONS,
    OCCURRENCES_FILE,
    READERS_DIR,
    SEGMENTS_DIR,
    TERMS_FILE,
    SegmentError,
    SegmentInfo,
    in_occurrence_layout,
    occurrence_file_table,
    verify_segment,
)
from coderag_assets.segments.postings import (
    Postings,
    PostingsFile,
    TermFrequencies,
    bm25_group_scores,
    bm25_norms,
    bm25_scores,
    build_postings,
    term_frequencies,
)
from coderag_assets.segments.publishing import (
    PublishedVersion,
    PublishMeta,
    bm25_summary,
    publish,
    validate_segments,
)
from coderag_assets.segments.reading import (
    ContentCache,
    OpenSegment,
    ReaderRows,
    allow_open_files,
    open_segment,
)
from coderag_assets.segments.sql_surface import connect_version, create_sql_surface
from coderag_assets.segments.versions import IndexVersion, current_version, read_current
from coderag_assets.vectors import VECTORS_FILE

__all__ = [
    "CHUNKS_FILE",
    "CURRENT_FILE",
    "GC_GRACE_S",
    "KEEP_PREVIOUS_VERSIONS",
    "LEASE_SUFFIX",
    "MANIFESTS_DIR",
    "OCCURRENCES_FILE",
    "OCCURRENCE_ORDER",
    "OCCURRENCE_SCHEMA",
    "OCCURRENCE_STRING_COLUMNS",
    "OCCURRENCE_WRITE_OPTIONS",
    "READERS_DIR",
    "SEGMENTS_DIR",
    "TERMS_FILE",
    "VECTORS_FILE",
    "ContentCache",
    "IndexVersion",
    "OpenSegment",
    "Postings",
    "PostingsFile",
    "PublishMeta",
    "PublishedVersion",
    "ReaderRows",
    "SegmentError",
    "SegmentInfo",
    "TermFrequencies",
    "VersionLease",
    "allow_open_files",
    "bm25_group_scores",
    "bm25_norms",
    "bm25_scores",
    "bm25_summary",
    "build_postings",
    "collect_garbage",
    "connect_version",
    "create_sql_surface",
    "current_version",
    "ensure_segment",
    "held_versions",
    "in_occurrence_layout",
    "occurrence_file_table",
    "open_segment",
    "publish",
    "read_current",
    "segment_is_current",
    "term_frequencies",
    "validate_segments",
    "verify_segment",
    "write_segment",
]
