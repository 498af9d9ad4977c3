"""Exact path-dependent TreeSHAP for XGBoost boosters, in numba.

``TreeShap(booster).contributions(X)`` gives the numbers of
``booster.predict(xgb.DMatrix(X), pred_contribs=True)`` (path-dependent TreeSHAP, Lundberg et
al. 2018, Algorithm 2, as XGBoost's ``RegTree::TreeShap``) without XGBoost's per-call
``DMatrix`` and predictor overhead, and with a cheaper evaluation of the same quantity: one row
of a 100-tree depth-6 model costs a fraction of a millisecond, and a batch is one compiled loop
over its rows.

The trees are read once from ``booster.save_raw("json")`` and flattened into numpy arrays (all
kept trees one after the other): children, split feature, threshold, default direction,
categorical split sets (as bitsets), leaf values, cover (``sum_hessian``), and each node's
cover-weighted mean value (XGBoost's ``FillNodeMeanValues``), whose sum over the roots plus the
base margin is the bias column.

How the SHAP values are computed
--------------------------------
Path-dependent TreeSHAP adds, for every leaf, the exact Shapley values of a product game over
the ``n`` distinct features on the leaf's root path: feature ``s`` has a zero fraction ``z_s``
(product of ``cover(child) / cover(node)`` over the path's splits on ``s``; fixed by the tree)
and a one fraction ``o_s`` (1 if the row goes the path's way at every split on ``s``, else 0),
and the leaf's game is ``g(S) = v * prod_{s in S} o_s * prod_{s not in S} z_s``. XGBoost
evaluates it with the EXTEND / UNWIND recursion over every node. Here the Shapley weight is
written as a Beta integral, ``k! (n-1-k)! / n! = int_0^1 t^k (1-t)^(n-1-k) dt``, which sums the
subsets in closed form::

    phi_j = v * (o_j - z_j) * int_0^1 prod_{s != j} h_s(t) dt,   h_s(t) = (1 - t) z_s + o_s t

The integrand is a polynomial of degree ``n - 1``, so Gauss-Legendre quadrature with
``ceil(n / 2)`` nodes gives the integral exactly; the products without ``j`` come from prefix and
suffix products. Per row: each split is evaluated once (in an order where parents come before
children), passing down a bitmask of the path features the row does not follow; then each leaf
costs O(n^2) multiply-adds, with no divisions and no per-node path copies. The result equals
XGBoost's up to float rounding (XGBoost works in float32, this in float64).

Routing is XGBoost's: a value is compared as float32; NaN goes the node's default direction;
numerical splits go left when ``x < split_condition``; categorical splits go right when the
category (the value truncated to an integer) is in the node's set, and left otherwise (also for
negative or out-of-range values). Categorical features are passed as their integer codes in the
encoding the model was trained with (``DataFrame[col].cat.codes``, with -1 as NaN).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numba
import numpy as np

__all__ = ["TreeShap"]

# objective -> link between the stored base_score and the base margin
_LOGIT = "logit"
_IDENTITY = "identity"
_LOG = "log"
_BASE_LINK = {
    "binary:logistic": _LOGIT,
    "reg:logistic": _LOGIT,
    "binary:logitraw": _IDENTITY,  # its base_score is stored as a margin
    "binary:hinge": _IDENTITY,
    "reg:squarederror": _IDENTITY,
    "reg:pseudohubererror": _IDENTITY,
    "reg:absoluteerror": _IDENTITY,
    "count:poisson": _LOG,
    "reg:gamma": _LOG,
    "reg:tweedie": _LOG,
}
# XGBoost's OutOfRangeCat(): categories must be in [0, 2**24)
_MAX_CAT = float(1 << 24)
# the per-row mask of not-followed path features is an int64
_MAX_PATH_FEATURES = 62


def _parse_number(value: Any) -> float:
    """A number of the model JSON: ``0.5``, ``"5E-1"`` or ``"[5E-1]"`` (xgboost 3.x)."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.startswith("["):
        parts = [p for p in re.split(r"[\s,]+", text.strip("[]")) if p]
        if len(parts) != 1:
            raise ValueError(
                f"TreeShap supports single-output models only; base_score is {value!r}"
            )
        text = parts[0]
    return float(text)


def _base_margin(base_score: float, objective: str) -> float:
    """The margin-space base score, from the stored base_score and the objective's link."""
    link = _BASE_LINK.get(objective)
    if link is None:
        raise ValueError(
            f"TreeShap does not know how objective {objective!r} turns base_score into a "
            f"margin; supported objectives: {sorted(_BASE_LINK)}"
        )
    if link == _LOGIT:
        if not 0.0 < base_score < 1.0:
            raise ValueError(f"base_score {base_score} is not a probability in (0, 1)")
        return math.log(base_score / (1.0 - base_score))
    if link == _LOG:
        return math.log(base_score)
    return base_score


class TreeShap:
    """Flattened trees of an XGBoost booster for exact TreeSHAP contributions.

    Parameters
    ----------
    booster
        A trained ``xgboost.Booster``: gbtree, one output (binary classification, or regression
        with one of the objectives in ``_BASE_LINK``). gblinear, dart, multi-class and
        multi-target models raise ``ValueError``; random forests (``num_parallel_tree > 1``)
        are supported.
    iteration_range
        ``(begin, end)`` boosting rounds to keep, as XGBoost's ``iteration_range``; ``None``
        or ``(0, 0)`` keeps all of them, ``end == 0`` means up to the last round. After early
        stopping use ``(0, booster.best_iteration + 1)``. A range with ``begin > 0`` (which
        XGBoost's ``pred_contribs`` refuses) gives the values of the sliced model
        ``booster[begin:end]``.

    Attributes
    ----------
    n_features : int
        Number of input columns the model expects.
    base_margin : float
        Margin-space base score (``logit(base_score)`` for binary:logistic).
    expected_value : float
        The bias column: ``base_margin`` plus each kept tree's root mean value.
    n_trees : int
        Number of trees kept.
    max_depth : int
        Largest depth of the kept trees.
    """

    def __init__(self, booster: Any, iteration_range: tuple[int, int] | None = None) -> None:
        model = json.loads(bytes(booster.save_raw("json")).decode("utf-8"))
        learner = model["learner"]
        gbooster = learner["gradient_booster"]
        name = gbooster.get("name")
        if name != "gbtree":
            raise ValueError(f"TreeShap supports gbtree boosters only, not {name!r}")
        params = learner["learner_model_param"]
        num_class = int(params.get("num_class", "0") or 0)
        num_target = int(params.get("num_target", "1") or 1)
        if num_class > 1 or num_target > 1:
            raise ValueError(
                "TreeShap supports single-output models only "
                f"(num_class={num_class}, num_target={num_target})"
            )
        objective = learner.get("objective", {}).get("name", "")
        self.objective: str = objective
        self.base_margin = _base_margin(_parse_number(params["base_score"]), objective)
        self.n_features = int(params["num_feature"])

        gbtree = gbooster["model"]
        trees = gbtree["trees"]
        tree_info = [int(t) for t in gbtree.get("tree_info", [0] * len(trees))]
        if any(t != 0 for t in tree_info):
            raise ValueError("TreeShap supports single-output models only (tree_info != 0)")
        indptr = [int(i) for i in gbtree.get("iteration_indptr", range(len(trees) + 1))]
        n_rounds = len(indptr) - 1
        begin, end = (0, 0) if iteration_range is None else (int(v) for v in iteration_range)
        if end == 0:
            end = n_rounds
        if not 0 <= begin < end <= n_rounds:
            raise ValueError(
                f"iteration_range {iteration_range} is outside the model's {n_rounds} rounds"
            )
        self._flatten(trees[indptr[begin] : indptr[end]])

    def _flatten(self, trees: list[dict[str, Any]]) -> None:
        roots = np.zeros(len(trees), dtype=np.int64)
        lefts, rights, feats, thrs, dleft, cat_node, covers = [], [], [], [], [], [], []
        cat_offsets, cat_sizes, words = [], [], []
        n_words = 0
        offset = 0
        for k, tree in enumerate(trees):
            if int(tree.get("tree_param", {}).get("size_leaf_vector", "1") or 1) > 1:
                raise ValueError("TreeShap does not support multi-target (vector-leaf) trees")
            left = np.asarray(tree["left_children"], dtype=np.int64)
            right = np.asarray(tree["right_children"], dtype=np.int64)
            feat = np.asarray(tree["split_indices"], dtype=np.int64)
            n = left.size
            is_leaf = left < 0
            if np.any(feat[~is_leaf] >= self.n_features) or np.any(feat[~is_leaf] < 0):
                raise ValueError("a tree splits on a feature outside num_feature")
            roots[k] = offset
            lefts.append(np.where(is_leaf, -1, left + offset))
            rights.append(np.where(is_leaf, -1, right + offset))
            feats.append(np.where(is_leaf, 0, feat))
            # split_conditions holds the threshold of a split and the value of a leaf
            thrs.append(np.asarray(tree["split_conditions"], dtype=np.float32))
            dleft.append(np.asarray(tree["default_left"], dtype=np.bool_))
            covers.append(np.asarray(tree["sum_hessian"], dtype=np.float32))
            split_type = np.asarray(tree.get("split_type", [0] * n), dtype=np.int64)
            cat_node.append((split_type == 1) & ~is_leaf)
            c_off = np.zeros(n, dtype=np.int64)
            c_size = np.zeros(n, dtype=np.int64)
            categories = tree.get("categories", [])
            for nid, beg, cnt in zip(
                tree.get("categories_nodes", []),
                tree.get("categories_segments", []),
                tree.get("categories_sizes", []),
                strict=True,
            ):
                cats = np.asarray(categories[int(beg) : int(beg) + int(cnt)], dtype=np.int64)
                n_w = int(cats.max()) // 32 + 1 if cats.size else 0
                bits = np.zeros(n_w, dtype=np.uint32)
                np.bitwise_or.at(bits, cats >> 5, (np.uint32(1) << (cats & 31)).astype(np.uint32))
                words.append(bits)
                c_off[int(nid)] = n_words
                c_size[int(nid)] = n_w
                n_words += n_w
            cat_offsets.append(c_off)
            cat_sizes.append(c_size)
            offset += n

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            if not parts:
                return np.zeros(0, dtype=dtype)
            return np.ascontiguousarray(np.concatenate(parts), dtype=dtype)

        self._roots = roots
        self._left = cat(lefts, np.int64)
        self._right = cat(rights, np.int64)
        self._feature = cat(feats, np.int64)
        self._threshold = cat(thrs, np.float32)
        self._default_left = cat(dleft, np.bool_)
        self._is_cat = cat(cat_node, np.bool_)
        self._cat_offset = cat(cat_offsets, np.int64)
        self._cat_size = cat(cat_sizes, np.int64)
        self._cat_words = cat(words, np.uint32)
        self.n_trees = len(trees)
        self._renumber(roots, cat(covers, np.float64))

    def _renumber(self, roots: np.ndarray, cover: np.ndarray) -> None:
        """Number the splits first, parents before children, then the leaves by path width.

        The per-row kernel then evaluates the splits in array order and walks the leaves in
        array order, with leaves of the same number of path features next to each other.
        Also computes the bias column.
        """
        order, slot, leaf_node, feat_ptr, leaf_feat, leaf_zero, depth = _tree_paths(
            roots, self._left, self._right, self._feature, cover
        )
        # split_conditions holds a leaf's value
        value = self._threshold.astype(np.float64)
        mean = _node_means(order, self._left, self._right, value, cover)
        self.expected_value = float(self.base_margin + mean[roots].sum())
        width = np.diff(feat_ptr)
        widest = int(width.max(initial=0))
        if widest > _MAX_PATH_FEATURES:
            raise ValueError(
                f"a leaf's path splits on {widest} distinct features; TreeShap supports at most "
                f"{_MAX_PATH_FEATURES}"
            )
        by_width = np.argsort(width, kind="stable")
        old_of_new = np.concatenate([order, leaf_node[by_width]]).astype(np.int64)
        new_of_old = np.full(self._left.size, -1, dtype=np.int64)
        new_of_old[old_of_new] = np.arange(old_of_new.size)

        def children(child: np.ndarray) -> np.ndarray:
            child = child[old_of_new]
            return np.where(child >= 0, new_of_old[np.maximum(child, 0)], -1)

        self._roots = new_of_old[roots]
        self._left, self._right = children(self._left), children(self._right)
        self._n_splits = int(order.size)
        self._feature = self._feature[old_of_new]
        self._threshold = self._threshold[old_of_new]
        self._default_left = self._default_left[old_of_new]
        self._is_cat = self._is_cat[old_of_new]
        self._cat_offset = self._cat_offset[old_of_new]
        self._cat_size = self._cat_size[old_of_new]
        self._slot = slot[old_of_new]
        self._value = value[old_of_new]
        self._leaf_value = value[leaf_node[by_width]]
        self._feat_ptr = np.zeros(width.size + 1, dtype=np.int64)
        np.cumsum(width[by_width], out=self._feat_ptr[1:])
        # the path features of the leaves, in their new order
        take = np.arange(int(self._feat_ptr[-1]), dtype=np.int64) + np.repeat(
            feat_ptr[by_width] - self._feat_ptr[:-1], width[by_width]
        )
        self._leaf_feat = leaf_feat[take]
        self._leaf_zero = leaf_zero[take]
        self._q_nodes, self._q_weights = _gauss_legendre(max(widest, 8))
        self.max_depth = int(depth)

    def _check(self, matrix: np.ndarray) -> np.ndarray:
        x = np.asarray(matrix)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"expected a (rows, {self.n_features}) matrix, got shape {np.shape(matrix)}"
            )
        # XGBoost compares float32 values with float32 thresholds
        return np.ascontiguousarray(x, dtype=np.float32)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """SHAP values of each row, like ``predict(..., pred_contribs=True)``.

        Parameters
        ----------
        matrix
            ``(rows, n_features)`` float32 or float64 array (a 1-D array is one row), columns in
            the model's feature order; NaN is missing; categorical features as the integer
            codes of the training encoding.

        Returns
        -------
        numpy.ndarray
            ``(rows, n_features + 1)`` float64: per-feature SHAP values, then the bias column
            (``expected_value``); each row sums to the row's raw margin.
        """
        return _shap_rows(
            self._check(matrix),
            self._roots,
            self._n_splits,
            self._left,
            self._right,
            self._feature,
            self._threshold,
            self._default_left,
            self._is_cat,
            self._cat_offset,
            self._cat_size,
            self._cat_words,
            self._slot,
            self._feat_ptr,
            self._leaf_feat,
            self._leaf_zero,
            self._leaf_value,
            self._q_nodes,
            self._q_weights,
            self.expected_value,
        )

    def margin(self, matrix: np.ndarray) -> np.ndarray:
        """Raw margin of each row: the kept trees' leaf values plus the base margin.

        Parameters
        ----------
        matrix
            ``(rows, n_features)`` float32 or float64, as for :meth:`contributions`.

        Returns
        -------
        numpy.ndarray
            ``(rows,)`` float64, like ``predict(..., output_margin=True)``.
        """
        return _margin_rows(
            self._check(matrix),
            self._roots,
            self._left,
            self._right,
            self._feature,
            self._threshold,
            self._default_left,
            self._is_cat,
            self._cat_offset,
            self._cat_size,
            self._cat_words,
            self._value,
            self.base_margin,
        )


