"""One Design for both front ends: rows in memory and sums from a file, with read-only statistics.

The rows path (build_design) and the DuckDB path (helpers.large.design_from_file) return the same class,
carrying the same terms, levels, reference levels, counts and dropped rows; only the rows themselves are
missing from a file's design, and asking for them says so. The statistics cannot be changed on either
path, not even after a pickle round trip. Each DataError message is written once in the source.
"""

from __future__ import annotations

import ast
import pickle
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers.design import Design, RowsUnavailable, SufficientStats, build_design
from helpers.large import design_from_file
from helpers.validate import RowsDroppedWarning

FORMULA = "y ~ x + arm + (1 | g)"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 240
    g = rng.integers(0, 12, n)
    data = pd.DataFrame(
        {
            "y": rng.normal(size=n) + 0.5 * g,
            "x": rng.normal(size=n),
            "arm": rng.choice(["b", "a", "c"], n),
            "g": [f"site{k:02d}" for k in g],
        }
    )
    data.loc[[3, 17, 50], "x"] = np.nan
    data.loc[[9], "arm"] = None
    return data


@pytest.fixture(scope="module")
def designs(frame, tmp_path_factory):
    path = tmp_path_factory.mktemp("design") / "data.csv"
    frame.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        rows = build_design(frame, FORMULA)
        duck = design_from_file(path, FORMULA)
    return rows, duck


def test_both_front_ends_give_one_class_with_the_same_description(designs):
    rows, duck = designs
    assert type(rows) is type(duck) is Design
    assert (rows.source, duck.source) == ("rows", "duckdb")
    assert rows.has_rows and not duck.has_rows
    for name in ("term_names", "response", "group", "reference_levels", "levels", "n_dropped"):
        assert getattr(rows, name) == getattr(duck, name), name
    assert rows.dropped_by_column == duck.dropped_by_column == {"x": 3, "arm": 1}
    assert (rows.n_obs, rows.n_rows, rows.n_groups) == (duck.n_obs, duck.n_rows, duck.n_groups)
    assert rows.n_rows == 240 and rows.n_obs == 236
    assert list(rows.group_labels) == list(duck.group_labels)
    np.testing.assert_array_equal(rows.stats.counts, duck.stats.counts)
    np.testing.assert_allclose(rows.stats.beta_ols, duck.stats.beta_ols, rtol=1e-10)


def test_a_file_design_says_that_it_has_no_rows(designs):
    _, duck = designs
    for name in ("X", "y", "group_codes"):
        with pytest.raises(RowsUnavailable, match=r"computed from 'data.csv' by DuckDB"):
            getattr(duck, name)


@pytest.mark.parametrize("which", [0, 1], ids=["rows", "duckdb"])
def test_statistics_are_read_only_on_both_paths(designs, which):
    stats = designs[which].stats
    arrays = {k: v for k, v in vars(stats).items() if isinstance(v, np.ndarray)}
    assert set(arrays) >= {"counts", "sum_q", "sum_e", "r_factor", "beta_ols", "within_qq"}
    for name, value in arrays.items():
        assert not value.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            value[...] = 0
    with pytest.raises(AttributeError):
        stats.ete = 0.0
    again = pickle.loads(pickle.dumps(stats))
    assert not again.sum_q.flags.writeable
    np.testing.assert_array_equal(again.sum_q, stats.sum_q)


def test_statistics_never_share_writeable_memory_with_the_caller():
    """A view passed in is copied (it could be changed through its base); owned arrays are frozen."""
    base = np.ones((3, 2))
    stats = SufficientStats(
        counts=np.array([2, 2, 2]),
        sum_q=base[:, :],  # a view of a writeable array
        sum_e=np.zeros(3),
        ete=1,
        r_factor=np.eye(2),
        beta_ols=np.zeros(2),
        within_qq=np.eye(2),
        within_qe=np.zeros(2),
        within_ee=1,
    )
    base[0, 0] = 5.0
    assert stats.sum_q[0, 0] == 1.0 and not stats.sum_q.flags.writeable
    assert isinstance(stats.ete, float)


def test_method_replaces_path_and_path_still_works_with_a_warning(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowsDroppedWarning)
        new = build_design(frame, FORMULA, method="rows")
        with pytest.warns(DeprecationWarning, match="method="):
            old = build_design(frame, FORMULA, path="rows")
    np.testing.assert_array_equal(new.stats.sum_e, old.stats.sum_e)


