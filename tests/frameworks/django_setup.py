"""The Django settings the test projects share, configured once per process."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings


def configure(urlconf: str, **extra: Any) -> None:
    """Configure Django for the single-module project ``urlconf`` (``extra``: more settings)."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="ftserver-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urlconf,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        **extra,
    )
    django.setup()
