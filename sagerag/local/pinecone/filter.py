"""Pinecone's metadata filter grammar, evaluated as numpy masks over a namespace.

Each metadata field referenced by a filter is turned once (per cache generation) into columns: a float
array for numbers, an int8 array for booleans and (row, code) pairs for strings, where a list of strings
contributes one pair per element. Operators then become array comparisons and `np.isin`, so a filter
costs a few vector operations per referenced field instead of a Python call per row.

Semantics follow Pinecone: a bare value means `$eq`; several top-level keys are ANDed; `$eq`/`$in` on a
list-of-strings field match when any element matches, and `$ne`/`$nin` are their exact negation (so they
also match rows that lack the field).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sagerag.errors import FilterError

Mask = npt.NDArray[np.bool_]
Moves = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]
"""(source rows, destination rows): how a delete renumbers the rows it keeps."""

MAX_IN_VALUES = 10_000
"""Pinecone's documented ceiling on the values of one `$in` or `$nin`."""
_COMPARISONS = ("$gt", "$gte", "$lt", "$lte")
_FIELD_OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", *_COMPARISONS})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FieldColumn:
    """One metadata field of every row in a namespace, in vectorised form.

    Writes edit it in place (`assign`, `remove`) instead of rebuilding it, so a filter after a small write
    costs what it cost before the write."""

    def __init__(self, values: Sequence[Any]) -> None:
        n = len(values)
        self.n = n
        self.present = np.zeros(n, dtype=np.bool_)
        self.numbers = np.full(n, np.nan, dtype=np.float64)
        self.booleans = np.full(n, -1, dtype=np.int8)
        self.vocab: dict[str, int] = {}
        self.string_rows = np.zeros(0, dtype=np.int64)
        self.string_codes = np.zeros(0, dtype=np.int64)
        self._set(range(n), values)

    def _set(self, rows: Iterable[int], values: Iterable[Any]) -> None:
        """Store `values` at `rows`, which hold nothing yet (no string pairs, no flags)."""
        string_rows: list[int] = []
        codes: list[int] = []
        vocab = self.vocab
        for row, value in zip(rows, values, strict=True):
            if value is None:
                continue
            self.present[row] = True
            if isinstance(value, bool):
                self.booleans[row] = int(value)
            elif _is_number(value):
                self.numbers[row] = float(value)
            elif isinstance(value, str):
                string_rows.append(row)
                codes.append(vocab.setdefault(value, len(vocab)))
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, str):
                        string_rows.append(row)
                        codes.append(vocab.setdefault(item, len(vocab)))
        if string_rows:
            self.string_rows = np.concatenate([self.string_rows, np.asarray(string_rows, dtype=np.int64)])
            self.string_codes = np.concatenate([self.string_codes, np.asarray(codes, dtype=np.int64)])

    def _forget(self, rows: npt.NDArray[np.int64]) -> None:
        """Drop the string pairs of `rows` (their flags are reset or cut by the caller)."""
        if self.string_rows.size and rows.size:
            keep = ~np.isin(self.string_rows, rows)
            self.string_rows, self.string_codes = self.string_rows[keep], self.string_codes[keep]

    def assign(self, rows: Sequence[int], values: Sequence[Any], n: int) -> None:
        """Set the value of `rows` (existing rows, or new ones up to the new row count `n`)."""
        if n > self.n:
            grow = n - self.n
            self.present = np.concatenate([self.present, np.zeros(grow, dtype=np.bool_)])
            self.numbers = np.concatenate([self.numbers, np.full(grow, np.nan, dtype=np.float64)])
            self.booleans = np.concatenate([self.booleans, np.full(grow, -1, dtype=np.int8)])
            self.n = n
        index = np.asarray(rows, dtype=np.int64)
        self._forget(index)
        self.present[index] = False
        self.numbers[index] = np.nan
        self.booleans[index] = -1
        self._set(rows, values)

    def remove(self, deleted: npt.NDArray[np.int64], moves: Moves, n: int) -> None:
        """Drop `deleted` rows: each `moves` source row takes a deleted row's place, then cut to `n` rows."""
        self._forget(deleted)
        src, dst = moves
        for flags in self._flags():
            flags[dst] = flags[src]
        self.present, self.numbers, self.booleans = [flags[:n].copy() for flags in self._flags()]
        if self.string_rows.size and src.size:
            remap = np.arange(self.n, dtype=np.int64)
            remap[src] = dst
            self.string_rows = remap[self.string_rows]
        self.n = n

    def _flags(self) -> tuple[npt.NDArray[Any], ...]:
        return self.present, self.numbers, self.booleans

    def _rows_with_codes(self, wanted: list[int]) -> Mask:
        mask = np.zeros(self.n, dtype=np.bool_)
        if wanted and self.string_codes.size:
            hit = np.isin(self.string_codes, np.asarray(wanted, dtype=np.int64))
            mask[self.string_rows[hit]] = True
        return mask

    def is_in(self, values: Sequence[Any]) -> Mask:
        """Rows whose value (or any list element) equals one of `values`."""
        mask = np.zeros(self.n, dtype=np.bool_)
        codes = [self.vocab[v] for v in values if isinstance(v, str) and v in self.vocab]
        if codes:
            mask |= self._rows_with_codes(codes)
        numbers = [float(v) for v in values if _is_number(v)]
        if numbers:
            mask |= np.isin(self.numbers, np.asarray(numbers, dtype=np.float64))
        for flag in {v for v in values if isinstance(v, bool)}:
            mask |= self.booleans == int(flag)
        return mask

    def compare(self, op: str, value: float) -> Mask:
        """Numeric comparison; rows without a number never match (NaN compares false)."""
        with np.errstate(invalid="ignore"):
            if op == "$gt":
                return self.numbers > value
            if op == "$gte":
                return self.numbers >= value
            if op == "$lt":
                return self.numbers < value
            return self.numbers <= value


