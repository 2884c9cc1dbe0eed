"""The clinic as a file (docs/clinic-setup.md): its format, read and written.

``read_document`` parses a clinic file and checks it against its JSON Schema (:mod:`.schema`),
naming the line and field of every problem; ``export_clinic`` writes the stored clinic in the
same format (:mod:`.state`: the clinic in the file's terms). Loading one is a use case
(``usecases.clinic_file``: plan, load), since a change may leave booked appointments to move.
"""

from booking_service.clinic.files.document import ClinicFileError, Document, Problem, read_document
from booking_service.clinic.files.export import export_clinic

__all__ = ["ClinicFileError", "Document", "Problem", "export_clinic", "read_document"]
