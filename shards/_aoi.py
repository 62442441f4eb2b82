"""Area of interest: which entities a subscriber should hear about.

A ``SimState.snapshot_for`` uses these helpers to send each subscriber only
the entities near them: a :class:`Sphere` (a circle in 2D), an axis-aligned
:class:`Box`, and a uniform :class:`GridIndex` that answers radius, box and
neighbouring-cell queries without scanning every entity.

Invariants:

* Points are tuples of 2 or 3 finite floats; shapes and indexes have a fixed
  dimension and refuse points of another one (:class:`AreaOfInterestError`).
* Boundaries are inclusive: a point exactly on a sphere's surface or a box's
  face is inside.
* ``Sphere.contains`` first checks the sphere's bounding box as computed in
  floats, then the squared distance. A grid query therefore scans exactly
  the cells that bounding box covers and can never miss a point the plain
  filter (:func:`filter_sphere`) accepts: cell indexes are monotone in the
  coordinate, so float rounding cannot put an accepted point outside.
* Every query returns entity ids sorted, so snapshots built from them are
  deterministic whatever the insertion order.
* A grid stores only occupied cells; a query over more cells than are
  occupied walks the occupied cells instead, so a huge radius costs
  O(entities), never O(volume).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, final

from ._errors import AreaOfInterestError

__all__ = ["Box", "GridIndex", "GridStatistics", "Point", "Sphere", "filter_box", "filter_sphere"]

Point = tuple[float, ...]
"""A position: a tuple of 2 (x, y) or 3 (x, y, z) finite floats."""

K = TypeVar("K", str, int)

_DIMENSIONS = (2, 3)


def _point(value: Sequence[float], name: str, dimensions: int | None = None) -> Point:
    """Return ``value`` as a validated tuple of floats; ``name`` is used in messages."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise AreaOfInterestError(f"{name} must be a sequence of 2 or 3 numbers, got {type(value).__name__}")
    if len(value) not in _DIMENSIONS:
        raise AreaOfInterestError(f"{name} must have 2 or 3 coordinates, got {len(value)}")
    if dimensions is not None and len(value) != dimensions:
        raise AreaOfInterestError(f"{name} has {len(value)} coordinates, expected {dimensions}")
    out: list[float] = []
    for i, c in enumerate(value):
        # bool is an int subclass; True as a coordinate is always a mistake.
        if isinstance(c, bool) or not isinstance(c, int | float):
            raise AreaOfInterestError(f"{name}[{i}] must be a number, got {type(c).__name__}")
        f = float(c)
        if not math.isfinite(f):
            raise AreaOfInterestError(f"{name}[{i}] must be finite, got {f!r}")
        out.append(f)
    return tuple(out)


def _non_negative(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AreaOfInterestError(f"{name} must be a number, got {type(value).__name__}")
    f = float(value)
    if not math.isfinite(f) or f < 0:
        raise AreaOfInterestError(f"{name} must be a finite number >= 0, got {f!r}")
    return f


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Box:
    """An axis-aligned box, boundaries included.

    Attributes:
        min: The lowest corner.
        max: The highest corner; ``max[i] >= min[i]`` on every axis.

    Raises:
        AreaOfInterestError: On corners of different or unsupported
            dimensions, non-finite coordinates, or ``max[i] < min[i]``.
    """

    min: Point
    max: Point

    def __post_init__(self) -> None:
        lo = _point(self.min, "min")
        hi = _point(self.max, "max", len(lo))
        for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
            if b < a:
                raise AreaOfInterestError(f"max[{i}] must be >= min[{i}], got {b!r} < {a!r}")
        # Normalise to tuples of floats; the dataclass is frozen, hence object.__setattr__.
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)

    @classmethod
    def around(cls, center: Sequence[float], half_extents: Sequence[float]) -> Box:
        """Return the box centred on ``center`` reaching ``half_extents[i]`` along each axis.

        Raises:
            AreaOfInterestError: If a half extent is negative or the dimensions differ.
        """
        c = _point(center, "center")
        h = _point(half_extents, "half_extents", len(c))
        for i, e in enumerate(h):
            if e < 0:
                raise AreaOfInterestError(f"half_extents[{i}] must be >= 0, got {e!r}")
        return cls(
            min=tuple(a - e for a, e in zip(c, h, strict=True)),
            max=tuple(a + e for a, e in zip(c, h, strict=True)),
        )

    @property
    def dimensions(self) -> int:
        """2 or 3."""
        return len(self.min)

    def contains(self, point: Sequence[float]) -> bool:
        """Return whether ``point`` lies inside the box or on its boundary.

        Raises:
            AreaOfInterestError: If ``point`` is malformed or of another dimension.
        """
        p = _point(point, "point", self.dimensions)
        return _in_box(p, self.min, self.max)


