"""Labelled form controls: each control has a visible label tied to it (its accessible name).

The controls are uncontrolled: the form's submit carries their values, so fast typing never
races a server round trip. Each loaded view bumps `version`, which remounts the controls with
the view's values (e.g. after clicking a value in the table).
"""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import reflex as rx

from audit_app.ui.state.url_filters import PRESET_LABELS


def labelled(label: str, control_id: str, control: rx.Component, hint: str = "") -> rx.Component:
    """A label above its control."""
    return rx.el.div(
        rx.el.div(
            rx.el.label(label, html_for=control_id, class_name="field-label"),
            rx.el.span(hint, class_name="field-hint") if hint else rx.fragment(),
            class_name="field-head",
        ),
        control,
        class_name="field",
    )


def text_field(label: str, name: str, value: rx.Var[str], version: rx.Var[int], placeholder: str = "") -> rx.Component:
    """A free-text filter."""
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
        ),
    )


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
            rx.foreach(options, lambda option: rx.el.option(option, value=option)),
            id=control_id,
            name=name,
            default_value=value,
            key=control_id + "-" + version.to_string(),
            class_name="native-select",
        ),
    )


def preset_picker(control_id: str, value: rx.Var[str], version: rx.Var[int]) -> rx.Component:
    """The time range presets."""
    return labelled(
        "Time range",
        control_id,
        rx.el.select(
            *[rx.el.option(text, value=key) for key, text in PRESET_LABELS.items()],
            id=control_id,
            name="range",
            default_value=value,
            key=control_id + "-" + version.to_string(),
            class_name="native-select",
        ),
    )


def time_field(label: str, name: str, value: rx.Var[str], version: rx.Var[int]) -> rx.Component:
    """A UTC date-time input (the browser's datetime-local, read as UTC)."""
    control_id = f"filter-{name}"
    return labelled(
        label,
        control_id,
        rx.el.input(
            type="datetime-local",
            id=control_id,
            name=name,
            default_value=value,
            key=control_id + "-" + version.to_string(),
            class_name="native-input",
        ),
        hint="UTC",
    )
