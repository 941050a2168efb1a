"""URLs of the example project."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.counter),
    path("health", views.health),
    path("login", views.login),
    path("logout", views.logout),
    path("api/me", views.me),
    path("api/me-async", views.me_async),
]