def _in_box(p: Point, lo: Point, hi: Point) -> bool:
    return all(a <= x <= b for x, a, b in zip(p, lo, hi, strict=True))


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Sphere:
    """A sphere (3D) or circle (2D), boundary included.

    Attributes:
        center: 2 or 3 finite coordinates.
        radius: A finite number >= 0; a zero radius contains only ``center``.

    Raises:
        AreaOfInterestError: On a malformed center or a negative or non-finite radius.
    """

    center: Point
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _point(self.center, "center"))
        object.__setattr__(self, "radius", _non_negative(self.radius, "radius"))

    @property
    def dimensions(self) -> int:
        """2 or 3."""
        return len(self.center)

    def bounding_box(self) -> Box:
        """Return the smallest axis-aligned box holding the sphere (as computed in floats)."""
        lo, hi = self._bounds()
        return Box(min=lo, max=hi)

    def _bounds(self) -> tuple[Point, Point]:
        r = self.radius
        # c - r may overflow to -inf for huge radii; clamp so the box stays finite
        # (every finite point is still inside it).
        lo = tuple(c - r if math.isfinite(c - r) else -_FLOAT_MAX for c in self.center)
        hi = tuple(c + r if math.isfinite(c + r) else _FLOAT_MAX for c in self.center)
        return lo, hi

    def contains(self, point: Sequence[float]) -> bool:
        """Return whether ``point`` lies inside the sphere or on its surface.

        Raises:
            AreaOfInterestError: If ``point`` is malformed or of another dimension.
        """
        p = _point(point, "point", self.dimensions)
        lo, hi = self._bounds()
        return _in_sphere(p, self.center, self.radius, lo, hi)


_FLOAT_MAX = 1.7976931348623157e308


def _in_sphere(p: Point, center: Point, radius: float, lo: Point, hi: Point) -> bool:
    # The bounding-box test comes first so that "in the sphere" implies "in
    # the cells the box covers" exactly, float rounding included (see module doc).
    if not _in_box(p, lo, hi):
        return False
    # Plain sum, not math.fsum: fsum raises on intermediate overflow, and an
    # infinite distance must simply compare as "outside" (or inside an infinite r*r).
    d2 = sum((x - c) * (x - c) for x, c in zip(p, center, strict=True))
    return d2 <= radius * radius


def filter_sphere(positions: Mapping[K, Sequence[float]], sphere: Sphere) -> list[K]:
    """Return the ids whose position lies in ``sphere``, sorted.

    The brute-force counterpart of :meth:`GridIndex.query_sphere`: fine for a
    few hundred entities, and the reference the grid is tested against.

    Raises:
        AreaOfInterestError: If a position is malformed or of another dimension.
    """
    lo, hi = sphere._bounds()
    return sorted(
        k
        for k, p in positions.items()
        if _in_sphere(_point(p, f"positions[{k!r}]", sphere.dimensions), sphere.center, sphere.radius, lo, hi)
    )


def filter_box(positions: Mapping[K, Sequence[float]], box: Box) -> list[K]:
    """Return the ids whose position lies in ``box``, sorted.

    Raises:
        AreaOfInterestError: If a position is malformed or of another dimension.
    """
    return sorted(
        k
        for k, p in positions.items()
        if _in_box(_point(p, f"positions[{k!r}]", box.dimensions), box.min, box.max)
    )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class GridStatistics:
    """Counters of a :class:`GridIndex`.

    Attributes:
        entities: Entities in the index.
        occupied_cells: Cells holding at least one entity.
    """

    entities: int
    occupied_cells: int


