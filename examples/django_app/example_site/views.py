"""Views of the example project: Django's `request.session` API, unchanged."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.utils.html import escape
from django.views.decorators.http import require_http_methods, require_POST

FORM = """<!doctype html><title>redis-sessions + Django</title>
<form method="post" action="/login">
<input type="hidden" name="csrfmiddlewaretoken" value="{token}">
<input name="user" placeholder="name" required> <button>Log in</button></form>
<form method="post" action="/logout">
<input type="hidden" name="csrfmiddlewaretoken" value="{token}"><button>Log out</button></form>
<p>Signed in as: {user}</p>"""


def health(request: HttpRequest) -> JsonResponse:
    """Never touches the session: no Redis round trip, even with a cookie."""
    return JsonResponse({"status": "ok"})


def counter(request: HttpRequest) -> JsonResponse:
    """Counts this visitor's requests (a read and a write of the session)."""
    request.session["views"] = request.session.get("views", 0) + 1
    return JsonResponse({"views": request.session["views"]})


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """GET: a login form. POST: log in as `user` (no password: this is an example).

    With django.contrib.auth, ``django.contrib.auth.login()`` calls ``cycle_key()`` for you.
    """
    if request.method == "GET":
        user = escape(request.session.get("user", "nobody"))
        return HttpResponse(FORM.format(token=get_token(request), user=user))
    user = request.POST.get("user", "").strip()
    if not user:
        return JsonResponse({"error": "user is required"}, status=400)
    # A new session key on privilege change, the data kept, the old key deleted: defeats
    # session fixation.
    request.session.cycle_key()
    request.session["user"] = user
    return JsonResponse({"user": user})


@require_POST
def logout(request: HttpRequest) -> JsonResponse:
    """Delete the stored session and clear the cookie (what auth's logout() does)."""
    request.session.flush()
    return JsonResponse({"ok": True})


def me(request: HttpRequest) -> JsonResponse:
    """A JSON API that needs a login; reads the session only (1 round trip)."""
    user = request.session.get("user")
    if user is None:
        return JsonResponse({"error": "not logged in"}, status=401)
    return JsonResponse({"user": user, "views": request.session.get("views", 0)})


async def me_async(request: HttpRequest) -> JsonResponse:
    """The same from an async view, with the session's async API (``aget``)."""
    user = await request.session.aget("user")
    if user is None:
        return JsonResponse({"error": "not logged in"}, status=401)
    return JsonResponse({"user": user, "views": await request.session.aget("views", 0)})
