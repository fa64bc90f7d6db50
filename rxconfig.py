"""Reflex configuration: the app name and the one database setting, AUDIT_DATABASE_URL."""

import reflex as rx

from audit_app.startup import settings_or_exit
from audit_app.ui.theme import ConsoleThemes

settings = settings_or_exit()

config = rx.Config(
    app_name="audit_app",
    db_url=settings.database_url,
    telemetry_enabled=False,
    cors_allowed_origins=settings.cors_origin_list,
    show_built_with_reflex=False,
    plugins=[ConsoleThemes()],
    disable_plugins=[rx.plugins.SitemapPlugin],
)
