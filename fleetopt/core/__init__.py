"""The base every layer uses, importing nothing else of fleetopt: errors, THE JSON cleaner,
output files, deadlines, the run status and worker processes (``docs/architecture.md``)."""

from fleetopt.core.deadline import Deadline
from fleetopt.core.errors import FleetoptError, unknown_name
from fleetopt.core.files import STDOUT, check_output_path, check_outputs, write_output
from fleetopt.core.jsonio import is_missing, jsonable, read_json, schema, to_json, versioned
from fleetopt.core.processes import process_context
from fleetopt.core.status import Status

__all__ = [
    "STDOUT", "Deadline", "FleetoptError", "Status", "check_output_path", "check_outputs",
    "is_missing", "jsonable", "process_context", "read_json", "schema", "to_json",
    "unknown_name", "versioned", "write_output",
]
