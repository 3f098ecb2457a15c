"""The one place that wires the Dagster objects together (`dagster dev -w workspace.yaml`)."""

from __future__ import annotations

import dagster as dg

from coderag_assets.assets import chunk_embeddings, code_chunks, file_manifest, search_index
from coderag_assets.checks import INDEX_CHECKS
from coderag_assets.resources import CodeRagResource
from coderag_assets.schedules import SCHEDULES
from coderag_assets.sensors import FRESHNESS_CHECKS, SENSORS
from coderag_assets.settings import Settings, load_settings

ASSETS = [file_manifest, code_chunks, chunk_embeddings, search_index]


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=[*INDEX_CHECKS, *FRESHNESS_CHECKS],
        sensors=SENSORS,
        schedules=SCHEDULES,
        resources={"coderag": CodeRagResource.from_settings(settings)},
    )


defs = build_definitions(load_settings())
