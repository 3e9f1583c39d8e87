"""Fairness of a model's decisions by a sensitive attribute, through fairlearn.

Per group: rows, selection rate (share predicted positive), and with true labels the true and
false positive rates; across groups the demographic-parity difference (largest gap in selection
rate) and the equalized-odds difference (largest gap in TPR or FPR). Only groups with enough
rows to judge enter a difference; the others are reported, marked ``judged: false`` and listed
in ``unjudged``: a gap measured on twelve rows is noise, not evidence.

Example::

    >>> fairness_figures(["a", "a", "b"], [1, 0, 0], min_group_size=1)["demographic_parity_difference"]
    0.5
"""
from __future__ import annotations

import numbers

from factory.errors import DataError

#: The group that rows without a value of the sensitive attribute form.
MISSING_GROUP = "(missing)"

#: Fewest positives (for TPR) or negatives (for FPR) a judged group needs before its rate enters
#: the equalized-odds difference: one positive more or less moves a TPR on five positives by 0.2.
MIN_CLASS_SIZE = 10


def as_arrow(values, what: str):
    """``values`` (numpy array, list, pandas Series, pyarrow Array or ChunkedArray) as one pyarrow Array."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    try:
        return pa.array(values, from_pandas=True)  # NaN -> null
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: each value as text
        return pa.array([None if v is None or v != v else str(v) for v in list(values)], type=pa.string())


def group_keys(groups):
    """Each row's group as text (JSON object keys are text); null and NaN -> ``"(missing)"``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = as_arrow(groups, "groups")
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_floating(arr.type):
        arr = pc.if_else(pc.is_nan(arr), None, arr)
    text = arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())
    return pc.fill_null(text, MISSING_GROUP).to_numpy(zero_copy_only=False)


