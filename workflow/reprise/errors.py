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


class ProvisionError(ReproError):
    """A testbed node could not be created, reached or trusted, or a cluster inventory is wrong."""


class TestbedError(ReproError):
    """A process of a testbed run failed, a node died mid-run, or results could not be collected."""

    __test__ = False  # a name pytest would otherwise try to collect as a test class