Cell = tuple[int, ...]


@final
class GridIndex(Generic[K]):
    """A uniform grid of cubic (square in 2D) cells mapping entity ids to positions.

    Entity ids are all ``str`` or all ``int`` so that results can be sorted.
    Cell ``(i, j[, k])`` holds points with ``floor(x / cell_size) == i`` and so on.

    Args:
        cell_size: Edge length of a cell, finite and > 0. Pick about the
            usual query radius: a radius query then touches 3x3 (3x3x3) cells.
        dimensions: 2 or 3.

    Raises:
        AreaOfInterestError: On a non-positive or non-finite ``cell_size`` or
            an unsupported ``dimensions``.
    """

    def __init__(self, cell_size: float, *, dimensions: int = 2) -> None:
        if isinstance(cell_size, bool) or not isinstance(cell_size, int | float):
            raise AreaOfInterestError(f"cell_size must be a number, got {type(cell_size).__name__}")
        size = float(cell_size)
        if not math.isfinite(size) or size <= 0:
            raise AreaOfInterestError(f"cell_size must be a finite number > 0, got {size!r}")
        if isinstance(dimensions, bool) or dimensions not in _DIMENSIONS:
            raise AreaOfInterestError(f"dimensions must be 2 or 3, got {dimensions!r}")
        self._cell_size = size
        self._dimensions = dimensions
        self._positions: dict[K, Point] = {}
        self._cell_of: dict[K, Cell] = {}
        self._cells: dict[Cell, set[K]] = {}

    @property
    def cell_size(self) -> float:
        """Edge length of a cell."""
        return self._cell_size

    @property
    def dimensions(self) -> int:
        """2 or 3."""
        return self._dimensions

    def __len__(self) -> int:
        return len(self._positions)

    def __contains__(self, entity_id: object) -> bool:
        return entity_id in self._positions

    def position(self, entity_id: K) -> Point:
        """Return the position of ``entity_id``.

        Raises:
            AreaOfInterestError: If the entity is not in the index.
        """
        try:
            return self._positions[entity_id]
        except KeyError:
            raise AreaOfInterestError(f"entity {entity_id!r} is not in the index") from None

    def ids(self) -> list[K]:
        """Return every entity id, sorted."""
        return sorted(self._positions)

    def statistics(self) -> GridStatistics:
        """Return the current counters."""
        return GridStatistics(entities=len(self._positions), occupied_cells=len(self._cells))

    # -- mutation ----------------------------------------------------------

    def insert(self, entity_id: K, position: Sequence[float]) -> None:
        """Add ``entity_id`` at ``position``.

        Raises:
            AreaOfInterestError: If the id is already present, is not a str or
                int, or the position is malformed; the index is unchanged.
        """
        if isinstance(entity_id, bool) or not isinstance(entity_id, str | int):
            raise AreaOfInterestError(f"entity id must be a str or int, got {type(entity_id).__name__}")
        if entity_id in self._positions:
            raise AreaOfInterestError(f"entity {entity_id!r} is already in the index")
        p = _point(position, "position", self._dimensions)
        cell = self._cell(p)
        self._positions[entity_id] = p
        self._cell_of[entity_id] = cell
        self._cells.setdefault(cell, set()).add(entity_id)

    def move(self, entity_id: K, position: Sequence[float]) -> None:
        """Move ``entity_id`` to ``position``.

        Raises:
            AreaOfInterestError: If the id is not present or the position is
                malformed; the index is unchanged.
        """
        if entity_id not in self._positions:
            raise AreaOfInterestError(f"entity {entity_id!r} is not in the index")
        p = _point(position, "position", self._dimensions)
        cell = self._cell(p)
        old = self._cell_of[entity_id]
        self._positions[entity_id] = p
        if cell != old:
            self._unlink(entity_id, old)
            self._cell_of[entity_id] = cell
            self._cells.setdefault(cell, set()).add(entity_id)

    def remove(self, entity_id: K) -> None:
        """Remove ``entity_id``.

        Raises:
            AreaOfInterestError: If the id is not present.
        """
        if entity_id not in self._positions:
            raise AreaOfInterestError(f"entity {entity_id!r} is not in the index")
        del self._positions[entity_id]
        self._unlink(entity_id, self._cell_of.pop(entity_id))

    def _unlink(self, entity_id: K, cell: Cell) -> None:
        members = self._cells[cell]
        members.discard(entity_id)
        if not members:
            # Drop empty cells so memory and the "walk occupied cells" fallback
            # stay proportional to the entities, not to where they have been.
            del self._cells[cell]

    def _cell(self, p: Point) -> Cell:
        out: list[int] = []
        for i, x in enumerate(p):
            q = x / self._cell_size
            if not math.isfinite(q):
                raise AreaOfInterestError(
                    f"position[{i}] = {x!r} is too far from the origin for cell_size {self._cell_size!r}"
                )
            out.append(math.floor(q))
        return tuple(out)

    # -- queries -----------------------------------------------------------

    def query_radius(self, center: Sequence[float], radius: float) -> list[K]:
        """Return the ids within ``radius`` of ``center`` (boundary included), sorted.

        Raises:
            AreaOfInterestError: On a malformed center, a center of another
                dimension, or a negative or non-finite radius.
        """
        return self.query_sphere(Sphere(center=_point(center, "center"), radius=radius))

    def query_sphere(self, sphere: Sphere) -> list[K]:
        """Return the ids inside ``sphere``, sorted; equal to :func:`filter_sphere` over all positions.

        Raises:
            AreaOfInterestError: If the sphere's dimension differs from the index's.
        """
        self._check_dimensions(sphere.dimensions, "sphere")
        lo, hi = sphere._bounds()
        c, r = sphere.center, sphere.radius
        return sorted(k for k in self._candidates(lo, hi) if _in_sphere(self._positions[k], c, r, lo, hi))

    def query_box(self, box: Box) -> list[K]:
        """Return the ids inside ``box`` (boundary included), sorted.

        Raises:
            AreaOfInterestError: If the box's dimension differs from the index's.
        """
        self._check_dimensions(box.dimensions, "box")
        return sorted(
            k for k in self._candidates(box.min, box.max) if _in_box(self._positions[k], box.min, box.max)
        )

    def query_cells(self, position: Sequence[float], *, reach: int = 1) -> list[K]:
        """Return the ids in the cell holding ``position`` and the cells within ``reach`` of it, sorted.

        The coarse, cheap area of interest: with ``reach=1`` that is the 3x3
        (3x3x3) block of cells around ``position``; ``reach=0`` is its cell alone.

        Raises:
            AreaOfInterestError: On a malformed position or a negative ``reach``.
        """
        if isinstance(reach, bool) or not isinstance(reach, int) or reach < 0:
            raise AreaOfInterestError(f"reach must be an int >= 0, got {reach!r}")
        cell = self._cell(_point(position, "position", self._dimensions))
        ranges = [(c - reach, c + reach) for c in cell]
        return sorted(self._in_cells(ranges))

    def _check_dimensions(self, dims: int, what: str) -> None:
        if dims != self._dimensions:
            raise AreaOfInterestError(f"{what} has {dims} dimensions, the index has {self._dimensions}")

    def _candidates(self, lo: Point, hi: Point) -> Iterator[K]:
        ranges: list[tuple[int, int]] = []
        for a, b in zip(lo, hi, strict=True):
            qa, qb = a / self._cell_size, b / self._cell_size
            if not (math.isfinite(qa) and math.isfinite(qb)):
                # The query reaches beyond any cell we could have stored.
                return iter(self._positions)
            ranges.append((math.floor(qa), math.floor(qb)))
        return self._in_cells(ranges)

    def _in_cells(self, ranges: Sequence[tuple[int, int]]) -> Iterator[K]:
        volume = math.prod(b - a + 1 for a, b in ranges)
        if volume > len(self._cells):
            # Cheaper to test each occupied cell against the range than to
            # probe every cell of the range.
            cells: Iterable[Cell] = (
                cell
                for cell in self._cells
                if all(a <= i <= b for i, (a, b) in zip(cell, ranges, strict=True))
            )
        else:
            cells = itertools.product(*(range(a, b + 1) for a, b in ranges))
        for cell in cells:
            yield from self._cells.get(cell, ())
