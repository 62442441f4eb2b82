"""Area of interest: shapes, filters, and a grid that agrees with brute force."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, strategies as st

from shards import AreaOfInterestError, Box, GridIndex, Sphere, filter_box, filter_sphere

_coord = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)
_wide = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
_cell = st.floats(min_value=0.01, max_value=500.0)


def _points(dims: int, coord: st.SearchStrategy[float] = _coord) -> st.SearchStrategy[tuple[float, ...]]:
    return st.tuples(*([coord] * dims))


@st.composite
def _world(
    draw: st.DrawFn, coord: st.SearchStrategy[float] = _coord
) -> tuple[int, float, dict[int, tuple[float, ...]]]:
    dims = draw(st.sampled_from([2, 3]))
    positions = draw(st.dictionaries(st.integers(0, 200), _points(dims, coord), max_size=40))
    return dims, draw(_cell), positions


def _grid(dims: int, cell: float, positions: dict[int, tuple[float, ...]]) -> GridIndex[int]:
    grid: GridIndex[int] = GridIndex(cell, dimensions=dims)
    for k, p in positions.items():
        grid.insert(k, p)
    return grid


# -- shapes ------------------------------------------------------------------


def test_sphere_boundary_is_inside() -> None:
    """A point exactly at distance radius is inside."""
    assert Sphere(center=(0.0, 0.0), radius=5.0).contains((3.0, 4.0))


def test_sphere_excludes_a_point_just_outside() -> None:
    """A point past the radius is outside."""
    assert not Sphere(center=(0.0, 0.0, 0.0), radius=1.0).contains((1.0, 0.5, 0.0))


def test_zero_radius_sphere_contains_only_its_center() -> None:
    """Radius 0 is allowed and holds exactly the center."""
    s = Sphere(center=(1.0, 2.0), radius=0)
    assert s.contains((1.0, 2.0))
    assert not s.contains((1.0, 2.000001))


def test_sphere_normalises_center_and_radius_to_floats() -> None:
    """Lists and ints become tuples of floats, so equal spheres compare equal."""
    s = Sphere(center=[1, 2], radius=3)  # type: ignore[arg-type]
    assert s == Sphere(center=(1.0, 2.0), radius=3.0)
    assert s.center == (1.0, 2.0)
    assert isinstance(s.radius, float)


def test_negative_radius_is_refused() -> None:
    """A negative radius raises a ValueError naming the radius."""
    with pytest.raises(ValueError, match=r"^radius must be a finite number >= 0, got -1\.0$"):
        Sphere(center=(0.0, 0.0), radius=-1.0)


def test_string_radius_is_refused() -> None:
    """A radius is a number."""
    with pytest.raises(AreaOfInterestError, match=r"^radius must be a number, got str$"):
        Sphere(center=(0.0, 0.0), radius="1")  # type: ignore[arg-type]


def test_nan_radius_is_refused() -> None:
    """NaN is not a radius."""
    with pytest.raises(AreaOfInterestError, match=r"^radius must be a finite number >= 0, got nan$"):
        Sphere(center=(0.0, 0.0), radius=float("nan"))


def test_infinite_coordinate_is_refused() -> None:
    """Coordinates must be finite; the message names the coordinate."""
    with pytest.raises(AreaOfInterestError, match=r"^center\[1\] must be finite, got inf$"):
        Sphere(center=(0.0, float("inf")), radius=1.0)


def test_one_dimensional_center_is_refused() -> None:
    """Only 2D and 3D points exist."""
    with pytest.raises(AreaOfInterestError, match=r"^center must have 2 or 3 coordinates, got 1$"):
        Sphere(center=(0.0,), radius=1.0)


def test_string_center_is_refused() -> None:
    """A string is a sequence, but not of numbers."""
    with pytest.raises(AreaOfInterestError, match=r"^center must be a sequence of 2 or 3 numbers, got str$"):
        Sphere(center="ab", radius=1.0)  # type: ignore[arg-type]


def test_bool_coordinate_is_refused() -> None:
    """True is an int to Python, but never a coordinate."""
    with pytest.raises(AreaOfInterestError, match=r"^center\[0\] must be a number, got bool$"):
        Sphere(center=(True, 0.0), radius=1.0)


def test_contains_refuses_a_point_of_another_dimension() -> None:
    """A 3D point against a 2D circle is a bug, not 'outside'."""
    with pytest.raises(AreaOfInterestError, match=r"^point has 3 coordinates, expected 2$"):
        Sphere(center=(0.0, 0.0), radius=1.0).contains((0.0, 0.0, 0.0))


def test_sphere_bounding_box() -> None:
    """The bounding box reaches radius along each axis."""
    assert Sphere(center=(1.0, 2.0, 3.0), radius=2.0).bounding_box() == Box(
        min=(-1.0, 0.0, 1.0), max=(3.0, 4.0, 5.0)
    )


def test_box_faces_are_inside() -> None:
    """Both corners and faces belong to the box."""
    box = Box(min=(0.0, 0.0), max=(2.0, 1.0))
    assert box.contains((0.0, 0.0))
    assert box.contains((2.0, 1.0))
    assert box.contains((2.0, 0.5))
    assert not box.contains((2.0, 1.5))


def test_box_with_inverted_axis_is_refused() -> None:
    """max below min on an axis raises, naming the axis."""
    with pytest.raises(AreaOfInterestError, match=r"^max\[1\] must be >= min\[1\], got -1\.0 < 0\.0$"):
        Box(min=(0.0, 0.0), max=(1.0, -1.0))


def test_box_corners_of_different_dimensions_are_refused() -> None:
    """Both corners have the same dimension."""
    with pytest.raises(AreaOfInterestError, match=r"^max has 3 coordinates, expected 2$"):
        Box(min=(0.0, 0.0), max=(1.0, 1.0, 1.0))


def test_box_around() -> None:
    """Box.around builds a box from a center and half extents."""
    assert Box.around((1.0, 1.0), (2.0, 0.5)) == Box(min=(-1.0, 0.5), max=(3.0, 1.5))


def test_box_around_refuses_negative_half_extent() -> None:
    """A negative half extent raises, naming the axis."""
    with pytest.raises(AreaOfInterestError, match=r"^half_extents\[0\] must be >= 0, got -2\.0$"):
        Box.around((1.0, 1.0), (-2.0, 0.5))


def test_filters_return_sorted_ids() -> None:
    """filter_sphere and filter_box sort ids whatever the mapping order."""
    positions = {"c": (0.0, 0.0), "a": (1.0, 0.0), "b": (9.0, 9.0)}
    assert filter_sphere(positions, Sphere(center=(0.0, 0.0), radius=1.0)) == ["a", "c"]
    assert filter_box(positions, Box(min=(0.0, 0.0), max=(9.0, 9.0))) == ["a", "b", "c"]


def test_filter_names_the_malformed_position() -> None:
    """A bad position in the mapping is reported by its id."""
    with pytest.raises(AreaOfInterestError, match=r"^positions\['x'\] has 3 coordinates, expected 2$"):
        filter_box({"x": (0.0, 0.0, 0.0)}, Box(min=(0.0, 0.0), max=(1.0, 1.0)))


# -- grid: construction and mutation -----------------------------------------


@pytest.mark.parametrize("size", [0, 0.0, -1.0, float("inf"), float("nan")])
def test_grid_refuses_bad_cell_size(size: float) -> None:
    """cell_size must be finite and > 0."""
    with pytest.raises(ValueError, match=rf"^cell_size must be a finite number > 0, got {float(size)!r}$"):
        GridIndex(size)


def test_grid_refuses_a_non_numeric_cell_size() -> None:
    """cell_size is a number."""
    with pytest.raises(AreaOfInterestError, match=r"^cell_size must be a number, got str$"):
        GridIndex("1")  # type: ignore[arg-type]


def test_grid_reports_its_cell_size_and_dimensions() -> None:
    """The constructor arguments read back, normalised."""
    grid: GridIndex[str] = GridIndex(2, dimensions=3)
    assert (grid.cell_size, grid.dimensions) == (2.0, 3)


def test_grid_refuses_unsupported_dimensions() -> None:
    """Only 2D and 3D grids exist."""
    with pytest.raises(AreaOfInterestError, match=r"^dimensions must be 2 or 3, got 4$"):
        GridIndex(1.0, dimensions=4)


def test_insert_then_query() -> None:
    """An inserted entity is found, with its position normalised to floats."""
    grid: GridIndex[str] = GridIndex(10.0)
    grid.insert("a", (1, 2))
    assert grid.position("a") == (1.0, 2.0)
    assert "a" in grid
    assert len(grid) == 1
    assert grid.query_radius((0.0, 0.0), 3.0) == ["a"]


def test_duplicate_insert_is_refused_and_keeps_the_first_position() -> None:
    """Inserting an id twice raises; the first position stays."""
    grid: GridIndex[str] = GridIndex(1.0)
    grid.insert("a", (0.0, 0.0))
    with pytest.raises(AreaOfInterestError, match=r"^entity 'a' is already in the index$"):
        grid.insert("a", (5.0, 5.0))
    assert grid.position("a") == (0.0, 0.0)


def test_insert_with_wrong_dimension_leaves_the_grid_empty() -> None:
    """A refused insert adds nothing."""
    grid: GridIndex[str] = GridIndex(1.0, dimensions=3)
    with pytest.raises(AreaOfInterestError, match=r"^position has 2 coordinates, expected 3$"):
        grid.insert("a", (0.0, 0.0))
    assert len(grid) == 0
    assert grid.statistics().occupied_cells == 0


def test_insert_refuses_a_float_id() -> None:
    """Ids are str or int so results can be sorted."""
    grid: GridIndex[Any] = GridIndex(1.0)
    with pytest.raises(AreaOfInterestError, match=r"^entity id must be a str or int, got float$"):
        grid.insert(1.5, (0.0, 0.0))


def test_insert_refuses_a_position_too_far_for_the_cell_size() -> None:
    """A coordinate whose cell index overflows is refused, not stored in a bogus cell."""
    grid: GridIndex[str] = GridIndex(1e-300)
    with pytest.raises(
        AreaOfInterestError,
        match=r"^position\[0\] = 1e\+300 is too far from the origin for cell_size 1e-300$",
    ):
        grid.insert("a", (1e300, 0.0))
    assert len(grid) == 0


def test_move_changes_what_queries_see() -> None:
    """After a move the entity is found at the new place only."""
    grid: GridIndex[str] = GridIndex(1.0)
    grid.insert("a", (0.0, 0.0))
    grid.move("a", (50.0, 50.0))
    assert grid.query_radius((0.0, 0.0), 2.0) == []
    assert grid.query_radius((50.0, 50.0), 0.0) == ["a"]
    assert grid.statistics().occupied_cells == 1


def test_move_within_a_cell_updates_the_position() -> None:
    """Moving inside the same cell still records the new position."""
    grid: GridIndex[str] = GridIndex(10.0)
    grid.insert("a", (1.0, 1.0))
    grid.move("a", (2.0, 2.0))
    assert grid.position("a") == (2.0, 2.0)


def test_move_of_unknown_entity_is_refused() -> None:
    """Moving an id that was never inserted raises and adds nothing."""
    grid: GridIndex[str] = GridIndex(1.0)
    with pytest.raises(AreaOfInterestError, match=r"^entity 'ghost' is not in the index$"):
        grid.move("ghost", (0.0, 0.0))
    assert len(grid) == 0


def test_move_to_bad_position_keeps_the_old_one() -> None:
    """A refused move leaves the entity where it was."""
    grid: GridIndex[str] = GridIndex(1.0)
    grid.insert("a", (0.0, 0.0))
    with pytest.raises(AreaOfInterestError, match=r"^position\[0\] must be finite, got nan$"):
        grid.move("a", (float("nan"), 0.0))
    assert grid.position("a") == (0.0, 0.0)
    assert grid.query_cells((0.0, 0.0), reach=0) == ["a"]


def test_remove_forgets_the_entity_and_its_empty_cell() -> None:
    """Removal drops the entity and frees its cell."""
    grid: GridIndex[str] = GridIndex(1.0)
    grid.insert("a", (0.0, 0.0))
    grid.remove("a")
    assert "a" not in grid
    assert grid.statistics().occupied_cells == 0


def test_remove_of_unknown_entity_is_refused() -> None:
    """Removing an absent id raises."""
    grid: GridIndex[int] = GridIndex(1.0)
    with pytest.raises(AreaOfInterestError, match=r"^entity 7 is not in the index$"):
        grid.remove(7)


def test_position_of_unknown_entity_is_refused() -> None:
    """position() of an absent id raises."""
    with pytest.raises(AreaOfInterestError, match=r"^entity 'a' is not in the index$"):
        GridIndex[str](1.0).position("a")


def test_statistics_counts_entities_and_occupied_cells() -> None:
    """Two entities in one cell and one in another: 3 entities, 2 cells."""
    grid: GridIndex[str] = GridIndex(10.0)
    grid.insert("a", (1.0, 1.0))
    grid.insert("b", (2.0, 2.0))
    grid.insert("c", (-1.0, 2.0))
    stats = grid.statistics()
    assert (stats.entities, stats.occupied_cells) == (3, 2)
    assert grid.ids() == ["a", "b", "c"]


# -- grid: queries -------------------------------------------------------------


def test_query_sphere_of_other_dimension_is_refused() -> None:
    """A 3D sphere against a 2D grid raises."""
    with pytest.raises(AreaOfInterestError, match=r"^sphere has 3 dimensions, the index has 2$"):
        GridIndex[str](1.0).query_sphere(Sphere(center=(0.0, 0.0, 0.0), radius=1.0))


def test_query_box_of_other_dimension_is_refused() -> None:
    """A 2D box against a 3D grid raises."""
    with pytest.raises(AreaOfInterestError, match=r"^box has 2 dimensions, the index has 3$"):
        GridIndex[str](1.0, dimensions=3).query_box(Box(min=(0.0, 0.0), max=(1.0, 1.0)))


def test_query_radius_refuses_negative_radius() -> None:
    """query_radius validates like Sphere."""
    with pytest.raises(AreaOfInterestError, match=r"^radius must be a finite number >= 0, got -0\.5$"):
        GridIndex[str](1.0).query_radius((0.0, 0.0), -0.5)


def test_query_cells_reach_zero_is_the_own_cell() -> None:
    """reach=0 returns the entities sharing the position's cell."""
    grid: GridIndex[str] = GridIndex(10.0)
    grid.insert("same", (9.9, 0.0))
    grid.insert("next", (10.0, 0.0))
    assert grid.query_cells((0.0, 0.0), reach=0) == ["same"]


