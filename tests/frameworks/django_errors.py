"""A Django project whose errors must reach ftserve's log (test_error_output.py): the
``django.request`` logger to the console, as most deployments configure it."""

from __future__ import annotations

import logging

from tests.frameworks.django_setup import configure

configure(
    __name__,
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}, "app": {"handlers": ["console"], "level": "INFO"}},
    },
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def err(request):
    return HttpResponse(str(1 / 0))


def log(request):
    logging.getLogger("app").error("marker from the app's logger")
    return HttpResponse("logged")


urlpatterns = [path("err", err), path("log", log)]

app = get_wsgi_application()
