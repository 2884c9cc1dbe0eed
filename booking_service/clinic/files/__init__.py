"""The clinic as a file: ``load-clinic`` and ``export-clinic`` (docs/clinic-setup.md).

``read_document`` parses a clinic file and checks it against its JSON Schema
(:mod:`.schema`), naming the line and field of every problem; ``plan_changes`` says what loading
it would change and ``load_clinic`` changes it, both by one path (:mod:`.apply`), through the
catalogue's own functions; ``export_clinic`` writes the stored clinic in the same format.
"""

from booking_service.clinic.files.apply import Change, FieldChange, describe, load_clinic, plan_changes
from booking_service.clinic.files.document import ClinicFileError, Document, Problem, read_document
from booking_service.clinic.files.export import export_clinic

__all__ = [
    "Change",
    "ClinicFileError",
    "Document",
    "FieldChange",
    "Problem",
    "describe",
    "export_clinic",
    "load_clinic",
    "plan_changes",
    "read_document",
]
