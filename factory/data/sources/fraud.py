"""Synthetic card transactions with a learnable, noisy fraud signal (the default source)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from factory.config.keys import unknown_key
from factory.config.ranges import check_argument
from factory.config.schemas import FraudNewCategoryConf, FraudSensitiveConf, FraudShiftConf, FraudSourceConf
from factory.data.sources.base import DataSource, LoadedTable
from factory.data.spec import TableSchema
from factory.errors import DataError

# name, share of transactions, typical log-amount, fraud risk (logit), share made online
_CATEGORIES = (
    ("grocery", 0.20, 3.4, -0.8, 0.05),
    ("fuel", 0.10, 3.8, -0.3, 0.02),
    ("restaurants", 0.12, 3.5, -0.6, 0.10),
    ("pharmacy", 0.05, 3.2, -0.7, 0.10),
    ("utilities", 0.04, 4.5, -1.0, 0.70),
    ("clothing", 0.07, 4.2, -0.2, 0.35),
    ("home_improvement", 0.04, 4.6, -0.4, 0.20),
    ("electronics", 0.06, 5.3, 0.8, 0.45),
    ("travel", 0.03, 6.0, 0.6, 0.60),
    ("airlines", 0.02, 6.2, 0.7, 0.85),
    ("hotels", 0.03, 5.5, 0.3, 0.50),
    ("entertainment", 0.05, 3.9, -0.2, 0.40),
    ("online_gaming", 0.04, 3.6, 1.2, 0.95),
    ("digital_goods", 0.05, 3.0, 0.9, 0.95),
    ("gift_cards", 0.03, 4.5, 1.4, 0.60),
    ("jewelry", 0.02, 5.8, 1.1, 0.25),
)
_FUEL = [c[0] for c in _CATEGORIES].index("fuel")
# Card-present channels and their risk; "online" is decided per category first.
_CHANNELS = ("online", "chip", "contactless", "swipe")
_CHANNEL_RISK = np.array([0.8, -0.4, -0.2, 0.4])
_OFFLINE_SHARES = np.array([0.50, 0.35, 0.15])  # chip, contactless, swipe
_N_MERCHANTS = 500
_N_COMPROMISED = 8
# Transactions per hour of day: a daytime peak, few at night.
_HOUR_SHARES = 0.15 + np.exp(-0.5 * ((np.arange(24) - 14.5) / 4.0) ** 2)
# Weight of the features against the noise in the risk score: at 50k rows this gives a
# logistic regression a PR-AUC near 0.4 and gradient-boosted trees near 0.5.
_SIGNAL = 2.5
_MISSING_DISTANCE = 0.015
_MISSING_CATEGORY = 0.01
# Drift knobs. A shift is in these standard deviations: the default world's (seed 42) at
# 1,000,000 rows, so "0.5 sd" is the same move at any row count and in any world.
_REFERENCE_SD = {"amount": 249.3, "hour": 5.03, "day_of_week": 2.01, "distance_from_home_km": 39.09,
                 "card_age_days": 568.6, "tx_velocity_24h": 2.33}
_DECIMALS = {"amount": 2, "distance_from_home_km": 1}  # as generated; the other shiftable columns are whole
_N_NEW_MERCHANTS = 20  # of a new category, numbered after the world's (M0500, ...)
# Customer age bands (of card holders making transactions) and their shares.
_GROUPS = ("18-29", "30-49", "50+")
_GROUP_SHARES = np.array([0.22, 0.38, 0.40])

_SCHEMA = TableSchema(  # without the sensitive column (see FraudSource.schema)
    features={
        "amount": "numeric",
        "merchant_category": "categorical",
        "hour": "numeric",
        "day_of_week": "numeric",
        "distance_from_home_km": "numeric",
        "card_age_days": "numeric",
        "tx_velocity_24h": "numeric",
        "is_foreign": "numeric",
        "channel": "categorical",
        "merchant_id": "categorical",
    },
    target="is_fraud",
    task="binary",
)


class FraudSource(DataSource):
    """Card transactions generated from a seed: no files, no download.

    Fraud is drawn from a latent risk score, a logistic function of the features (amount
    relative to the merchant's category, night hours, distance, foreign use, channel,
    young cards, transaction bursts, a few compromised merchants), a few interactions and
    Gaussian noise. The intercept is solved so the expected fraud share is ``fraud_rate``.
    About 1.5% of ``distance_from_home_km`` and 1% of ``merchant_category`` are null.

    Args:
        rows: number of transactions.
        fraud_rate: expected share of fraud, in (0, 0.5).
        seed: the same seed gives a byte-identical table.
        world_seed: the seed of the merchant world (each merchant's category, popularity and
            risk, the compromised merchants); ``None``: ``seed``. The transactions come from
            ``seed``: a new ``seed`` with the training run's ``world_seed`` is fresh traffic
            from the same world (no drift); another ``world_seed`` moves the merchants.
        shift: ``{column: k}`` adds ``k`` reference standard deviations (``_REFERENCE_SD``:
            the default world's at 1M rows) to a numeric column once the label is drawn, so
            only that column moves (covariate shift; whole-number columns are rounded up or
            down at random so the mean moves by exactly k sd on average). Columns: amount,
            hour, day_of_week, distance_from_home_km, card_age_days, tx_velocity_24h. Values
            may leave their natural range (hour 26): that is the drift.
        new_category: ``{name, share, amount, risk, online}``: ``share`` of the transactions go
            to 20 new merchants (M0500...) of a category the default never makes (an unseen
            level of merchant_category and merchant_id), with that typical amount, fraud risk
            (on the categories' scale) and online share; they enter the label like any other.
        sensitive: ``{column, group, disparity}``: adds a categorical column (age bands 18-29,
            30-49, 50+: 22%, 38%, 40%), drawn independently of everything else; ``disparity``
            is added to the fraud logit of ``group`` (the intercept still gives ``fraud_rate``
            overall), so a model that reads the column flags that group more. It is a model
            feature (no data key drops a column). ``None`` (default): no column.

        ``fraud_rate`` is a drift knob too: the same ``seed`` with another rate gives the same
        features row for row and labels drawn at the new rate (the features' P(x) stays).
        Each knob's extra randomness comes from its own stream (``[seed, i]``), so with every
        knob off the table is byte for byte the one generated before the knobs existed.

    Example:
        >>> FraudSource(rows=1000, seed=0).load().table.num_rows
        1000
        >>> FraudSource(rows=1000, seed=1, world_seed=0, shift={"amount": 0.5}).load().table.num_rows
        1000
    """

    name = "fraud"

    def __init__(self, rows: int = 50000, fraud_rate: float = 0.015, seed: int = 42, world_seed: int | None = None,
                 shift: Any = None, new_category: Any = None, sensitive: Any = None):
        # The schema's ranges: a config was checked against them already, a source built in Python was not.
        check_argument(FraudSourceConf, "rows", int(rows), "data.source.rows", DataError)
        check_argument(FraudSourceConf, "fraud_rate", float(fraud_rate), "data.source.fraud_rate", DataError)
        if world_seed is not None:
            check_argument(FraudSourceConf, "world_seed", int(world_seed), "data.source.world_seed", DataError)
        self.rows = int(rows)
        self.fraud_rate = float(fraud_rate)
        self.seed = int(seed)
        self.world_seed = None if world_seed is None else int(world_seed)
        self.shift = _knob(FraudShiftConf, shift, "data.source.shift")
        self.new_category = _knob(FraudNewCategoryConf, new_category, "data.source.new_category")
        if self.new_category is not None and self.new_category.name in (c[0] for c in _CATEGORIES):
            raise DataError(f"data.source.new_category.name: {self.new_category.name!r} is a category already")
        self.sensitive = _knob(FraudSensitiveConf, sensitive, "data.source.sensitive")
        if self.sensitive is not None and self.sensitive.column in (*_SCHEMA.features, _SCHEMA.target):
            raise DataError(f"data.source.sensitive.column: {self.sensitive.column!r} is a column already")

    @property
    def schema(self) -> TableSchema:
        """The table's schema: the sensitive column, when asked for, is the last feature."""
        if self.sensitive is None:
            return _SCHEMA
        return dataclasses.replace(_SCHEMA, features={**_SCHEMA.features, self.sensitive.column: "categorical"})

    def load(self) -> LoadedTable:
        table = generate_transactions(self.rows, self.fraud_rate, self.seed, self.world_seed, shift=self.shift,
                                      new_category=self.new_category, sensitive=self.sensitive)
        return LoadedTable(table, self.schema)


def _knob(schema: type, value: Any, key: str) -> Any:
    """``value`` (a mapping or ``schema``'s dataclass) as ``schema``, each key and value checked, or None.

    The same one-line messages as config validation (``data.source.shift.amont: unknown key
    (did you mean amount?)...``): a source built in Python saw no validation.
    """
    if value is None:
        return None
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if not isinstance(value, Mapping):
        raise DataError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
    values = {str(name): item for name, item in value.items()}
    for name, item in values.items():
        problem = unknown_key(key, name, schema, None)
        if problem:
            raise DataError(problem)
        check_argument(schema, name, item, f"{key}.{name}", DataError)
    return schema(**values)


def generate_transactions(rows: int, fraud_rate: float, seed: int, world_seed: int | None = None, *,
                          shift: FraudShiftConf | None = None, new_category: FraudNewCategoryConf | None = None,
                          sensitive: FraudSensitiveConf | None = None) -> pa.Table:
    """Generate the fraud table (see ``FraudSource``); vectorized, about 50 ms per 50k rows.

    The knobs' randomness comes from streams of their own (``[seed, i]``, the new category's
    merchants from ``[world seed, 1]``): the main stream is drawn the same with them or without.
    """
    rng = np.random.default_rng(seed)
    names, _, log_amount, cat_risk, online_share = (np.array(c) for c in zip(*_CATEGORIES))
    # The transactions' stream first draws a world of its own, kept or not, so it is consumed
    # the same whichever world is used: world_seed == seed (or None) is the table of old.
    merchant_cat, popularity, merchant_risk = _merchant_world(rng)
    if world_seed is not None and world_seed != seed:
        merchant_cat, popularity, merchant_risk = _merchant_world(np.random.default_rng(world_seed))
    merchant = rng.choice(_N_MERCHANTS, rows, p=popularity / popularity.sum())
    merchant_ids = np.array([f"M{i:04d}" for i in range(_N_MERCHANTS)])
    if new_category is not None:
        names, log_amount, cat_risk, online_share = (
            np.append(a, v) for a, v in zip((names, log_amount, cat_risk, online_share), (
                new_category.name, np.log(new_category.amount), new_category.risk, new_category.online)))
        world = np.random.default_rng([seed if world_seed is None else world_seed, 1])
        new_popularity = world.lognormal(0.0, 1.0, _N_NEW_MERCHANTS)
        merchant_risk = np.concatenate([merchant_risk, world.normal(0.0, 0.35, _N_NEW_MERCHANTS)])
        merchant_cat = np.concatenate([merchant_cat, np.full(_N_NEW_MERCHANTS, len(_CATEGORIES))])
        merchant_ids = np.array([f"M{i:04d}" for i in range(_N_MERCHANTS + _N_NEW_MERCHANTS)])
        draw = np.random.default_rng([seed, 2])
        chosen = np.flatnonzero(draw.random(rows) < new_category.share)
        merchant[chosen] = _N_MERCHANTS + draw.choice(_N_NEW_MERCHANTS, len(chosen),
                                                      p=new_popularity / new_popularity.sum())
    cat = merchant_cat[merchant]

    online = rng.random(rows) < online_share[cat]
    channel = np.where(online, 0, 1 + rng.choice(3, rows, p=_OFFLINE_SHARES))
    hour = rng.choice(24, rows, p=_HOUR_SHARES / _HOUR_SHARES.sum())
    day = rng.choice(7, rows, p=np.array([1, 1, 1, 1, 1.1, 1.25, 1.15]) / 7.5)
    amount = np.round(rng.lognormal(log_amount[cat], 0.9) + 0.5, 2)
    distance = np.round(rng.lognormal(np.log(8.0), 1.3, rows), 1)
    # Most far-away transactions are abroad; online ones often are too.
    foreign_p = _sigmoid(2.0 * (np.log1p(distance) - np.log(300.0))) + 0.01 + 0.05 * online
    foreign = rng.random(rows) < foreign_p
    card_age = (rng.gamma(1.3, 500.0, rows) + 1).astype(np.int64)
    velocity = rng.negative_binomial(2, 0.45, rows)

    night = (hour < 5) | (hour == 23)
    unusual_amount = np.log(amount) - log_amount[cat]  # > 0: large for this kind of shop
    young = card_age < 30
    burst = velocity >= 6
    risk = _SIGNAL * (
        cat_risk[cat]
        + merchant_risk[merchant]
        + _CHANNEL_RISK[channel]
        + 0.8 * np.maximum(unusual_amount, 0.0)
        + 0.2 * (np.log(amount) - 4.0)
        + 1.1 * night
        + 0.35 * np.log1p(distance)
        + 0.9 * foreign
        + 0.8 * young
        - 0.3 * np.log1p(card_age / 30.0)
        + 0.1 * velocity
        + 1.0 * burst
        + 0.2 * (day >= 5)
        # Interactions a linear model cannot express on its own.
        + 1.0 * (online & foreign)
        + 0.8 * (night & (unusual_amount > 0.5))
        + 1.0 * (young & burst)
        + 1.5 * ((channel == 3) & (cat == _FUEL))  # skimmed magstripes at the pump
    ) + rng.normal(0.0, 0.8, rows)
    if sensitive is not None:
        group = np.random.default_rng([seed, 3]).choice(len(_GROUPS), rows, p=_GROUP_SHARES)
        risk = risk + sensitive.disparity * (group == _GROUPS.index(sensitive.group))
    prob = _sigmoid(risk + _intercept(risk, fraud_rate))
    is_fraud = (rng.random(rows) < prob).astype(np.int64)

    no_distance = rng.random(rows) < _MISSING_DISTANCE
    no_category = rng.random(rows) < _MISSING_CATEGORY
    columns = {
        "amount": amount,
        "merchant_category": names[cat],
        "hour": hour.astype(np.int64),
        "day_of_week": day.astype(np.int64),
        "distance_from_home_km": distance,
        "card_age_days": card_age,
        "tx_velocity_24h": velocity.astype(np.int64),
        "is_foreign": foreign.astype(np.int64),
        "channel": np.array(_CHANNELS)[channel],
        "merchant_id": merchant_ids[merchant],
    }
    if shift is not None:  # after the label: only these columns move, the rest keep their joint distribution
        columns.update(_shifted(columns, dataclasses.asdict(shift), np.random.default_rng([seed, 4])))
    if sensitive is not None:
        columns[sensitive.column] = np.array(_GROUPS)[group]
    masks = {"merchant_category": no_category, "distance_from_home_km": no_distance}
    return pa.table({**{name: pa.array(values, mask=masks.get(name)) for name, values in columns.items()},
                     "is_fraud": is_fraud})


def _shifted(columns: dict[str, np.ndarray], sds: dict[str, float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each column of ``sds`` (but zeros) plus that many reference standard deviations.

    A whole-number column is rounded down or up at random (up with the fraction's
    probability): it stays whole and its mean moves by the exact shift on average.
    """
    moved = {}
    for name, k in sds.items():
        if not k:
            continue
        values = columns[name] + k * _REFERENCE_SD[name]
        if columns[name].dtype.kind == "i":
            low = np.floor(values)
            moved[name] = (low + (rng.random(len(values)) < values - low)).astype(np.int64)
        else:
            moved[name] = np.round(values, _DECIMALS[name])
    return moved


def _merchant_world(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each merchant's category, popularity and risk (a few compromised merchants get +2.5).

    Every category gets one merchant, the rest go by share; popularity is heavy-tailed.
    """
    shares = np.array([c[1] for c in _CATEGORIES])
    merchant_cat = np.concatenate([np.arange(len(_CATEGORIES)),
                                   rng.choice(len(_CATEGORIES), _N_MERCHANTS - len(_CATEGORIES), p=shares / shares.sum())])
    popularity = rng.lognormal(0.0, 1.0, _N_MERCHANTS)
    merchant_risk = rng.normal(0.0, 0.35, _N_MERCHANTS)
    merchant_risk[rng.choice(_N_MERCHANTS, _N_COMPROMISED, replace=False)] += 2.5
    return merchant_cat, popularity, merchant_risk


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))


def _intercept(risk: np.ndarray, rate: float) -> float:
    """The shift b with mean(sigmoid(risk + b)) == rate, by bisection (monotone in b)."""
    lo, hi = -40.0 - risk.max(), 40.0 - risk.min()
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _sigmoid(risk + mid).mean() < rate else (lo, mid)
    return 0.5 * (lo + hi)
