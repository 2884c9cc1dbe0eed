"""Every model, imported in one place so ``Base.metadata`` is complete (Alembic, tests)."""

from booking_service.audit.models import AuditEvent  # noqa: F401
from booking_service.clinic.models import (  # noqa: F401
    ClinicSettings,
    Closure,
    Location,
    Practitioner,
    Service,
    TimeOff,
    WorkingHours,
)
from booking_service.db import Base  # noqa: F401
from booking_service.exercises.models import (  # noqa: F401
    Alert,
    Exercise,
    FunctionScore,
    Program,
    ProgramItem,
    ProgramLog,
    ProgramLogItem,
    ProgramVersion,
)
from booking_service.messaging.models import InboundMessage  # noqa: F401
from booking_service.outbox.models import OutboxMessage, ProviderStatusEvent  # noqa: F401
from booking_service.patients.models import (  # noqa: F401
    BookingDraft,
    ConsentEvent,
    Patient,
    PatientNote,
    SmsOptOut,
)
from booking_service.scheduling.models import Appointment, TreatmentPlan  # noqa: F401
from booking_service.staff.models import ApiToken, User  # noqa: F401
from booking_service.triage.models import TriageReview  # noqa: F401
from booking_service.waitlist.models import WaitlistEntry, WaitlistOffer, WaitlistOpening  # noqa: F401
