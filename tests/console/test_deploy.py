"""The Docker image has what the console needs: every local app and the benchmarks the landing
page quotes (the image is built from an explicit COPY list)."""

from __future__ import annotations

from django.conf import settings


def test_the_image_copies_every_local_app_and_the_benchmarks() -> None:
    dockerfile = (settings.BASE_DIR / "Dockerfile").read_text()
    local = [app for app in settings.INSTALLED_APPS if (settings.BASE_DIR / app).is_dir()]
    assert "console" in local
    for app in local:
        assert f"COPY {app} {app}\n" in dockerfile, app
    assert "COPY docs/benchmarks.md docs/benchmarks.md" in dockerfile
