"""What fairness needs of a streamed window: rows per (group, prediction, label) combination.

The monitor job folds each batch in (``FairnessCounts.update``): the sensitive column, the
logged prediction and the row's label (joined from the labels file by ``request_id`` and
``row``, or the window's own target column; missing where the row is not labelled) are counted
per combination with ``pyarrow``'s ``group_by``, so memory follows the number of combinations
(groups x classes x (labels + 1)), not the rows. ``figures()`` hands the combinations and their
counts to ``fairness.fairness_from_counts``: selection rates over every row of the window,
TPR / FPR over its labelled rows.

When the sensitive column is not in the window (the log excludes it) it is read from the labels
file, so only labelled rows have a group and only they are counted.
"""
from __future__ import annotations

from collections import Counter

GROUP, PREDICTION, LABEL = "_group", "_prediction", "_label"


class FairnessCounts:
    """Rows per (group, prediction, label) of a stream of batches (see the module docstring).

    Args:
        sensitive: the sensitive column (in the window, or else in ``labels``).
        labels: ``labels.load_labels``' table, or None.
        target: the window's own target column used as the label when there is no labels file.
    """

    def __init__(self, sensitive: str, labels=None, target: str | None = None):
        self.sensitive, self.labels, self.target = sensitive, labels, target
        self.counts: Counter = Counter()
        self.types: dict = {}
        self.has_labels = labels is not None
        self._keys = None
        if labels is not None:
            import pyarrow as pa
            import pyarrow.compute as pc

            wanted = ["request_id", "row", "label"] + ([sensitive] if sensitive in labels.column_names else [])
            keys = labels.select(wanted)
            self._keys = keys.set_column(1, "row", pc.cast(keys["row"], pa.int32()))

    def update(self, batch) -> None:
        """Fold one batch in (a batch without ``prediction`` adds nothing)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = batch.schema.names
        if "prediction" not in names:
            return
        column = {name: batch.column(batch.schema.get_field_index(name)) for name in names}
        table = pa.table({PREDICTION: column["prediction"]})
        from_window = self.sensitive in names
        if from_window:
            table = table.append_column(GROUP, _plain(column[self.sensitive]))
        if self._keys is not None:
            if "request_id" in names:
                rows = pc.cast(column["row"], pa.int32()) if "row" in names else pa.array([0] * batch.num_rows, pa.int32())
                table = table.append_column("request_id", pc.cast(column["request_id"], pa.string())) \
                    .append_column("row", rows)
                group = [] if from_window or self.sensitive not in self._keys.column_names else [self.sensitive]
                keys = self._keys.select(["request_id", "row", "label", *group]).rename_columns(
                    ["request_id", "row", LABEL, *([GROUP] if group else [])])
                table = table.join(keys, keys=["request_id", "row"], join_type="left outer").drop_columns(
                    ["request_id", "row"])
            else:
                table = table.append_column(LABEL, pa.nulls(batch.num_rows, self._keys.schema.field("label").type))
            if not from_window and GROUP in table.column_names:
                table = table.filter(pc.is_valid(table[LABEL]))  # only labelled rows have a group
        elif self.target in names:
            table = table.append_column(LABEL, column[self.target])
            self.has_labels = True
        if GROUP not in table.column_names:
            return
        if LABEL not in table.column_names:
            table = table.append_column(LABEL, pa.nulls(table.num_rows, pa.int64()))
        counted = table.group_by([GROUP, PREDICTION, LABEL]).aggregate([([], "count_all")])
        for name in (GROUP, PREDICTION, LABEL):
            self.types.setdefault(name, counted.schema.field(name).type)
        for group, prediction, label, n in zip(*(counted[c].to_pylist() for c in (GROUP, PREDICTION, LABEL,
                                                                                  "count_all"))):
            self.counts[(group, prediction, label)] += n

    def figures(self, *, positive_label=1, min_group_size: int = 30) -> dict:
        """``fairness.fairness_from_counts`` of the counted combinations."""
        import pyarrow as pa

        from factory.monitoring.fairness import fairness_from_counts
        from factory.monitoring.labels import like

        keys = list(self.counts)
        arrays = [pa.array([k[i] for k in keys], type=self.types.get(name, pa.string()))
                  for i, name in enumerate((GROUP, PREDICTION, LABEL))]
        groups, predictions, labels = arrays
        if self.labels is not None and len(labels) and not pa.types.is_null(labels.type):
            classes = set(predictions.unique().to_pylist())
            labels = like(labels, predictions.type, classes)
        return fairness_from_counts(groups, predictions, labels if self.has_labels else None,
                                    [self.counts[k] for k in keys], positive_label=positive_label,
                                    min_group_size=min_group_size)


def _plain(column):
    """A dictionary-encoded column as its values (group_by keys of one type across batches)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
