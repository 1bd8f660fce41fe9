"""Exception families raised by the library; each message names the file/key and the fix."""


class ReproError(Exception):
    """Base class of every error Reprise raises on purpose."""


class TraceError(ReproError):
    """A job trace, throughput profile or cluster spec is malformed."""


class ConfigError(ReproError):
    """The workflow configuration is inconsistent or names something unknown."""


class DataError(ReproError):
    """An upstream file could not be obtained or failed its checksum."""


class SimulationError(ReproError):
    """A simulation reached a state the upstream simulator would abort on."""
