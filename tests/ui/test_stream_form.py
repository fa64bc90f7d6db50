"""The Streams page's form: submitted values become the domain's input, the domain's refusals land
on their fields, and credentials are never shown back."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audit_app.audit.stream_targets import TargetPolicy
from audit_app.audit.streams import SPEC, StreamConfigError, StreamLag, safe_target
from audit_app.models import LogStream
from audit_app.ui.stream_form import change_input, errors_by_field, form_values, spec_input, stream_row


def refused(raw: dict[str, object]) -> tuple[dict[str, str], str]:
    with pytest.raises(ValidationError) as exc:
        SPEC.validate_python(raw)
    return errors_by_field(exc.value)


def test_a_submitted_form_is_the_api_body_and_refusals_are_shown_by_field() -> None:
    form = {
        "name": " SIEM ",
        "target": "siem.example.com:6514",
        "format": "ocsf",
        "owner": "tenant:acme",
        "actions": "user.login, role.assign",
        "results": "denied error",
        "options.tls": "on",
        "options.facility": "10",
        "options.hostname": "",
    }
    spec = SPEC.validate_python(spec_input(form, "syslog"))
    assert (spec.name, spec.tenant_id, spec.format, spec.actions) == (
        "SIEM",
        "acme",
        "ocsf",
        ["user.login", "role.assign"],
    )
    assert spec.options.model_dump(exclude_none=True) == {
        "tls": True,
        "facility": 10,
        "app_name": "audit_app",
    }

    fields, general = refused(spec_input(form | {"target": "no port", "options.facility": "99"}, "syslog"))
    assert fields["target"].startswith("must be host:port")
    assert "options.facility" in fields
    assert general == ""
    fields, _ = refused(spec_input({"name": "h", "target": "https://x", "credentials.secret": "short"}, "http"))
    assert "credentials.secret" in fields
    _, general = refused(
        spec_input(
            {"name": "h", "target": "https://x", "credentials.secret": "s" * 20, "options.header_name": "X-T"}, "http"
        )
    )
    assert "header" in general  # a rule over two fields belongs to no single one
    fields, _ = errors_by_field(StreamConfigError(["body", "tenant_id"], "Value error, is not a registered tenant"))
    assert fields == {"owner": "is not a registered tenant"}


def test_a_refused_target_address_is_shown_on_the_target_field() -> None:
    spec = SPEC.validate_python(spec_input({"name": "s", "target": "169.254.169.254:514"}, "syslog"))
    with pytest.raises(StreamConfigError) as exc:
        safe_target(spec, TargetPolicy())
    fields, general = errors_by_field(exc.value)
    assert fields["target"].startswith("169.254.169.254 is a link-local address, which log streams may not reach")
    assert general == ""


def test_the_edit_form_never_holds_a_credential_and_keeps_untyped_ones() -> None:
    stream = LogStream(
        id="s1",
        name="hooks",
        type="http",
        target="https://hooks.example.com",
        format="json",
        tenant_id="acme",
        actions=["user.login"],
        action_prefixes=[],
        results=[],
        options={"header_name": "X-Token"},
        credentials="sealed",
        status="active",
        created_by="t",
    )
    values = form_values(stream, ["header_value", "secret"])
    assert values["credentials.secret"] == values["credentials.header_value"] == ""
    assert values["credentials.secret:set"] == "true"
    assert (values["options.header_name"], values["owner"], values["actions"]) == (
        "X-Token",
        "tenant acme",
        "user.login",
    )
    change = change_input(values | {"name": "renamed"}, "http")
    assert change.credentials is None  # nothing retyped: the stored ones stay
    assert change.options == {"header_name": "X-Token"}
    retyped = change_input(values | {"credentials.secret": "n" * 20}, "http")
    assert retyped.credentials == {"secret": "n" * 20}

    row = stream_row(stream, StreamLag(events=1, capped=False, seconds=3.25))
    assert (row["lag"], row["last_success"], row["owner"], row["status"]) == (
        "1 event, 3.2 s",
        "never",
        "tenant acme",
        "active",
    )
    assert stream_row(stream, StreamLag(events=100_000, capped=True, seconds=600))["lag"] == "100,000+ events, 10 min"
    assert stream_row(stream, StreamLag(events=0, capped=False, seconds=0))["lag"] == "none"