def test_query_cells_reach_one_is_the_neighbourhood() -> None:
    """reach=1 covers the 3x3 block of cells, including negative ones."""
    grid: GridIndex[str] = GridIndex(10.0)
    grid.insert("diag", (-5.0, -5.0))
    grid.insert("far", (25.0, 0.0))
    assert grid.query_cells((5.0, 5.0)) == ["diag"]


def test_query_cells_refuses_negative_reach() -> None:
    """reach must be a non-negative int."""
    with pytest.raises(AreaOfInterestError, match=r"^reach must be an int >= 0, got -1$"):
        GridIndex[str](1.0).query_cells((0.0, 0.0), reach=-1)


def test_huge_radius_walks_occupied_cells_and_finds_everything() -> None:
    """A radius far beyond the grid still returns every entity (without probing every cell)."""
    grid: GridIndex[int] = GridIndex(0.001)
    for i in range(5):
        grid.insert(i, (i * 1e6, -i * 1e6))
    assert grid.query_radius((0.0, 0.0), 1e300) == [0, 1, 2, 3, 4]


def test_radius_beyond_float_range_of_cells_finds_everything() -> None:
    """When the query's cell range overflows floats, every entity is a candidate."""
    grid: GridIndex[int] = GridIndex(0.5)
    grid.insert(1, (1e300, 0.0))
    grid.insert(2, (-1e300, 5.0))
    assert grid.query_radius((0.0, 0.0), 1.7e308) == [1, 2]


