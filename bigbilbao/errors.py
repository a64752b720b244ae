"""Errors Big Bilbao raises on purpose: one base class, a few kinds, each message one clear sentence."""


class BigBilbaoError(Exception):
    """Base of every error the project raises deliberately; the CLI prints these without a traceback."""


class SettingsError(BigBilbaoError):
    """The configuration file or an environment override is wrong."""


class JavaError(BigBilbaoError):
    """Java is missing or too old for Spark and Kafka."""


class DependencyError(BigBilbaoError):
    """JVM jars could not be resolved or downloaded."""


class BrokerError(BigBilbaoError):
    """The embedded Kafka broker could not be started, reached or stopped."""


class ContractError(BigBilbaoError):
    """A feed contract in schemas/ is malformed or refers to something that does not exist."""


class BoundaryError(BigBilbaoError):
    """A boundary layer cannot be read, reprojected or repaired."""


class PipelineError(BigBilbaoError):
    """A streaming stage failed or was asked to do something impossible."""


class BatchAbandonedError(PipelineError):
    """A writer left its micro-batch on a stop request; Spark commits nothing for it and a restart redoes it."""

    def __init__(self, batch_id: int, written: tuple[str, ...] = (), left: tuple[str, ...] = ()) -> None:
        feeds = f" with {len(written)} of {len(written) + len(left)} feeds complete" if written or left else ""
        super().__init__(f"micro-batch {batch_id} abandoned on a stop request{feeds}; a restart redoes it")
        self.batch_id, self.written, self.left = batch_id, written, left


class LineageError(BigBilbaoError):
    """A KPI value cannot be traced back to its messages."""


class PopulationError(BigBilbaoError):
    """The population reference file is malformed."""


class GoldInputError(BigBilbaoError):
    """A gold table handed to the scorecard lacks a column or has naive or misaligned times."""


class CatalogueError(BigBilbaoError):
    """The KPI catalogue is malformed or refers to a feed field that does not exist."""


class ScorecardQueryError(BigBilbaoError):
    """`scorecard show` was asked for a district that does not exist."""


class ScorecardViewError(BigBilbaoError):
    """The scorecard cannot be read for the area or period asked for."""


class ScorecardMissingError(BigBilbaoError):
    """No scorecard has been published into the lakehouse yet."""


class PeriodError(BigBilbaoError):
    """A reporting period was asked for with a naive time or an unknown name."""


class SpecError(ContractError):
    """One problem in a contract, with the dotted key it concerns; contracts.py adds the file name."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


class CatalogueSpecError(CatalogueError):
    """One catalogue mistake: the dotted key, why, and the KPI it belongs to (None at the top level)."""

    def __init__(self, key: str, reason: str, kpi: str | None = None) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason, self.kpi = key, reason, kpi
