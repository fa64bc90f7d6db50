"""Labelled form controls: each control has a visible label tied to it (its accessible name).

The controls are uncontrolled: the form's submit carries their values, so fast typing never
races a server round trip. Each loaded view bumps `version`, which remounts the controls with
the view's values (e.g. after clicking a value in the table).
"""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import reflex as rx

from audit_app.ui.state.filter_form import FilterFormState
from audit_app.ui.url_filters import PRESET_LABELS, TIME_LABELS

ENTER_SUBMITS: rx.Var[str] = rx.Var(
    "((e) => { if (e.key === 'Enter') { e.preventDefault(); e.currentTarget.form?.requestSubmit(); } })"
)
"""A select's Enter applies the form, as Enter in a text field does."""


def field_error(control_id: str, message: rx.Var[str]) -> rx.Component:
    """The problem with one field, shown under it (the control points at it with aria-describedby)."""
    return rx.cond(
        message != "",
        rx.el.p(rx.icon("circle-alert", size=13), message, id=control_id + "-error", class_name="field-error"),
    )


def labelled(
    label: str, control_id: str, control: rx.Component, hint: rx.Var[str] | str = "", class_name: str = "field"
) -> rx.Component:
    """A label above its control."""
    return rx.el.div(
        rx.el.div(
            rx.el.label(label, html_for=control_id, class_name="field-label"),
            rx.el.span(hint, class_name="field-hint") if isinstance(hint, rx.Var) or hint else rx.fragment(),
            class_name="field-head",
        ),
        control,
        class_name=class_name,
    )


def text_field(
    label: str,
    name: str,
    value: rx.Var[str],
    version: rx.Var[int],
    placeholder: str = "",
    hint: str = "",
    wide: bool = False,
) -> rx.Component:
    """A free-text filter (`wide`: across the whole form, as the search box)."""
    control_id = f"filter-{name}"
    return labelled(
        label,
        control_id,
        rx.input(
            id=control_id,
            name=name,
            default_value=value,
            key=control_id + "-" + version.to_string(),
            placeholder=placeholder,
            size="2",
            width="100%",
            auto_complete="off",
            type="search" if name == "q" else "text",
        ),
        hint,
        "field wide" if wide else "field",
    )


SEARCH_HINT = 'any case, every word; "a phrase"'
SEARCH_PLACEHOLDER = 'e.g. alice 203.0.113 "role.assign"'


def search_field(value: rx.Var[str], version: rx.Var[int]) -> rx.Component:
    """The free-text search (`q`) over ids, email, action, resource, IP, request, user agent and details."""
    return text_field("Search", "q", value, version, SEARCH_PLACEHOLDER, SEARCH_HINT, wide=True)


def picker(
    label: str,
    name: str,
    value: rx.Var[str],
    options: rx.Var[list[str]],
    version: rx.Var[int],
    empty: str,
) -> rx.Component:
    """A native select of the values the caller may see (keyboard friendly, type-ahead)."""
    control_id = f"filter-{name}"
    return labelled(
        label,
        control_id,
        rx.el.select(
            rx.el.option(empty, value=""),
            # a value the list lacks (several values, a prefix from a link) is shown as it applies
            rx.cond((value != "") & ~options.contains(value), rx.el.option(value, value=value)),
            rx.foreach(options, lambda option: rx.el.option(option, value=option)),
            id=control_id,
            name=name,
            default_value=value,
            key=control_id + "-" + version.to_string(),
            class_name="native-select",
            custom_attrs={"onKeyDown": ENTER_SUBMITS},
        ),
    )


def preset_picker(
    control_id: str, value: rx.Var[str], on_change: rx.EventHandler, hint: rx.Var[str] | str = ""
) -> rx.Component:
    """The time range presets (controlled: choosing one clears From and To at once)."""
    return rx.el.div(
        labelled(
            "Time range",
            control_id,
            rx.el.select(
                *[rx.el.option(text, value=key) for key, text in PRESET_LABELS.items()],
                id=control_id,
                name="range",
                value=value,
                on_change=on_change,
                class_name="native-select",
                aria_describedby=control_id + "-window",
                custom_attrs={"onKeyDown": ENTER_SUBMITS},
            ),
        ),
        rx.el.p(hint, id=control_id + "-window", class_name="field-note"),
        class_name="field",
    )


TIME_PATTERN = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?"
CHECK_WINDOW: rx.Var[str] = rx.Var(
    "((e) => { const f = e.target.form; if (!f) return;"
    " const a = f.elements['start_time'], b = f.elements['end_time']; if (!a || !b) return;"
    " const from = a.value.trim().replace('T', ' '), to = b.value.trim().replace('T', ' ');"
    " b.setCustomValidity(from && to && to <= from ? 'To must be later than From.' : ''); })"
)
"""From after To is refused by the inputs themselves (the browser blocks the submit and says why)."""


def time_field(
    label: str,
    name: str,
    value: rx.Var[str],
    version: rx.Var[str],
    *,
    error: rx.Var[str],
    on_change: rx.EventHandler,
    zone: rx.Var[str] | str = "UTC",
) -> rx.Component:
    """A date and time in 24-hour form (`YYYY-MM-DD HH:MM`, in the zone its hint names): one Tab stop."""
    control_id = f"filter-{name}"
    return rx.el.div(
        labelled(
            label,
            control_id,
            rx.el.input(
                type="text",
                id=control_id,
                name=name,
                default_value=value,
                key=control_id + "-" + version,
                placeholder="YYYY-MM-DD HH:MM",
                pattern=TIME_PATTERN,
                title="A date and 24-hour time, e.g. 2026-05-01 17:30",
                input_mode="numeric",
                auto_complete="off",
                spell_check=False,
                on_change=lambda text: on_change(name, text),
                custom_attrs={"onInput": CHECK_WINDOW},
                aria_invalid=rx.cond(error != "", "true", "false"),
                aria_describedby=control_id + "-error",
                class_name="native-input",
            ),
            hint=zone,
        ),
        field_error(control_id, error),
        class_name="field",
    )


def time_window(state: type[FilterFormState], range_id: str) -> list[rx.Component]:
    """The time range picker and From/To of a filter form."""
    times = state.form_version.to_string() + "." + state.time_version.to_string()
    return [
        preset_picker(range_id, state.preset, state.choose_preset, state.window_text),
        *[
            time_field(
                label,
                name,
                state.form[name],
                times,
                error=state.field_errors.get(name, ""),
                on_change=state.set_bound,
                zone=state.zone,
            )
            for name, label in TIME_LABELS.items()
        ],
    ]