@given(_world(), st.data())
def test_query_sphere_matches_brute_force(world: Any, data: st.DataObject) -> None:
    """Grid sphere queries equal filtering every position."""
    dims, cell, positions = world
    grid = _grid(dims, cell, positions)
    sphere = Sphere(center=data.draw(_points(dims)), radius=data.draw(st.floats(0, 2e3)))
    assert grid.query_sphere(sphere) == filter_sphere(positions, sphere)


@given(_world(_wide), st.data())
def test_query_sphere_matches_brute_force_over_wide_ranges(world: Any, data: st.DataObject) -> None:
    """Far-apart entities and large radii still agree with brute force."""
    dims, cell, positions = world
    grid = _grid(dims, cell, positions)
    sphere = Sphere(center=data.draw(_points(dims, _wide)), radius=data.draw(st.floats(0, 1e300)))
    assert grid.query_sphere(sphere) == filter_sphere(positions, sphere)


@given(_world(), st.data())
def test_query_sphere_on_entity_positions_matches_brute_force(world: Any, data: st.DataObject) -> None:
    """Spheres whose surface passes through entities (edge cases) agree too."""
    dims, cell, positions = world
    if len(positions) < 2:
        return
    grid = _grid(dims, cell, positions)
    a, b = data.draw(st.lists(st.sampled_from(sorted(positions)), min_size=2, max_size=2, unique=True))
    pa, pb = positions[a], positions[b]
    radius = sum((x - y) ** 2 for x, y in zip(pa, pb, strict=True)) ** 0.5
    sphere = Sphere(center=pa, radius=radius)
    assert grid.query_sphere(sphere) == filter_sphere(positions, sphere)


