"""zoo's linear_sum_assignment against scipy.optimize.linear_sum_assignment: the same optimal total on random
square and rectangular matrices (ties included), the same pairs where the optimum is unique, and the same
answers for forbidden (+inf) pairs, maximisation and empty matrices."""

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment as scipy_assignment

from zoo.ops.assignment import linear_sum_assignment


def random_shapes(count, seed):
    generator = torch.Generator().manual_seed(seed)
    return [tuple(torch.randint(1, 15, (2,), generator=generator).tolist()) for _ in range(count)], generator


def test_unique_optima_give_scipys_pairs():
    shapes, generator = random_shapes(60, seed=0)
    for shape in [*shapes, (100, 7), (7, 100), (30, 30)]:
        cost = torch.rand(shape, generator=generator, dtype=torch.float64)  # continuous: the optimum is unique
        rows, cols = linear_sum_assignment(cost)
        expected_rows, expected_cols = scipy_assignment(cost.numpy())
        assert rows.dtype == cols.dtype == torch.int64
        np.testing.assert_array_equal(rows.numpy(), expected_rows)
        np.testing.assert_array_equal(cols.numpy(), expected_cols)


def test_ties_give_scipys_optimal_total():
    shapes, generator = random_shapes(60, seed=1)
    for shape in shapes:
        cost = torch.randint(0, 3, shape, generator=generator).float()  # many optimal assignments
        rows, cols = linear_sum_assignment(cost)
        expected = cost.numpy()[scipy_assignment(cost.numpy())].sum()
        assert len(rows) == min(shape) and len(set(rows.tolist())) == len(set(cols.tolist())) == len(rows)
        assert cost[rows, cols].sum().item() == pytest.approx(expected)


def test_maximize_forbidden_pairs_and_arrays():
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    for maximize in (False, True):
        rows, cols = linear_sum_assignment(cost, maximize=maximize)
        expected_rows, expected_cols = scipy_assignment(cost, maximize=maximize)
        np.testing.assert_array_equal(cols.numpy(), expected_cols)
    forbidden = torch.tensor([[1.0, float("inf")], [float("inf"), 5.0], [0.0, 0.0]])
    rows, cols = linear_sum_assignment(forbidden)
    expected_rows, expected_cols = scipy_assignment(forbidden.numpy())
    np.testing.assert_array_equal(rows.numpy(), expected_rows)
    np.testing.assert_array_equal(cols.numpy(), expected_cols)


def test_empty_matrices():
    for shape in [(0, 0), (0, 5), (5, 0)]:
        rows, cols = linear_sum_assignment(torch.zeros(shape))
        assert rows.shape == cols.shape == (0,)


def test_bad_matrices_raise():
    inf = float("inf")
    with pytest.raises(ValueError, match="infeasible"):
        linear_sum_assignment(torch.tensor([[inf, inf], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="NaN"):
        linear_sum_assignment(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="-inf"):
        linear_sum_assignment(torch.tensor([[-inf, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        linear_sum_assignment(torch.zeros(3))
    with pytest.raises(TypeError, match="2-D tensor or array"):
        linear_sum_assignment("cost")
