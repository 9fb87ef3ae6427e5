"""Shared helpers for in-pod steps: errors, logging, spec/CLI options, file search, tool calls.

Every step imports them from here (`_common.fail`, `_common.load_options`, ...), and the compiler reads
`_common.Option`, `_common.parse_options` and `_common.CONTRACT_KEY`; they live by job in
`_messages` (messages and errors), `_options` (option declaration and parsing), `_files` (file search
and scratch trees) and `_tools` (config sentinels and container tool calls).
"""

from __future__ import annotations

from dig_stages._files import (
    IMAGE_EXTS,
    copy_tree,
    count_files,
    find_first,
    list_images,
    listing,
    reset_dir,
    subdirs,
    symlink,
    tree_stats,
    walk,
)
from dig_stages._messages import StageError, fail, info, run_main, warn
from dig_stages._options import CONTRACT_KEY, Option, load_options, options, parse_option, parse_options
from dig_stages._tools import SENTINELS, fill_sentinels, require_tool, run_tool, split_cmd

__all__ = [
    "CONTRACT_KEY",
    "IMAGE_EXTS",
    "SENTINELS",
    "Option",
    "StageError",
    "copy_tree",
    "count_files",
    "fail",
    "fill_sentinels",
    "find_first",
    "info",
    "list_images",
    "listing",
    "load_options",
    "options",
    "parse_option",
    "parse_options",
    "require_tool",
    "reset_dir",
    "run_main",
    "run_tool",
    "split_cmd",
    "subdirs",
    "symlink",
    "tree_stats",
    "walk",
    "warn",
]