@given(_world(), st.data())
def test_query_box_matches_brute_force(world: Any, data: st.DataObject) -> None:
    """Grid box queries equal filtering every position."""
    dims, cell, positions = world
    grid = _grid(dims, cell, positions)
    corners = data.draw(st.tuples(_points(dims), _points(dims)))
    box = Box(min=tuple(map(min, *corners)), max=tuple(map(max, *corners)))
    assert grid.query_box(box) == filter_box(positions, box)


@given(_world(), st.data(), st.integers(0, 2))
def test_query_cells_matches_brute_force(world: Any, data: st.DataObject, reach: int) -> None:
    """query_cells returns exactly the entities whose cell is within reach on every axis."""
    dims, cell, positions = world
    grid = _grid(dims, cell, positions)
    center = data.draw(_points(dims))

    def cell_of(p: tuple[float, ...]) -> list[int]:
        return [math.floor(x / cell) for x in p]

    home = cell_of(center)
    expected = sorted(
        k
        for k, p in positions.items()
        if all(abs(c - h) <= reach for c, h in zip(cell_of(p), home, strict=True))
    )
    assert grid.query_cells(center, reach=reach) == expected


@given(
    st.lists(
        st.tuples(st.sampled_from(["insert", "move", "remove"]), st.integers(0, 10), _points(2)),
        max_size=60,
    ),
    _cell,
    st.tuples(_points(2), st.floats(0, 1e3)),
)
def test_grid_after_mutations_matches_brute_force(ops: Any, cell: float, query: Any) -> None:
    """Any sequence of insert/move/remove leaves the grid agreeing with a plain dict."""
    grid: GridIndex[int] = GridIndex(cell)
    model: dict[int, tuple[float, ...]] = {}
    for op, k, p in ops:
        if op == "insert" and k not in model:
            grid.insert(k, p)
            model[k] = p
        elif op == "move" and k in model:
            grid.move(k, p)
            model[k] = p
        elif op == "remove" and k in model:
            grid.remove(k)
            del model[k]
    sphere = Sphere(center=query[0], radius=query[1])
    assert grid.query_sphere(sphere) == filter_sphere(model, sphere)
    assert grid.ids() == sorted(model)
    assert grid.statistics().occupied_cells == len(
        {tuple(math.floor(x / cell) for x in p) for p in model.values()}
    )