def _categorical_frame(n: int, seed: int = 5) -> pd.DataFrame:
    """Question-shaped columns: a categorical condition and cluster (with an unused category each)."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 24, n)
    return pd.DataFrame(
        {
            "y": rng.normal(size=n) + 0.3 * cluster,
            "condition": pd.Categorical.from_codes(
                rng.integers(0, 2, n), categories=["unstim", "stim", "never"]
            ),
            "cluster": pd.Categorical.from_codes(
                cluster, categories=[f"c{k:02d}" for k in range(25)]
            ),
        }
    )


def test_a_categorical_design_keeps_its_cells_and_builds_x_when_asked():
    data = _categorical_frame(5_000)
    cells = build_design(data, "y ~ condition + (1 | cluster)")
    rows = build_design(data, "y ~ condition + (1 | cluster)", method="rows")
    assert cells.rows.cell_rows.shape == (2, 2) and rows.rows.cell_rows is None
    assert cells.rows._X is None  # nothing of N x p yet: the fit needs only the statistics
    np.testing.assert_array_equal(cells.rows.cell_rows[cells.rows.cell_id], rows.X)
    np.testing.assert_array_equal(cells.X, rows.X)
    np.testing.assert_array_equal(cells.group_codes, rows.group_codes)
    assert cells.group_codes.dtype == rows.group_codes.dtype == np.int64
    assert list(cells.group_labels) == list(rows.group_labels) == [f"c{k:02d}" for k in range(24)]
    assert cells.levels == rows.levels == {"condition": ["unstim", "stim"]}
    for name in ("counts", "sum_e", "sum_q", "within_qq", "beta_ols"):
        np.testing.assert_allclose(
            getattr(cells.stats, name), getattr(rows.stats, name), atol=1e-10
        )


def test_r_has_a_positive_diagonal_so_every_path_gives_the_same_rotated_sums(designs):
    """X = QR is unique once R's diagonal is positive: the row path, the cell path and the sums from a
    file (R from a Cholesky factor) then agree element by element, not only in X's basis."""
    data = _categorical_frame(5_000)
    formula = "y ~ condition + (1 | cluster)"
    cells = build_design(data, formula).stats
    rows = build_design(data, formula, method="rows").stats
    rows_x, duck_x = designs  # a numeric predictor: QR of the rows against DuckDB's Cholesky
    for a, b in ((cells, rows), (rows_x.stats, duck_x.stats)):
        assert (np.diag(a.r_factor) > 0).all() and (np.diag(b.r_factor) > 0).all()
        for name in ("r_factor", "sum_q", "within_qq", "within_qe", "sum_e", "beta_ols"):
            np.testing.assert_allclose(
                getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-9, err_msg=name
            )


@pytest.mark.parametrize("spread", [1.0, 1e6])
def test_the_one_pass_squares_fall_back_to_a_second_pass_when_they_would_cancel(spread):
    """The grouped pass takes the squares about each cell's mean from sums of (y - c)^2 when the cells'
    means are close compared with the spread within them, and from a second pass when they are far
    apart (spread 1e6: within-cell SD 1e-3 of the between-cell one); both equal the squares taken
    directly about each cell's mean."""
    from helpers.design import _cell_pass

    rng = np.random.default_rng(5)
    key = rng.integers(0, 6, 20_000)
    y = 1e3 + spread * key + rng.normal(size=key.size)
    count, mean, squares, shift = _cell_pass(lambda rows: key[rows], y, 6)
    np.testing.assert_array_equal(count, np.bincount(key, minlength=6))
    exact_mean = np.array([y[key == k].mean() for k in range(6)])
    exact = np.array([((y[key == k] - exact_mean[k]) ** 2).sum() for k in range(6)])
    # the means are kept relative to the shift: adding it back rounds to the shift's last digit
    np.testing.assert_allclose(mean + shift, exact_mean, rtol=1e-14, atol=4e-16 * abs(shift))
    np.testing.assert_allclose(squares, exact, rtol=1e-11)


def test_the_response_is_not_changed_by_a_later_change_to_the_data():
    """The design's y views the column without a copy, and holds the Series, so pandas copies first."""
    data = _categorical_frame(1_000)
    design = build_design(data, "y ~ condition + (1 | cluster)")
    before = float(design.y[0])
    data.loc[0, "y"] = 1e9
    data["y"] *= 2.0
    assert design.y[0] == before and not design.y.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        design.y[0] = 0.0


def test_a_categorical_design_allocates_less_than_its_data():
    """The issue's memory goal (at most 1.5x the DataFrame above it; the benchmark measures 1e7 rows)."""
    import tracemalloc

    data = _categorical_frame(1_000_000)
    size = int(data.memory_usage(deep=True).sum())
    build_design(data.head(1_000), "y ~ condition + (1 | cluster)")  # imports and caches first
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        design = build_design(data, "y ~ condition + (1 | cluster)")
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert design.n_obs == 1_000_000
    assert peak < 1.0 * size, (peak / 2**20, size / 2**20)


def _skeleton(node: ast.AST) -> str:
    """The literal text of a message, with '{}' for each value formatted into it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _skeleton(node.left) + _skeleton(node.right)
    return "{}"


def test_each_data_error_message_is_written_once():
    package = Path(helpers.__file__).parent
    found = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "DataError"
                and node.args
            ):
                text = " ".join(_skeleton(node.args[0]).split())
                if text.strip("{} "):  # a message built elsewhere is checked where it is built
                    found[text].append(f"{path.relative_to(package)}:{node.lineno}")
    assert len(found) > 40  # the scan sees the messages
    repeated = {text: places for text, places in found.items() if len(places) > 1}
    assert not repeated, repeated
