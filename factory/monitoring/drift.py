"""Data and prediction drift of a window of traffic against a reference profile, streamed.

``DriftMonitor.update(batch)`` folds one record batch into per-feature state whose size does
not grow with rows: bin counts on the profile's edges, level counts (at most
``MAX_UNSEEN_TRACKED`` distinct unseen levels), missing counts, and a reservoir sample of at
most ``sample_rows`` values per numeric (Algorithm R: each row seen has the same chance to be in
it). ``result()`` turns the state into figures:

- numeric (and ``score``, prediction drift): PSI on the profile's quantile bins; KS
  (``scipy.stats.ks_2samp``) and Wasserstein distance (``scipy.stats.wasserstein_distance``,
  also divided by the reference std) between the profile's sample and the window's reservoir;
  missing rate before and after (a chi-squared test of the 2x2 table);
- categorical: PSI and chi-squared (``scipy.stats.chi2_contingency``, reference counts against
  window counts) over the profile's most frequent levels plus one bucket for the rest and the
  unseen, Jensen-Shannon distance (``scipy.spatial.distance.jensenshannon``, base 2: 0..1)
  over the same buckets, the unseen rate (levels the model was not trained on) and the number
  of distinct unseen levels: counts only. An unseen VALUE comes from raw traffic (an email typed
  into a free-text field) and is never copied into the figures or the reasons, unless
  ``show_unseen`` asks for that many examples (``monitor.drift.show_unseen``), each cut to
  ``UNSEEN_CHARS`` characters.

Besides the tests' figures, each numeric carries its window ``counts`` on the profile's bins
(``edges``: the inner edges, the outer bins open) and each categorical its buckets: ``levels``
(the profile's most frequent levels, then ``OTHER``), the window's ``counts`` and the profile's
``reference_shares`` in them (what ``monitor.json``'s histograms and the report draw).

A feature is drifted (``DEFAULT_THRESHOLDS``) when its test says the distributions differ
(p < ``alpha``) AND an effect size passes its floor, so a large window does not flag a
difference too small to matter; or when its missing rate moved by ``missing_delta`` (with
p < alpha), or its unseen rate passed ``unseen_rate``.
"""
from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from factory.monitoring.profile import SCORE, Profile, bin_counts, numeric_values, text_values

#: What makes a feature drifted; a plain dict, overridable per key (``DriftMonitor(thresholds=...)``).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "alpha": 0.01,             # p-value of KS / chi-squared below which the distributions differ
    "psi": 0.1,                # PSI floor (0.1: the usual "moderate shift"; no-drift windows of 1,000 rows stay < 0.03)
    "wasserstein_std": 0.1,    # Wasserstein distance in reference std units (a tenth of a std)
    "jensenshannon": 0.1,      # Jensen-Shannon distance floor (base 2)
    "missing_delta": 0.02,     # missing rate moved by more than 2 points
    "unseen_rate": 0.01,       # more than 1% of the window's values are levels the model never saw
    "categorical_bins": 20,    # levels a categorical's PSI / chi-squared / JSD use (the rest: one bucket)
}
#: Distinct unseen levels counted per categorical (beyond: counted in the unseen rate, not by name).
MAX_UNSEEN_TRACKED = 10_000
#: The longest an unseen level shown as an example (``show_unseen``) may be, in characters.
UNSEEN_CHARS = 32
#: Share given to an empty bin so PSI stays finite.
EPSILON = 1e-4
#: A categorical's last bucket: known levels beyond the counted ones, and unseen levels.
OTHER = "(other)"