class MetadataTable:
    """Lazily built columns over the namespace's metadata rows (JSON text, decoded on demand).

    The owner edits rows in place under its write lock (`assign`, `remove`); built columns follow each
    edit, so a write never costs a rebuild of the whole table."""

    def __init__(self, metadata_json: Sequence[str | None], loads: Any) -> None:
        self._raw = list(metadata_json)
        self._loads = loads
        self._rows: list[dict[str, Any]] | None = None
        self._columns: dict[str, FieldColumn] = {}
        self._lock = threading.Lock()

    @property
    def n(self) -> int:
        return len(self._raw)

    def column(self, field: str) -> FieldColumn:
        column = self._columns.get(field)
        if column is None:
            with self._lock:
                rows = self._decoded()
                column = FieldColumn([row.get(field) for row in rows])
                self._columns[field] = column
        return column

    def _decoded(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = [self._loads(raw) if raw else {} for raw in self._raw]
        return self._rows

    def assign(self, rows: Sequence[int], raw: Sequence[str | None]) -> None:
        """Set the metadata of `rows`: existing rows, or new ones appended in order at the end."""
        with self._lock:
            for row, text in zip(rows, raw, strict=True):
                if row == len(self._raw):
                    self._raw.append(text)
                else:
                    self._raw[row] = text
            if self._rows is None:
                return
            decoded = [self._loads(text) if text else {} for text in raw]
            for row, value in zip(rows, decoded, strict=True):
                if row == len(self._rows):
                    self._rows.append(value)
                else:
                    self._rows[row] = value
            for field, column in self._columns.items():
                column.assign(rows, [value.get(field) for value in decoded], len(self._raw))

    def remove(self, deleted: npt.NDArray[np.int64], moves: Moves) -> None:
        """Drop `deleted` rows: each `moves` source row takes a deleted row's place (swap with last)."""
        n = len(self._raw) - deleted.size
        src, dst = moves
        with self._lock:
            for rows in (self._raw, self._rows):
                if rows is not None:
                    for old, new in zip(src.tolist(), dst.tolist(), strict=True):
                        rows[new] = rows[old]
                    del rows[n:]
            for column in self._columns.values():
                column.remove(deleted, moves, n)


def validate_filter(filter_: Any) -> None:
    """Raise FilterError for anything Pinecone's grammar rejects, without evaluating it."""
    evaluate_filter(filter_, None)


def evaluate_filter(filter_: Any, table: MetadataTable | None) -> Mask:
    """Mask of the rows of `table` that match `filter_` (validation only when `table` is None)."""
    if not isinstance(filter_, Mapping):
        raise FilterError(f"filter must be an object, got {type(filter_).__name__}")
    n = table.n if table is not None else 0
    mask = np.ones(n, dtype=np.bool_)
    for key, value in filter_.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{key} must be a non-empty array of filters")
            parts = [evaluate_filter(part, table) for part in value]
            combined = np.logical_and.reduce(parts) if key == "$and" else np.logical_or.reduce(parts)
            mask &= combined
        elif key.startswith("$"):
            raise FilterError(f"unknown top-level operator {key!r}; use $and, $or or a field name")
        else:
            mask &= _evaluate_field(key, value, table)
    return mask


def _evaluate_field(field: str, condition: Any, table: MetadataTable | None) -> Mask:
    if not isinstance(condition, Mapping):
        condition = {"$eq": condition}
    if not condition:
        raise FilterError(f"empty condition for field {field!r}")
    column = table.column(field) if table is not None else None
    n = column.n if column is not None else 0
    mask = np.ones(n, dtype=np.bool_)
    for op, operand in condition.items():
        if op not in _FIELD_OPERATORS:
            raise FilterError(f"unknown operator {op!r} for field {field!r}")
        if op in ("$eq", "$ne"):
            if not (isinstance(operand, str | bool) or _is_number(operand)):
                raise FilterError(f"{op} on {field!r} needs a string, number or boolean")
            if column is not None:
                hit = column.is_in([operand])
                mask &= hit if op == "$eq" else ~hit
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list) or not all(
                isinstance(v, str | bool) or _is_number(v) for v in operand
            ):
                raise FilterError(f"{op} on {field!r} needs an array of strings, numbers or booleans")
            if len(operand) > MAX_IN_VALUES:
                raise FilterError(
                    f"{op} on {field!r} has {len(operand)} values; Pinecone accepts at most {MAX_IN_VALUES}"
                )
            if column is not None:
                hit = column.is_in(operand)
                mask &= hit if op == "$in" else ~hit
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise FilterError(f"$exists on {field!r} needs a boolean")
            if column is not None:
                mask &= column.present if operand else ~column.present
        else:
            if not _is_number(operand):
                raise FilterError(f"{op} on {field!r} needs a number")
            if column is not None:
                mask &= column.compare(op, float(operand))
    return mask
