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