def _gauss_legendre(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]; row ``n`` has ``ceil(n / 2)`` of them.

    They integrate polynomials of degree ``< n`` exactly, as the integrand of a leaf with ``n``
    path features is. Unused places (at least 4 columns) hold node 0.5 with weight 0.
    """
    nodes = np.full((width + 1, max((width + 1) // 2, 4)), 0.5, dtype=np.float64)
    weights = np.zeros_like(nodes)
    for n in range(1, width + 1):
        q = (n + 1) // 2
        x, w = np.polynomial.legendre.leggauss(q)
        nodes[n, :q] = (x + 1.0) / 2.0
        weights[n, :q] = w / 2.0
    return nodes, weights


# ---------------------------------------------------------------------- numba kernels
# The kernels take the flat arrays and write every loop out (no helpers taking arrays: numba
# keeps reference counting around such calls, which costs more than the arithmetic here).


@numba.njit(cache=True)
def _tree_paths(roots, left, right, feature, cover):
    """Walk the trees once: split order, feature slots, and each leaf's path features.

    Returns ``order`` (the splits, parents before children), ``slot`` (per split: the index of
    its feature among the distinct features of its root path, in order of first appearance),
    ``leaf_node``, ``feat_ptr`` / ``leaf_feat`` / ``leaf_zero`` (per leaf: its distinct path
    features by slot and their zero fractions, the products of ``cover(child) / cover(node)``
    over the path's splits on them) and the largest depth.
    """
    n_nodes = left.size
    n_leaves = 0
    for i in range(n_nodes):
        if left[i] < 0:
            n_leaves += 1
    order = np.empty(n_nodes - n_leaves, dtype=np.int64)
    slot = np.zeros(n_nodes, dtype=np.int64)
    leaf_node = np.empty(n_leaves, dtype=np.int64)
    feat_ptr = np.zeros(n_leaves + 1, dtype=np.int64)
    leaf_feat = np.empty(0, dtype=np.int64)
    leaf_zero = np.empty(0, dtype=np.float64)
    # depth-first, parents before children; path[d] = node at depth d of the current path
    stack = np.empty(n_nodes + 1, dtype=np.int64)
    depth_of = np.zeros(n_nodes, dtype=np.int64)
    path = np.empty(n_nodes + 1, dtype=np.int64)
    feats = np.empty(n_nodes + 1, dtype=np.int64)
    zeros = np.empty(n_nodes + 1, dtype=np.float64)
    n_order = 0
    n_leaf = 0
    n_feat = 0
    max_depth = 0
    for t in range(roots.size):
        stack[0] = roots[t]
        depth_of[roots[t]] = 0
        top = 1
        while top > 0:
            top -= 1
            node = stack[top]
            d = depth_of[node]
            path[d] = node
            max_depth = max(max_depth, d)
            # distinct features of the path above this node, in order of first appearance
            nf = 0
            for p in range(d):
                f = feature[path[p]]
                s = -1
                for q in range(nf):
                    if feats[q] == f:
                        s = q
                        break
                if s < 0:
                    s = nf
                    feats[nf] = f
                    zeros[nf] = 1.0
                    nf += 1
                zeros[s] *= cover[path[p + 1]] / cover[path[p]]
            if left[node] >= 0:
                s = nf
                for q in range(nf):
                    if feats[q] == feature[node]:
                        s = q
                        break
                slot[node] = s
                order[n_order] = node
                n_order += 1
                depth_of[left[node]] = d + 1
                depth_of[right[node]] = d + 1
                stack[top] = right[node]
                stack[top + 1] = left[node]
                top += 2
                continue
            leaf_node[n_leaf] = node
            if n_feat + nf > leaf_feat.size:
                grown = max(2 * leaf_feat.size, n_feat + nf, 64)
                new_feat = np.empty(grown, dtype=np.int64)
                new_zero = np.empty(grown, dtype=np.float64)
                new_feat[:n_feat] = leaf_feat[:n_feat]
                new_zero[:n_feat] = leaf_zero[:n_feat]
                leaf_feat = new_feat
                leaf_zero = new_zero
            for q in range(nf):
                leaf_feat[n_feat + q] = feats[q]
                leaf_zero[n_feat + q] = zeros[q]
            n_feat += nf
            n_leaf += 1
            feat_ptr[n_leaf] = n_feat
    return (
        order[:n_order].copy(),
        slot,
        leaf_node[:n_leaf].copy(),
        feat_ptr[: n_leaf + 1].copy(),
        leaf_feat[:n_feat].copy(),
        leaf_zero[:n_feat].copy(),
        max_depth,
    )


@numba.njit(cache=True)
def _node_means(order, left, right, value, cover):
    """Cover-weighted mean leaf value under each node (XGBoost's ``FillNodeMeanValues``).

    ``order`` lists the splits parents before children; leaves keep their value.
    """
    mean = value.copy()
    for k in range(order.size - 1, -1, -1):
        node = order[k]
        lc = left[node]
        rc = right[node]
        mean[node] = (mean[lc] * cover[lc] + mean[rc] * cover[rc]) / cover[node]
    return mean


@numba.njit(cache=True)
def _margin_rows(
    x, roots, left, right, feature, threshold, default_left, is_cat, c_off, c_size, words,
    value, base,
):  # fmt: skip
    n_rows = x.shape[0]
    out = np.empty(n_rows, dtype=np.float64)
    for r in range(n_rows):
        total = 0.0
        for t in range(roots.size):
            node = roots[t]
            while left[node] >= 0:
                v = x[r, feature[node]]
                if np.isnan(v):
                    go_left = default_left[node]
                elif is_cat[node]:
                    # XGBoost's common::Decision: right only if the category is in the set
                    go_left = True
                    if v >= 0.0 and v < _MAX_CAT:
                        c = np.int64(v)
                        wi = c >> 5
                        if wi < c_size[node] and (words[c_off[node] + wi] >> (c & 31)) & 1:
                            go_left = False
                else:
                    go_left = v < threshold[node]
                node = left[node] if go_left else right[node]
            total += np.float64(value[node])
        out[r] = total + base
    return out


@numba.njit(cache=True, fastmath={"contract"})
def _shap_rows(
    x, roots, n_splits, left, right, feature, threshold, default_left, is_cat, c_off, c_size,
    words, slot, feat_ptr, leaf_feat, leaf_zero, leaf_value, q_nodes, q_weights, bias,
):  # fmt: skip
    """SHAP values of the rows (see the module docstring).

    Nodes are numbered splits first, parents before children, then the leaves in ``feat_ptr``
    order. ``fastmath`` allows only fused multiply-adds.
    """
    n_rows, m = x.shape
    n_leaves = feat_ptr.size - 1
    out = np.zeros((n_rows, m + 1), dtype=np.float64)
    # per node: bit s set = the row leaves the path to the node at a split on feature slot s
    miss = np.zeros(left.size, dtype=np.int64)
    size = 4 * q_nodes.shape[0] + 4
    pre = np.empty(size, dtype=np.float64)
    hh = np.empty(size, dtype=np.float64)
    acc = np.empty(size, dtype=np.float64)
    for r in range(n_rows):
        for t in range(roots.size):
            miss[roots[t]] = 0
        for node in range(n_splits):
            v = x[r, feature[node]]
            if np.isnan(v):
                go_left = default_left[node]
            elif is_cat[node]:
                # XGBoost's common::Decision: right only if the category is in the set
                go_left = True
                if v >= 0.0 and v < _MAX_CAT:
                    c = np.int64(v)
                    wi = c >> 5
                    if wi < c_size[node] and (words[c_off[node] + wi] >> (c & 31)) & 1:
                        go_left = False
            else:
                go_left = v < threshold[node]
            bit = np.int64(1) << slot[node]
            off_left = np.int64(0) if go_left else bit
            miss[left[node]] = miss[node] | off_left
            miss[right[node]] = miss[node] | (bit ^ off_left)

        # each leaf with n path features: share_s = v * d_s * int_0^1 prod_{j != s} h_j(t) dt
        # with d_j = o_j - z_j and h_j(t) = z_j + d_j t, by Gauss-Legendre on ceil(n / 2)
        # nodes; per node, prefix products going up the slots, suffix products coming down.
        # Up to 8 features the nodes run as 3 or 4 interleaved chains of scalars (unsigned
        # indices spare numba's negative-index handling there).
        for leaf in range(n_leaves):
            f0 = feat_ptr[leaf]
            n = feat_ptr[leaf + 1] - f0
            if n == 0:
                continue
            lm = miss[n_splits + leaf]
            val = leaf_value[leaf]
            # Paths of up to 6 / 8 features (most leaves of depth <= 8 trees) need 3 / 4
            # quadrature nodes: written out by hand so that numba keeps them in registers;
            # longer paths take the general loop below.
            if n <= 6:
                t0 = q_nodes[n, 0]
                t1 = q_nodes[n, 1]
                t2 = q_nodes[n, 2]
                p0 = 1.0
                p1 = 1.0
                p2 = 1.0
                for s in range(n):
                    z = leaf_zero[f0 + s]
                    d = (1 - ((lm >> s) & 1)) - z
                    h0 = z + d * t0
                    h1 = z + d * t1
                    h2 = z + d * t2
                    k0 = np.uint64(3 * s)
                    k1 = k0 + np.uint64(1)
                    k2 = k0 + np.uint64(2)
                    pre[k0] = p0
                    pre[k1] = p1
                    pre[k2] = p2
                    hh[k0] = h0
                    hh[k1] = h1
                    hh[k2] = h2
                    p0 *= h0
                    p1 *= h1
                    p2 *= h2
                s0 = q_weights[n, 0] * val
                s1 = q_weights[n, 1] * val
                s2 = q_weights[n, 2] * val
                for s in range(n - 1, -1, -1):
                    k0 = np.uint64(3 * s)
                    k1 = k0 + np.uint64(1)
                    k2 = k0 + np.uint64(2)
                    integral = pre[k0] * s0 + pre[k1] * s1 + pre[k2] * s2
                    d = (1 - ((lm >> s) & 1)) - leaf_zero[f0 + s]
                    out[r, leaf_feat[f0 + s]] += d * integral
                    s0 *= hh[k0]
                    s1 *= hh[k1]
                    s2 *= hh[k2]
            elif n <= 8:
                t0 = q_nodes[n, 0]
                t1 = q_nodes[n, 1]
                t2 = q_nodes[n, 2]
                t3 = q_nodes[n, 3]
                p0 = 1.0
                p1 = 1.0
                p2 = 1.0
                p3 = 1.0
                for s in range(n):
                    z = leaf_zero[f0 + s]
                    d = (1 - ((lm >> s) & 1)) - z
                    h0 = z + d * t0
                    h1 = z + d * t1
                    h2 = z + d * t2
                    h3 = z + d * t3
                    k0 = np.uint64(4 * s)
                    k1 = k0 + np.uint64(1)
                    k2 = k0 + np.uint64(2)
                    k3 = k0 + np.uint64(3)
                    pre[k0] = p0
                    pre[k1] = p1
                    pre[k2] = p2
                    pre[k3] = p3
                    hh[k0] = h0
                    hh[k1] = h1
                    hh[k2] = h2
                    hh[k3] = h3
                    p0 *= h0
                    p1 *= h1
                    p2 *= h2
                    p3 *= h3
                s0 = q_weights[n, 0] * val
                s1 = q_weights[n, 1] * val
                s2 = q_weights[n, 2] * val
                s3 = q_weights[n, 3] * val
                for s in range(n - 1, -1, -1):
                    k0 = np.uint64(4 * s)
                    k1 = k0 + np.uint64(1)
                    k2 = k0 + np.uint64(2)
                    k3 = k0 + np.uint64(3)
                    integral = pre[k0] * s0 + pre[k1] * s1 + pre[k2] * s2 + pre[k3] * s3
                    d = (1 - ((lm >> s) & 1)) - leaf_zero[f0 + s]
                    out[r, leaf_feat[f0 + s]] += d * integral
                    s0 *= hh[k0]
                    s1 *= hh[k1]
                    s2 *= hh[k2]
                    s3 *= hh[k3]
            else:
                for s in range(n):
                    acc[s] = 0.0
                for i in range((n + 1) // 2):
                    t = q_nodes[n, i]
                    prod = 1.0
                    for s in range(n):
                        z = leaf_zero[f0 + s]
                        hs = z + ((1 - ((lm >> s) & 1)) - z) * t
                        pre[s] = prod
                        hh[s] = hs
                        prod *= hs
                    suf = q_weights[n, i] * val
                    for s in range(n - 1, -1, -1):
                        acc[s] += pre[s] * suf
                        suf *= hh[s]
                for s in range(n):
                    d = (1 - ((lm >> s) & 1)) - leaf_zero[f0 + s]
                    out[r, leaf_feat[f0 + s]] += d * acc[s]
        out[r, m] += bias
    return out
