"""MkDocs hook: the numbers in the docs come from the committed JSON files, never typed by hand.

Markers in a page (paths relative to the repo root, the folder of mkdocs.yml)::

    <!-- table: metrics/evaluate.json
    | forecaster | MSE (scaled) |
    |---|---|
    | LSTM | {mse_scaled:.4f} |
    @by_cutoff | {cutoff:.16} | {mse_scaled:.4f} |
    -->
    <!-- table: benchmarks/results.json render=benchmarks.report:markdown_table -->
    <!-- value: metrics/train.json train_seconds:.0f -->

``{key.path:spec}`` is a dotted path into the JSON (list items by index) and a Python format spec.
A template line ``@<path> <row>`` repeats <row> for each item of the list at <path>, its keys read
from the item. ``render=module:function`` hands the whole JSON to that function (which returns
Markdown). A missing file or key, or a value that does not fit its spec, stops the build.
"""

from __future__ import annotations

import importlib
import json
import re
import string
import sys
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

TABLE = re.compile(r"<!--\s*table:\s*(?P<file>\S+)(?:[ \t]+render=(?P<render>\S+))?(?P<body>.*?)-->", re.S)
VALUE = re.compile(r"<!--\s*value:\s*(?P<file>\S+)\s+(?P<field>[^\s:]+)(?::(?P<spec>\S*))?\s*-->")


def load(root: Path, name: str, where: str) -> Any:
    """The JSON file ``name`` under ``root``; missing or unreadable stops the build."""
    path = root / name
    if not path.is_file():
        raise PluginError(f"{where}: {name} does not exist (paths are relative to {root})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PluginError(f"{where}: {name} is not valid JSON: {e}") from None


def lookup(data: Any, key: str, where: str) -> Any:
    """``data`` at the dotted ``key`` ("baselines.seasonal_naive.mse_scaled", "by_cutoff.0.cutoff")."""
    node = data
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            there = sorted(node) if isinstance(node, dict) else f"a {type(node).__name__}"
            raise PluginError(f"{where}: key '{key}' not found: no '{part}' in {there}")
    return node


def fill(template: str, data: Any, where: str) -> str:
    """``template`` with each ``{key:spec}`` replaced by the formatted value from ``data``."""
    out: list[str] = []
    try:
        for literal, key, spec, _ in string.Formatter().parse(template):
            out.append(literal)
            if key is not None:
                out.append(format(lookup(data, key, where), spec or ""))
    except (TypeError, ValueError) as e:
        raise PluginError(f"{where}: cannot fill {template.strip()!r}: {e}") from None
    return "".join(out)


def table(data: Any, body: str, render: str | None, root: Path, where: str) -> str:
    """The Markdown a table marker stands for."""
    if render:
        module, _, function = render.partition(":")
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))  # render= names modules of this repo (benchmarks.report)
        try:
            return str(getattr(importlib.import_module(module), function)(data))
        except (ImportError, AttributeError) as e:
            raise PluginError(f"{where}: render={render}: {e}") from None
    rows: list[str] = []
    for line in (ln.strip() for ln in body.strip().splitlines()):
        if line.startswith("@"):
            key, _, row = line[1:].partition(" ")
            items = lookup(data, key, where)
            if not isinstance(items, list):
                raise PluginError(f"{where}: @{key} is a {type(items).__name__}, not a list")
            rows += [fill(row, item, f"{where} @{key}[{i}]") for i, item in enumerate(items)]
        elif line:
            rows.append(fill(line, data, where))
    if not rows:
        raise PluginError(f"{where}: the marker has neither a template nor render=")
    return "\n".join(rows)


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace every table and value marker of the page with what the JSON files say."""
    root = Path(config.config_file_path).resolve().parent
    src = f"docs/{page.file.src_uri}"

    def one_table(m: re.Match[str]) -> str:
        where = f"{src}: <!-- table: {m['file']} -->"
        return table(load(root, m["file"], where), m["body"], m["render"], root, where)

    def one_value(m: re.Match[str]) -> str:
        where = f"{src}: <!-- value: {m['file']} {m['field']} -->"
        return fill(f"{{{m['field']}:{m['spec'] or ''}}}", load(root, m["file"], where), where)

    return VALUE.sub(one_value, TABLE.sub(one_table, markdown))