class DriftMonitor:
    """Drift of a stream of record batches against ``profile`` (see the module docstring).

    Args:
        profile: the reference (``factory.monitoring.profile.load_profile``); KS and
            Wasserstein need its sample.
        thresholds: overrides of ``DEFAULT_THRESHOLDS`` (unknown keys are an error).
        sample_rows: the reservoir's size per numeric (bounded memory: 8 bytes a value).
        seed: the reservoir's seed.
        show_unseen: how many of each categorical's most frequent unseen levels to name (as
            ``top_unseen``, each cut to ``UNSEEN_CHARS`` characters); 0 (default): counts only,
            no value of the traffic in the result.

    Example:
        >>> monitor = DriftMonitor(load_profile("fraud_detection@production"))
        >>> for batch in iter_batches("serving/fraud_detection/requests", start=start):
        ...     monitor.update(batch)
        >>> monitor.result()["drifted"]
    """

    def __init__(self, profile: Profile, thresholds: dict | None = None, *, sample_rows: int = 10_000, seed: int = 0,
                 show_unseen: int = 0):
        unknown = sorted(set(thresholds or {}) - set(DEFAULT_THRESHOLDS))
        if unknown:
            from factory.errors import ConfigError

            raise ConfigError(f"drift thresholds: unknown key(s) {', '.join(unknown)}; known: "
                              f"{', '.join(DEFAULT_THRESHOLDS)}")
        self.profile = profile
        self.thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        self.rows = 0
        entries = {**profile.features, SCORE: profile.score}
        # One generator per feature: the reservoirs do not depend on how the rows were cut into batches.
        # Two per feature (which rows are kept; which slot each takes), so two draws never interleave.
        rngs = [tuple(np.random.default_rng(s) for s in seq.spawn(2))
                for seq in np.random.SeedSequence(seed).spawn(len(entries))]
        self._state = {name: (_Numeric(entry, sample_rows, rng) if entry["kind"] == "numeric"
                              else _Categorical(entry, int(show_unseen)))
                       for (name, entry), rng in zip(entries.items(), rngs)}

    def update(self, batch) -> None:
        """Fold one ``pyarrow.RecordBatch`` (or Table) in; a feature absent from it is not counted."""
        self.rows += batch.num_rows
        names = set(batch.schema.names)
        for name, state in self._state.items():
            if name in names:
                state.update(batch.column(batch.schema.get_field_index(name)))

    def result(self) -> dict:
        """``{"features": {name: figures}, "score": figures, "drifted": [names], "rows": n}``.

        Each figures dict holds ``rows`` (rows that had the column), the kind's figures,
        ``drifted`` and ``reasons`` (one line per breached check); a feature the window never
        had is ``{"rows": 0, "drifted": False, "reasons": [], "absent": True}``.
        """
        sample = self.profile.sample
        out: dict[str, Any] = {}
        for name, state in self._state.items():
            reference = None
            if sample is not None and name in sample.column_names and isinstance(state, _Numeric):
                reference = numeric_values(sample.column(name))
            out[name] = state.figures(reference, self.thresholds)
        score = out.pop(SCORE)
        drifted = [name for name, figures in out.items() if figures["drifted"]]
        return {"features": out, "score": score, "drifted": drifted, "rows": self.rows,
                "thresholds": dict(self.thresholds)}


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins (empty bins get ``EPSILON``)."""
    e = np.maximum(expected / max(expected.sum(), 1), EPSILON)
    a = np.maximum(actual / max(actual.sum(), 1), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def _missing_figures(ref_missing: int, ref_rows: int, missing: int, rows: int, th: dict) -> tuple[dict, list]:
    from scipy.stats import chi2_contingency

    ref_rate = ref_missing / ref_rows if ref_rows else 0.0
    rate = missing / rows if rows else 0.0
    p = 1.0
    if (ref_missing or missing) and (ref_rows - ref_missing or rows - missing):
        p = float(chi2_contingency([[ref_missing, ref_rows - ref_missing], [missing, rows - missing]])[1])
    figures = {"missing_rate_reference": ref_rate, "missing_rate": rate, "missing_delta": rate - ref_rate,
               "missing_pvalue": p}
    reasons = []
    if abs(rate - ref_rate) > th["missing_delta"] and p < th["alpha"]:
        reasons.append(f"missing rate {ref_rate:.1%} -> {rate:.1%} (p={p:.2g})")
    return figures, reasons


class _Numeric:
    def __init__(self, entry: dict, sample_rows: int, rng: tuple):
        self.entry = entry
        self.edges = np.asarray(entry["edges"], dtype=np.float64)
        self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.rows = self.missing = self.seen = 0
        self.total = 0.0
        self.reservoir = np.empty(sample_rows, dtype=np.float64)
        self.rng = rng

    def update(self, column) -> None:
        values = numeric_values(column)
        present = values[~np.isnan(values)]
        self.rows += len(values)
        self.missing += len(values) - len(present)
        self.counts += bin_counts(present, self.edges)
        self.total += float(present.sum())
        self._sample(present)

    def _sample(self, values: np.ndarray) -> None:
        """Algorithm R over a batch at once: value i (0-based, overall) replaces slot j ~ U[0, i] if j < k.

        Drawn as: kept with probability k / (i + 1), then a slot uniform in [0, k) (the same law;
        uniform floats are 4x cheaper than integers with a bound per row).
        """
        k = len(self.reservoir)
        fill = min(max(k - self.seen, 0), len(values))
        self.reservoir[self.seen:self.seen + fill] = values[:fill]
        rest = values[fill:]
        if len(rest) and k:
            index = np.arange(self.seen + fill, self.seen + len(values))
            keep = self.rng[0].random(len(rest)) * (index + 1) < k
            rest = rest[keep]
            slots = self.rng[1].integers(0, k, size=len(rest))  # in stream order: batching changes nothing
            rest, slots = rest[::-1], slots[::-1]
            slots, first = np.unique(slots, return_index=True)  # the last write to a slot wins, as in sequence
            self.reservoir[slots] = rest[first]
        self.seen += len(values)

    def figures(self, reference: np.ndarray | None, th: dict) -> dict:
        if not self.rows:
            return {"rows": 0, "drifted": False, "reasons": [], "absent": True}
        from scipy.stats import ks_2samp, wasserstein_distance

        figures, reasons = _missing_figures(self.entry["missing"], self.entry["rows"], self.missing, self.rows, th)
        present = self.rows - self.missing
        figures.update(rows=self.rows, psi=psi(np.asarray(self.entry["counts"], dtype=np.float64),
                                               self.counts.astype(np.float64)),
                       mean=self.total / present if present else None, mean_reference=self.entry.get("mean"),
                       counts=self.counts.tolist())
        window = self.reservoir[:min(self.seen, len(self.reservoir))]
        if reference is not None:
            reference = reference[~np.isnan(reference)]
        if reference is not None and len(reference) and len(window):
            # exact p-values cost ~15 ms per feature at 10,000 x 7,500; the asymptotic ones agree at such sizes
            ks = ks_2samp(reference, window, method="auto" if len(reference) * len(window) < 1e6 else "asymp")
            distance = float(wasserstein_distance(reference, window))
            std = self.entry.get("std") or 0.0
            figures.update(ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue), wasserstein=distance,
                           wasserstein_std=distance / std if std > 0 else None)
            effect = figures["psi"] >= th["psi"] or (figures["wasserstein_std"] or 0.0) >= th["wasserstein_std"]
            if ks.pvalue < th["alpha"] and effect:
                reasons.append(f"distribution: PSI {figures['psi']:.3f}, KS p={ks.pvalue:.2g}, "
                               f"Wasserstein {figures['wasserstein_std'] or 0.0:.2f} std")
        elif figures["psi"] >= th["psi"]:  # no sample to test against: PSI alone
            reasons.append(f"distribution: PSI {figures['psi']:.3f} (no reference sample for KS)")
        return {**figures, "drifted": bool(reasons), "reasons": reasons}


class _Categorical:
    def __init__(self, entry: dict, show_unseen: int = 0):
        self.entry = entry
        self.show_unseen = show_unseen
        known = entry.get("known")
        self.known = set(known) if known is not None else None  # None: too many levels to judge unseen
        self.tracked = set(entry["counts"])
        self.counts: dict[str, int] = {}  # of the profile's counted levels only: bounded
        self.rest = 0
        self.unseen: dict[str, int] = {}
        self.unseen_untracked = 0
        self.rows = self.missing = 0

    def update(self, column) -> None:
        import pyarrow.compute as pc

        text = text_values(column)
        self.rows += len(text)
        self.missing += text.null_count
        counted = pc.value_counts(text.drop_null())
        for level, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            if level in self.tracked:
                self.counts[level] = self.counts.get(level, 0) + count
            elif self.known is None or level in self.known:
                self.rest += count  # a known level beyond the profile's counted ones
            elif level in self.unseen or len(self.unseen) < MAX_UNSEEN_TRACKED:
                self.unseen[level] = self.unseen.get(level, 0) + count
            else:
                self.unseen_untracked += count

    def figures(self, _reference, th: dict) -> dict:
        if not self.rows:
            return {"rows": 0, "drifted": False, "reasons": [], "absent": True}
        from scipy.spatial.distance import jensenshannon
        from scipy.stats import chi2_contingency

        figures, reasons = _missing_figures(self.entry["missing"], self.entry["rows"], self.missing, self.rows, th)
        reference_counts = self.entry["counts"]
        top = sorted(reference_counts, key=lambda k: (-reference_counts[k], k))[:int(th["categorical_bins"])]
        unseen = sum(self.unseen.values()) + self.unseen_untracked
        present = self.rows - self.missing
        # Buckets: the top levels, then the rest (other known levels, and unseen ones) as one.
        expected = np.array([reference_counts[k] for k in top] +
                            [sum(reference_counts.values()) - sum(reference_counts[k] for k in top)
                             + self.entry.get("other", 0)], dtype=np.float64)
        actual = np.array([self.counts.get(k, 0) for k in top] +
                          [sum(self.counts.values()) - sum(self.counts.get(k, 0) for k in top) + self.rest + unseen],
                          dtype=np.float64)
        used = (expected + actual) > 0
        figures.update(rows=self.rows, levels=[*top, OTHER], counts=actual.astype(np.int64).tolist(),
                       reference_shares=(expected / max(expected.sum(), 1)).tolist(), psi=psi(expected, actual),
                       jensenshannon=float(jensenshannon(expected, actual, base=2)) if actual.sum() else None,
                       unseen_rate=unseen / present if present else 0.0, unseen_levels=len(self.unseen),
                       unseen_levels_capped=bool(self.unseen_untracked))
        if self.show_unseen > 0:
            figures["top_unseen"] = _examples(self.unseen, self.show_unseen)
        if actual.sum() and used.sum() > 1:
            chi2, p = chi2_contingency(np.vstack([expected[used], actual[used]]))[:2]
            figures.update(chi2=float(chi2), chi2_pvalue=float(p))
            effect = figures["psi"] >= th["psi"] or (figures["jensenshannon"] or 0.0) >= th["jensenshannon"]
            if p < th["alpha"] and effect:
                reasons.append(f"levels: PSI {figures['psi']:.3f}, chi-squared p={p:.2g}, "
                               f"Jensen-Shannon {figures['jensenshannon']:.3f}")
        if figures["unseen_rate"] > th["unseen_rate"]:
            levels = f"{'at least ' if self.unseen_untracked else ''}{len(self.unseen)} distinct"
            shown = f": {', '.join(map(repr, figures['top_unseen']))}" if figures.get("top_unseen") else ""
            reasons.append(f"unseen levels: {figures['unseen_rate']:.1%} of values ({levels}{shown})")
        return {**figures, "drifted": bool(reasons), "reasons": reasons}


def _examples(unseen: dict, count: int) -> dict:
    """The ``count`` most frequent unseen levels, each cut to ``UNSEEN_CHARS`` characters (``…`` marks a cut)."""
    out: dict[str, int] = {}
    for level, n in heapq.nlargest(count, unseen.items(), key=lambda kv: kv[1]):
        text = str(level)
        text = text if len(text) <= UNSEEN_CHARS else text[:UNSEEN_CHARS - 1] + "\u2026"
        out[text] = out.get(text, 0) + n
    return out
