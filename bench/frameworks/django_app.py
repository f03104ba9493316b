"""Django hello (WSGI): a minimal single-module project with the default middleware left out."""

from __future__ import annotations

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def users(request: HttpRequest) -> JsonResponse:
    return JsonResponse([], safe=False)


def user(request: HttpRequest, name: str) -> JsonResponse:
    return JsonResponse({"user": name})


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello, world!", content_type="text/plain")


urlpatterns = [path("users", users), path("users/<str:name>", user), path("hello", hello)]

app = get_wsgi_application()
