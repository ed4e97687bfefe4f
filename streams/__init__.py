"""Moving events: file sources, in-memory sources and sinks, the DuckDB output, and (in
sub-packages) Kafka and the simulator."""

from streams.files import Record, SourceError, check_readable, merge_by_time, read_file
from streams.memory import ListOutput, records_from_dicts
from streams.store_sink import StoreOutput

__all__ = [
    "ListOutput",
    "Record",
    "SourceError",
    "StoreOutput",
    "check_readable",
    "merge_by_time",
    "read_file",
    "records_from_dicts",
]