def is_positive(values, positive_label, what: str):
    """``(is_positive, present)``: bool arrays, ``present`` false where the value is missing.

    Text labels compare with ``str(positive_label)``, numeric ones with its number (so ``1``,
    ``1.0`` and ``"1"`` name the same class of an integer column).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = as_arrow(values, what)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_floating(arr.type):
        arr = pc.if_else(pc.is_nan(arr), None, arr)
    present = arr.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        try:
            target = float(positive_label)
        except (TypeError, ValueError):
            raise DataError(f"{what}: positive_label {positive_label!r} is not a number, but {what} holds "
                            f"numbers ({arr.type})") from None
        hit = pc.equal(pc.cast(arr, pa.float64()), target)
    elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        hit = pc.equal(arr, str(positive_label))
    else:
        raise DataError(f"{what}: labels of type {arr.type} are neither text nor numbers")
    return pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(bool), present


def _plain(label):
    """A label as a JSON value: text, a plain int or float, or its text."""
    if hasattr(label, "item"):  # numpy scalar
        label = label.item()
    return label if isinstance(label, (str, bool, numbers.Number)) else str(label)


def _number(value):
    """A figure as a plain float, or None where it is undefined (NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if value == value else None


def fairness_figures(groups, y_pred, y_true=None, *, positive_label=1, min_group_size: int = 30,
                     min_class_size: int = MIN_CLASS_SIZE, sample_weight=None) -> dict:
    """Per-group selection rate, TPR and FPR, and the parity differences over the judged groups.

    Computed through fairlearn: ``MetricFrame`` with ``selection_rate``, ``true_positive_rate``
    and ``false_positive_rate`` per group; ``demographic_parity_difference`` over the rows of
    groups with at least ``min_group_size`` rows; ``equalized_odds_difference`` over the rows of
    those groups that also hold at least ``min_class_size`` positives and as many negatives.
    Rows whose prediction (or, given, true label) is missing are left out and counted.

    Args:
        groups: each row's value of the sensitive attribute; missing values form the group
            ``"(missing)"``; keys are text.
        y_pred: each row's predicted label (text or numbers).
        y_true: each row's true label, or None (then no TPR, FPR or equalized odds).
        positive_label: the class counted as selected / positive.
        min_group_size: fewest rows a group needs to be judged.
        min_class_size: fewest positives and negatives a judged group needs to enter
            the equalized-odds difference.
        sample_weight: how many rows each row stands for (``fairness_from_counts``: one row per
            combination, weighted by its count); None: one each.

    Returns:
        Strict-JSON-ready dict: ``{"groups": {g: {"rows", "selection_rate", "tpr", "fpr",
        "positives", "negatives", "judged", "judged_odds", "reasons"}},
        "demographic_parity_difference", "equalized_odds_difference", "unjudged": [g],
        "unjudged_odds": [g], "rows", "missing_rows", "positive_label", "min_group_size",
        "min_class_size"}``. A difference is None with fewer than two groups to compare, and
        ``equalized_odds_difference`` is None without ``y_true``; a rate is None where its
        denominator is zero (TPR of a group without positives).

    Raises:
        DataError: the arrays differ in length, or ``positive_label`` is absent from every array
            given while they hold two or more labels (all rows of one class may lack it: a
            window in which nobody was selected, or nobody was positive).
    """
    import numpy as np

    keys = group_keys(groups)
    pred, pred_present = is_positive(y_pred, positive_label, "y_pred")
    if len(pred) != len(keys):
        raise DataError(f"fairness: groups has {len(keys)} rows but y_pred has {len(pred)}")
    present = pred_present
    if y_true is not None:
        true, true_present = is_positive(y_true, positive_label, "y_true")
        if len(true) != len(keys):
            raise DataError(f"fairness: groups has {len(keys)} rows but y_true has {len(true)}")
        present = present & true_present
    if not pred.any() and (y_true is None or not true.any()):  # fine only if every row is one class
        seen = {str(v) for arr in (y_pred, y_true) if arr is not None
                for v in as_arrow(arr, "labels").unique().drop_null().to_pylist()}
        if len(seen) > 1:
            where = "y_pred's labels" if y_true is None else "the labels of y_true or y_pred"
            raise DataError(f"fairness: positive_label {positive_label!r} is not among {where} {sorted(seen)[:10]}")

    weight = np.ones(len(keys), np.int64) if sample_weight is None else np.asarray(sample_weight, np.int64)
    if len(weight) != len(keys):
        raise DataError(f"fairness: groups has {len(keys)} rows but sample_weight has {len(weight)}")
    missing_rows = int(weight[~present].sum())
    keys, pred, weight = keys[present], pred[present].astype(np.int8), weight[present]
    true = true[present].astype(np.int8) if y_true is not None else None
    names, inverse = np.unique(keys, return_inverse=True)
    rows = np.bincount(inverse, weights=weight, minlength=len(names)).astype(np.int64)
    positives_by_group = (np.bincount(inverse, weights=true * weight, minlength=len(names))
                          if true is not None else None)
    by_group = _by_group(keys, pred, true, weight)

    figures, judged, judged_odds = {}, [], []
    for i, (name, n) in enumerate(zip(names.tolist(), rows.tolist())):
        row = by_group[name]
        entry = {"rows": int(n), "selection_rate": _number(row["selection_rate"]), "tpr": None, "fpr": None,
                 "judged": n >= min_group_size, "reasons": []}
        if not entry["judged"]:
            entry["reasons"].append(f"{n} rows < min_group_size {min_group_size}")
        if true is not None:
            positives = int(positives_by_group[i])
            negatives = int(n) - positives
            entry.update(positives=positives, negatives=negatives,
                         tpr=_number(row["tpr"]) if positives else None,
                         fpr=_number(row["fpr"]) if negatives else None)
            entry["judged_odds"] = entry["judged"] and min(positives, negatives) >= min_class_size
            if entry["judged"] and not entry["judged_odds"]:
                entry["reasons"].append(f"{positives} positives, {negatives} negatives: fewer than "
                                        f"min_class_size {min_class_size} of one class (not in equalized odds)")
            if entry["judged_odds"]:
                judged_odds.append(name)
        if entry["judged"]:
            judged.append(name)
        figures[name] = entry

    return {
        "groups": figures,
        "demographic_parity_difference": _difference("demographic_parity", keys, pred, true, judged, weight),
        "equalized_odds_difference": (None if true is None
                                      else _difference("equalized_odds", keys, pred, true, judged_odds, weight)),
        "unjudged": [g for g in figures if not figures[g]["judged"]],
        "unjudged_odds": [] if true is None else [g for g in judged if g not in judged_odds],
        "rows": int(weight.sum()), "missing_rows": missing_rows,
        "positive_label": _plain(positive_label),
        "min_group_size": int(min_group_size), "min_class_size": int(min_class_size),
    }


def _by_group(keys, pred, true, weight=None) -> dict:
    """fairlearn's ``MetricFrame`` by group: {group: {"selection_rate", "tpr", "fpr"}}."""
    import warnings

    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    metrics = {"selection_rate": selection_rate}
    if true is not None:
        metrics.update(tpr=true_positive_rate, fpr=false_positive_rate)
    if not len(keys):
        return {}
    with warnings.catch_warnings():  # a group without positives: undefined TPR, set to None by the caller
        warnings.simplefilter("ignore")
        params = None if weight is None else {name: {"sample_weight": weight} for name in metrics}
        frame = MetricFrame(metrics=metrics, y_true=pred if true is None else true, y_pred=pred,
                            sensitive_features=keys, sample_params=params)
    return frame.by_group.to_dict("index")


def _difference(kind: str, keys, pred, true, groups: list[str], weight=None):
    """fairlearn's difference over the rows of ``groups``; None with fewer than two groups."""
    import numpy as np

    if len(groups) < 2:
        return None
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    keep = np.isin(keys, groups)
    measure = demographic_parity_difference if kind == "demographic_parity" else equalized_odds_difference
    y_true = pred[keep] if true is None else true[keep]  # selection rate reads predictions only
    weighted = {} if weight is None else {"sample_weight": weight[keep]}
    return _number(measure(y_true, pred[keep], sensitive_features=keys[keep], **weighted))


def fairness_from_counts(groups, y_pred, y_true, counts, *, positive_label=1, min_group_size: int = 30,
                         min_class_size: int = MIN_CLASS_SIZE) -> dict:
    """``fairness_figures`` of rows given as combinations: each (group, prediction, label) once with
    ``counts``, the rows it stands for (a streamed window: memory follows the combinations).

    A missing ``y_true`` is an unlabelled row. Rows, selection rates, ``judged`` and the
    demographic-parity difference are over EVERY row with a prediction, labelled or not (labels
    often arrive only for flagged rows: a selection rate over them would be biased); TPR, FPR,
    positives, negatives, ``judged_odds`` and the equalized-odds difference over the labelled rows
    (``labelled_rows`` per group); ``y_true`` None or wholly missing: no TPR, FPR or odds.

    Example::

        >>> fairness_from_counts(["a", "a", "b"], [1, 0, 0], [None, None, 1], [1, 1, 2],
        ...                      min_group_size=1)["groups"]["a"]["selection_rate"]
        0.5
    """
    import numpy as np

    counts = np.asarray(counts, np.int64)
    selection = fairness_figures(groups, y_pred, None, positive_label=positive_label, min_group_size=min_group_size,
                                 min_class_size=min_class_size, sample_weight=counts)
    if y_true is None:
        return selection
    labelled = as_arrow(y_true, "y_true")
    labelled = labelled.dictionary_decode() if hasattr(labelled, "dictionary_decode") else labelled
    keep = labelled.is_valid().to_numpy(zero_copy_only=False)
    if not keep.any():
        return {**selection, "labelled_rows": 0}
    import pyarrow as pa

    take = pa.array(np.flatnonzero(keep))
    odds = fairness_figures(as_arrow(groups, "groups").take(take), as_arrow(y_pred, "y_pred").take(take),
                            labelled.take(take), positive_label=positive_label, min_group_size=min_group_size,
                            min_class_size=min_class_size, sample_weight=counts[keep])
    out = {**selection, "equalized_odds_difference": odds["equalized_odds_difference"],
           "labelled_rows": odds["rows"], "missing_labels": int(counts[~keep].sum())}
    for name, entry in out["groups"].items():
        other = odds["groups"].get(name)
        entry["labelled_rows"] = other["rows"] if other else 0
        entry.update(tpr=other["tpr"] if other else None, fpr=other["fpr"] if other else None,
                     positives=other["positives"] if other else 0, negatives=other["negatives"] if other else 0)
        entry["judged_odds"] = bool(entry["judged"] and other and other["judged_odds"])
        if entry["judged"] and not entry["judged_odds"]:
            entry["reasons"].append(f"{entry['labelled_rows']} labelled rows ({entry['positives']} positives, "
                                    f"{entry['negatives']} negatives): too few to judge (not in equalized odds)")
    out["unjudged_odds"] = [g for g, e in out["groups"].items() if e["judged"] and not e["judged_odds"]]
    return out
