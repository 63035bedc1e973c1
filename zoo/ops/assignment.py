"""The linear assignment problem, solved by shortest augmenting paths (Jonker & Volgenant, 1987; the rectangular
form of Crouse, 2016, "On implementing 2D rectangular assignment algorithms", which scipy also implements).

For a cost matrix C (n × m, n ≤ m) find the injective assignment σ of rows to columns minimising

    Σ_i C[i, σ(i)]

(for n > m the matrix is transposed: every column gets a row). Dual potentials u (rows) and v (columns) keep
every reduced cost C[i, j] − u[i] − v[j] ≥ 0, and is 0 on the assigned pairs. Rows are added one at a time:
from the new row, Dijkstra's algorithm over reduced costs finds the cheapest alternating path to an unassigned
column; flipping the path assigns the row, and shifting the potentials by the path lengths keeps the reduced
costs non-negative. n rows, each a search over at most n + 1 assigned rows of m columns: O(n² m).

``linear_sum_assignment`` has scipy.optimize's signature and returns its answer (rows in increasing order and
their columns) as int64 tensors; +∞ forbids a pair (an assignment that needs one is infeasible: ValueError),
NaN and −∞ (+∞ with ``maximize``) are refused.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["linear_sum_assignment"]


def _check_cost(cost_matrix: object) -> Tensor:
    if isinstance(cost_matrix, Tensor):
        cost = cost_matrix.detach()
    else:
        try:
            cost = torch.as_tensor(cost_matrix)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"cost_matrix: expected a 2-D tensor or array, got {type(cost_matrix).__name__}") from None
    if cost.ndim != 2:
        raise ValueError(f"cost_matrix: expected a 2-D matrix, got shape {list(cost.shape)}")
    if cost.is_complex() or cost.dtype == torch.bool:
        raise TypeError(f"cost_matrix: expected real numbers, got dtype {cost.dtype}")
    cost = cost.to(device="cpu", dtype=torch.float64)
    if cost.isnan().any():
        raise ValueError("cost_matrix: contains NaN entries")
    return cost


def _assign_rows(cost: Tensor) -> Tensor:
    """Column of each row of ``cost`` (n ≤ m) in a minimum-cost assignment (module docstring)."""
    num_rows, num_cols = cost.shape
    u = torch.zeros(num_rows, dtype=cost.dtype)
    v = torch.zeros(num_cols, dtype=cost.dtype)
    col_of_row = torch.full((num_rows,), -1, dtype=torch.int64)
    row_of_col = torch.full((num_cols,), -1, dtype=torch.int64)
    inf = float("inf")
    for start in range(num_rows):
        # Dijkstra from `start`: shortest[j] is the length of the best alternating path found to column j.
        shortest = torch.full((num_cols,), inf, dtype=cost.dtype)
        previous_row = torch.full((num_cols,), -1, dtype=torch.int64)
        visited_cols = torch.zeros(num_cols, dtype=torch.bool)
        visited_rows = [start]
        row, path_length, sink = start, 0.0, -1
        while sink < 0:
            reduced = path_length + cost[row] - u[row] - v
            better = ~visited_cols & (reduced < shortest)
            shortest = torch.where(better, reduced, shortest)
            previous_row = torch.where(better, row, previous_row)
            candidates = torch.where(visited_cols, inf, shortest)
            path_length = float(candidates.min())
            if path_length == inf:
                raise ValueError("cost_matrix is infeasible: every complete assignment uses a +inf entry")
            # Among the nearest columns, an unassigned one ends the search now (scipy's tie-break).
            nearest = candidates == path_length
            free = nearest & (row_of_col < 0)
            col = int((free if free.any() else nearest).nonzero()[0])
            visited_cols[col] = True
            if row_of_col[col] < 0:
                sink = col
            else:
                row = int(row_of_col[col])
                visited_rows.append(row)
        # Potentials: keep reduced costs ≥ 0 and 0 on the (new) assigned pairs.
        others = torch.tensor(visited_rows[1:], dtype=torch.int64)
        u[start] += path_length
        if len(others):
            u[others] += path_length - shortest[col_of_row[others]]
        v[visited_cols] -= path_length - shortest[visited_cols]
        # Flip the alternating path back from the sink to `start`.
        col = sink
        while True:
            row = int(previous_row[col])
            row_of_col[col] = row
            col, col_of_row[row] = int(col_of_row[row]), col
            if row == start:
                break
    return col_of_row


def linear_sum_assignment(cost_matrix: Tensor, maximize: bool = False) -> tuple[Tensor, Tensor]:
    """``(row_ind, col_ind)``: the pairs of a minimum-cost (``maximize``: maximum) assignment of ``cost_matrix``
    ``[n, m]``, min(n, m) of them, rows increasing, as ``scipy.optimize.linear_sum_assignment``."""
    cost = _check_cost(cost_matrix)
    if maximize:
        cost = -cost
    if (cost == float("-inf")).any():
        best = "+inf" if maximize else "-inf"
        raise ValueError(f"cost_matrix: contains {best} entries, which make every assignment unboundedly good")
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    if cost.numel() == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty.clone()
    cols = _assign_rows(cost.contiguous())
    rows = torch.arange(len(cols))
    if transposed:
        order = cols.argsort()
        return cols[order], rows[order]
    return rows, cols
