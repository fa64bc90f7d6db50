"""The Streams page: log streams with their health, create/edit forms per type, and their actions."""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type,call-overload"

from __future__ import annotations

import reflex as rx

from audit_app.audit.streams import STREAM_TYPES
from audit_app.ui.components.fields import field_error, labelled
from audit_app.ui.components.layout import error_callout, page_shell, page_title
from audit_app.ui.components.progress import progress_panel
from audit_app.ui.state.streams import StreamsState
from audit_app.ui.stream_form import TARGET_HINTS, TYPE_FIELDS, TYPE_LABELS, FormField

STATUS_SCHEMES = (("active", "green"), ("paused", "gray"), ("failing", "red"))


def _control_id(key: str) -> str:
    return "stream-" + key.replace(".", "-").replace("_", "-")


def _version(control_id: str) -> rx.Var[str]:
    """The control's key: a newly opened form remounts it with the form's values (a type change does not)."""
    return control_id + "-" + StreamsState.form_version.to_string()


def form_control(label: str, key: str, hint: rx.Var[str] | str = "", kind: str = "text") -> rx.Component:
    """A labelled control of the stream form, its error under it (an uncontrolled input: the submit carries it)."""
    control_id = _control_id(key)
    error = StreamsState.field_errors.get(key, "")
    common = {
        "id": control_id,
        "name": key,
        "key": _version(control_id),
        "aria_invalid": rx.cond(error != "", "true", "false"),
        "aria_describedby": control_id + "-error",
    }
    if kind == "check":
        return rx.el.div(
            rx.el.label(
                rx.el.input(type="checkbox", default_checked=StreamsState.form[key] == "true", **common),
                label,
                html_for=control_id,
                class_name="toggle",
            ),
            field_error(control_id, error),
            class_name="field end",
        )
    if kind == "textarea":
        control = rx.el.textarea(default_value=StreamsState.form[key], rows=3, class_name="native-input tall", **common)
    elif kind == "secret":
        control = rx.el.input(
            type="password", default_value="", auto_complete="new-password", class_name="native-input", **common
        )
        hint = rx.cond(StreamsState.form[key + ":set"] == "true", "stored; leave empty to keep it", hint)
    else:
        control = rx.el.input(
            type="text",
            default_value=StreamsState.form[key],
            auto_complete="off",
            spell_check=False,
            input_mode="numeric" if kind == "number" else "text",
            class_name="native-input",
            **common,
        )
    return rx.el.div(labelled(label, control_id, control, hint), field_error(control_id, error), class_name="field")


def type_fields(kind: str) -> rx.Component:
    """The settings and credentials of one type (shown while the form is of that type)."""
    fields: tuple[FormField, ...] = TYPE_FIELDS[kind]
    return rx.cond(
        StreamsState.form_type == kind,
        rx.el.fieldset(
            rx.el.legend(TYPE_LABELS[kind] + " settings"),
            rx.el.div(*[form_control(f.label, f.key, f.hint, f.kind) for f in fields], class_name="filter-grid stats"),
            class_name="stream-fieldset",
        ),
    )


def native_select(
    control_id: str, name: str, options: list[rx.Component] | rx.Component, **props: object
) -> rx.Component:
    """A native select of the form."""
    children = options if isinstance(options, list) else [options]
    return rx.el.select(*children, id=control_id, name=name, class_name="native-select", **props)


def stream_form() -> rx.Component:
    """Create or edit a stream: its type, name, target, owner, format, filter and per-type settings."""
    editing = StreamsState.editing != ""
    type_picker = labelled(
        "Type",
        "stream-type",
        native_select(
            "stream-type",
            "type",
            [rx.el.option(TYPE_LABELS[t], value=t) for t in STREAM_TYPES],
            value=StreamsState.form_type,
            on_change=StreamsState.set_form_type,
            disabled=editing,
        ),
    )
    owner = rx.cond(
        editing,
        rx.el.div(
            rx.el.span("Owner", class_name="field-label"),
            rx.text(StreamsState.form["owner"], size="2", padding_top="6px"),
            class_name="field",
        ),
        rx.el.div(
            labelled(
                "Owner",
                "stream-owner",
                native_select(
                    "stream-owner",
                    "owner",
                    rx.foreach(StreamsState.owners, lambda o: rx.el.option(o["label"], value=o["value"])),
                    key=_version("stream-owner"),
                ),
                "whose events it carries",
            ),
            field_error("stream-owner", StreamsState.field_errors.get("owner", "")),
            class_name="field",
        ),
    )
    target_hint = rx.match(StreamsState.form_type, *TARGET_HINTS.items(), "")
    return rx.form(
        rx.heading(rx.cond(editing, "Edit stream " + StreamsState.form["name"], "New log stream"), size="4", as_="h2"),
        rx.el.div(
            type_picker,
            form_control("Name", "name"),
            form_control("Target", "target", target_hint),
            owner,
            labelled(
                "Format",
                "stream-format",
                native_select(
                    "stream-format",
                    "format",
                    [rx.el.option("JSON", value="json"), rx.el.option("OCSF 1.5.0", value="ocsf")],
                    default_value=StreamsState.form["format"],
                    key=_version("stream-format"),
                ),
            ),
            class_name="filter-grid stats",
        ),
        *[type_fields(kind) for kind in STREAM_TYPES],
        rx.el.fieldset(
            rx.el.legend("Filter (optional; empty sends every event of the owner)"),
            rx.el.div(
                form_control("Actions", "actions", "e.g. user.login, role.assign"),
                form_control("Action prefixes", "action_prefixes", "e.g. user., billing."),
                form_control("Results", "results", "success, failure, denied, error"),
                class_name="filter-grid stats",
            ),
            class_name="stream-fieldset",
        ),
        rx.cond(StreamsState.form_error != "", error_callout(StreamsState.form_error)),
        rx.hstack(
            rx.button(rx.cond(editing, "Save changes", "Create stream"), type="submit", loading=StreamsState.saving),
            rx.button("Cancel", type="button", variant="soft", color_scheme="gray", on_click=StreamsState.close_form),
            spacing="2",
        ),
        on_submit=StreamsState.save,
        aria_label=rx.cond(editing, "Edit stream", "New stream"),
        class_name="panel stack",
    )


