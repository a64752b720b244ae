"""Where each feed's messages went: the books that prove nothing is lost (read without Spark)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc

from bigbilbao.tables import read


@dataclass(frozen=True)
class Ledger:
    """One feed: messages in bronze, and how many became silver rows, quarantined rows or counted duplicates."""

    feed: str
    bronze: int
    silver: int
    quarantined: int
    duplicates: int

    @property
    def balanced(self) -> bool:
        """Every bronze message is in exactly one place."""
        return self.bronze == self.silver + self.quarantined + self.duplicates


def feed_ledger(lakehouse: Path, feed: str) -> Ledger:
    """Count a feed's messages in bronze, silver, quarantine and the duplicate metrics."""
    quarantine = read.read_table(lakehouse, "quality", "quarantine", ["feed"])
    metrics = read.read_table(lakehouse, "quality", "dq_metrics", ["feed", "rule", "violations"])
    duplicates = metrics.filter(pc.and_(pc.equal(metrics["feed"], feed), pc.equal(metrics["rule"], "duplicate")))
    return Ledger(
        feed=feed,
        bronze=read.read_table(lakehouse, "bronze", feed, ["offset"]).num_rows,
        silver=read.read_table(lakehouse, "silver", feed, ["entity_id"]).num_rows,
        quarantined=quarantine.filter(pc.equal(quarantine["feed"], feed)).num_rows,
        duplicates=pc.sum(duplicates["violations"]).as_py() or 0,
    )
