"""The shared test routes (see test_frameworks.py) as a Django project in one module."""

from __future__ import annotations

import hashlib
import json

from tests.frameworks.django_setup import configure

configure(__name__, USE_TZ=True, DATA_UPLOAD_MAX_MEMORY_SIZE=None)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def item(request, item_id: int):
    return JsonResponse({"id": item_id, "q": request.GET.get("q")})


def echo_json(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return JsonResponse({"received": json.loads(request.body), "framework": "django"}, status=201)


def upload(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    upload = request.FILES["file"]
    content = upload.read()
    return JsonResponse(
        {
            "name": request.POST["name"],
            "filename": upload.name,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    )


def stream(request):
    count = int(request.GET.get("n", "5"))
    return StreamingHttpResponse((f"part {i}\n" for i in range(count)), content_type="text/plain")


def set_cookie(request):
    response = HttpResponse("set", content_type="text/plain")
    response.set_cookie("flavour", request.GET["value"], httponly=True)
    return response


def get_cookie(request):
    return JsonResponse({"flavour": request.COOKIES.get("flavour")})


urlpatterns = [
    path("items/<int:item_id>", item),
    path("json", echo_json),
    path("upload", upload),
    path("stream", stream),
    path("cookie/set", set_cookie),
    path("cookie/get", get_cookie),
]

app = get_wsgi_application()