def status_badge(status: rx.Var[str]) -> rx.Component:
    """A stream's status as a coloured badge."""
    return rx.badge(
        status,
        color_scheme=rx.match(status, *STATUS_SCHEMES, "gray"),  # type: ignore[arg-type]
        variant="soft",
        radius="full",
        aria_label="Status",
    )


def action_button(label: str, event: rx.EventHandler, row: rx.Var, color: str = "gray") -> rx.Component:
    """One action of a row (its accessible name says which stream)."""
    return rx.button(
        label,
        on_click=event(row["id"]),
        size="1",
        variant="soft",
        color_scheme=color,
        title=label + " · " + row["name"],
    )


def stream_row(row: rx.Var) -> rx.Component:
    """One stream: what it is, its health, and its actions."""
    return rx.el.tr(
        rx.el.td(
            rx.text(row["name"], weight="medium"),
            rx.text(row["type"], " → ", row["target"], size="1", color_scheme="gray", class_name="mono-soft"),
        ),
        rx.el.td(row["owner"]),
        rx.el.td(status_badge(row["status"])),
        rx.el.td(row["lag"]),
        rx.el.td(row["last_success"]),
        rx.el.td(
            rx.cond(
                row["last_error"] != "",
                rx.vstack(
                    rx.text(row["last_error"], size="1", color_scheme="red", class_name="mono-soft"),
                    rx.text(row["last_error_at"], size="1", color_scheme="gray"),
                    spacing="0",
                ),
                rx.text("none", size="1", color_scheme="gray"),
            )
        ),
        rx.el.td(row["delivered"], " / ", row["failed"], class_name="num"),
        rx.el.td(
            rx.hstack(
                action_button("Send test event", StreamsState.send_test, row, "indigo"),
                action_button("Edit", StreamsState.open_edit, row),
                rx.cond(
                    row["status"] == "active",
                    action_button("Pause", StreamsState.pause, row),
                    action_button("Resume", StreamsState.resume, row, "green"),
                ),
                action_button("Replay", StreamsState.ask_replay, row),
                action_button("Delete", StreamsState.ask_delete, row, "red"),
                spacing="1",
                wrap="wrap",
            )
        ),
        aria_label=row["name"],
        class_name="stream-row",
    )


def streams_table() -> rx.Component:
    """The streams in the caller's scope with their health at a glance."""
    return rx.cond(
        StreamsState.streams.length() > 0,
        rx.el.table(
            rx.el.caption("Log streams in your scope"),
            rx.el.thead(
                rx.el.tr(
                    *[
                        rx.el.th(title, scope="col")
                        for title in (
                            "Stream",
                            "Owner",
                            "Status",
                            "Lag",
                            "Last success",
                            "Last error (receiver's answer)",
                            "Delivered / failed",
                            "Actions",
                        )
                    ]
                )
            ),
            rx.el.tbody(rx.foreach(StreamsState.streams, stream_row)),
            class_name="data-table streams-table",
        ),
        rx.cond(
            ~StreamsState.loading,
            rx.callout(
                "No log streams in your scope yet. Create one to push every new event to your SIEM.",
                icon="radio-tower",
                color_scheme="gray",
                role="status",
            ),
        ),
    )


