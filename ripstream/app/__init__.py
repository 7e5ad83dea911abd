"""The application layer: input lists, the batch journal, credentials, and the wiring that
plugs the source registry, tags and the download archive into the framework."""

from __future__ import annotations

from ripstream.app.batch import Batch, BatchItem, parse_items, read_input_file, run_batch
from ripstream.app.config import AppConfig
from ripstream.app.journal import BatchJournal

__all__ = [
    "AppConfig",
    "Batch",
    "BatchItem",
    "BatchJournal",
    "parse_items",
    "read_input_file",
    "run_batch",
]
