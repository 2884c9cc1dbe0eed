"""Writing the clinic as a clinic file: the format :func:`~booking_service.clinic.files.load`
reads, so an export loaded again changes nothing."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy.orm import Session

from booking_service.clinic.files.state import current_state

HEADER = (
    '# A clinic file (docs/clinic-setup.md, "The clinic as a file"), written by export-clinic.\n'
    "# Load it with: flask --app booking_service load-clinic FILE [--dry-run]\n"
)


class _Flow(dict):
    """A mapping written on one line: a weekly row, a reminder rule."""


class _List(list):
    """A list written on one line: keys, languages."""


class _Quoted(str):
    """Text always written in double quotes: times, colours, phone numbers."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key, as people write them


_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))
_Dumper.add_representer(_List, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))
_Dumper.add_representer(_Quoted, lambda d, data: d.represent_scalar("tag:yaml.org,2002:str", data, style='"'))


def _quoted(value: Any) -> Any:
    return _Quoted(value) if isinstance(value, str) else value


def _styled(state: dict[str, Any]) -> dict[str, Any]:
    """The state with the file's layout: short things on one line, times and colours quoted."""
    document: dict[str, Any] = {}
    clinic = state["clinic"]
    if clinic is not None:
        policy = dict(clinic["policy"])
        policy["reminder_rules"] = [
            _Flow({k: _quoted(v) if k == "at" else v for k, v in rule.items()}) for rule in policy["reminder_rules"]
        ]
        for name in ("quiet_hours_start", "quiet_hours_end"):
            policy[name] = _quoted(policy[name])
        document["clinic"] = {
            **clinic,
            "phone": _quoted(clinic["phone"]),
            "languages": _List(clinic["languages"]),
            "brand_color": _quoted(clinic["brand_color"]),
            "policy": policy,
        }
    document["locations"] = [{**item, "phone": _quoted(item["phone"])} for item in state["locations"]]
    document["services"] = state["services"]
    document["practitioners"] = [
        {
            **item,
            "locations": _List(item["locations"]),
            "services": _List(item["services"]),
            "hours": {
                key: [_Flow({k: _quoted(v) if k != "day" else v for k, v in row.items()}) for row in rows]
                for key, rows in item["hours"].items()
            },
        }
        for item in state["practitioners"]
    ]
    return document


def export_clinic(session: Session) -> str:
    """The stored clinic (settings and policy, locations, services, practitioners with their
    locations, services and weekly hours) as a clinic file's text."""
    text = yaml.dump(
        _styled(current_state(session)), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    for section in ("locations", "services", "practitioners"):  # a blank line between sections
        text = text.replace(f"\n{section}:", f"\n\n{section}:")
    return HEADER + "\n" + text