def test_answer() -> rx.Component:
    """The receiver's answer to the last test event."""
    answer = StreamsState.test_answer
    return rx.cond(
        answer.contains("answer"),
        rx.callout(
            rx.cond(
                answer["ok"] == "yes",
                "Test event to " + answer["name"] + " accepted: " + answer["answer"],
                rx.cond(
                    answer["ok"] == "no",
                    "Test event to " + answer["name"] + " failed: " + answer["answer"],
                    answer["answer"],
                ),
            ),
            icon=rx.cond(answer["ok"] == "no", "triangle-alert", "send"),
            color_scheme=rx.cond(answer["ok"] == "no", "red", rx.cond(answer["ok"] == "yes", "green", "gray")),
            role="status",
            id="stream-test-answer",
            width="100%",
        ),
    )


def replay_form() -> rx.Component:
    """From when to redeliver one stream's events."""
    return rx.cond(
        StreamsState.replay_for.contains("id"),
        rx.form(
            rx.heading("Replay " + StreamsState.replay_for["name"], size="3", as_="h2"),
            rx.text(
                "Every event of the stream ingested at or after this time is delivered again "
                "(receivers de-duplicate on the event id).",
                size="2",
                color_scheme="gray",
            ),
            rx.hstack(
                rx.el.div(
                    labelled(
                        "Redeliver from",
                        "stream-replay-since",
                        rx.el.input(
                            id="stream-replay-since",
                            name="since",
                            type="text",
                            placeholder="YYYY-MM-DD HH:MM",
                            auto_complete="off",
                            class_name="native-input",
                            aria_describedby="stream-replay-since-error",
                        ),
                        hint=rx.cond(StreamsState.replay_for.contains("id"), "in the zone times are shown in", ""),
                    ),
                    field_error("stream-replay-since", StreamsState.replay_error),
                    class_name="field",
                ),
                rx.button("Replay", type="submit"),
                rx.button(
                    "Cancel", type="button", variant="soft", color_scheme="gray", on_click=StreamsState.cancel_replay
                ),
                align="end",
                spacing="2",
            ),
            on_submit=StreamsState.start_replay,
            aria_label="Replay stream",
            class_name="panel stack",
        ),
    )


def replay_progress() -> rx.Component:
    """The replay followed: events delivered of the total."""
    return rx.cond(
        StreamsState.replay.contains("stream"),
        progress_panel(
            "history",
            StreamsState.replay_text,
            StreamsState.replay_percent,
            "Events delivered",
            id="stream-replay-progress",
            class_name="panel",
        ),
    )


def delete_dialog() -> rx.Component:
    """Delete only after confirming."""
    return rx.alert_dialog.root(
        rx.alert_dialog.content(
            rx.alert_dialog.title("Delete stream " + StreamsState.confirm_delete["name"] + "?"),
            rx.alert_dialog.description(
                "Delivery stops and its settings and credentials are removed. Events already delivered stay "
                "with the receiver; the deletion is recorded in the audit log."
            ),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button("Keep it", variant="soft", color_scheme="gray", on_click=StreamsState.cancel_delete)
                ),
                rx.alert_dialog.action(rx.button("Delete stream", color_scheme="red", on_click=StreamsState.delete)),
                spacing="3",
                justify="end",
                padding_top="12px",
            ),
        ),
        open=StreamsState.confirm_delete.contains("id"),
    )


def streams_page() -> rx.Component:
    """The /streams route."""
    return page_shell(
        "streams",
        rx.vstack(
            page_title(
                "Log streams",
                "Every new event of a stream's scope is pushed to its receiver within seconds, at least once.",
            ),
            rx.cond(
                StreamsState.denied != "",
                rx.callout(StreamsState.denied, icon="lock", color_scheme="orange", role="alert", width="100%"),
                rx.cond(
                    ~StreamsState.allowed, rx.box(class_name="loading-bar", role="progressbar", aria_label="Loading")
                ),
            ),
            rx.cond(
                StreamsState.allowed,
                rx.vstack(
                    rx.hstack(
                        rx.button(rx.icon("plus", size=14), "New stream", on_click=StreamsState.open_create),
                        rx.button(
                            rx.icon("refresh-cw", size=14),
                            "Refresh",
                            variant="soft",
                            color_scheme="gray",
                            on_click=StreamsState.reload,
                        ),
                        spacing="2",
                    ),
                    rx.cond(StreamsState.error != "", error_callout(StreamsState.error)),
                    rx.cond(
                        StreamsState.notice != "",
                        rx.callout(
                            StreamsState.notice, icon="check", color_scheme="green", role="status", width="100%"
                        ),
                    ),
                    test_answer(),
                    replay_progress(),
                    rx.cond(StreamsState.form_open, stream_form()),
                    replay_form(),
                    rx.cond(
                        StreamsState.loading,
                        rx.box(class_name="loading-bar", role="progressbar", aria_label="Loading"),
                    ),
                    streams_table(),
                    delete_dialog(),
                    spacing="4",
                    width="100%",
                    align="stretch",
                ),
            ),
            spacing="4",
            width="100%",
            align="stretch",
        ),
    )
