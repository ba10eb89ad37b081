"""The tablet app's files at /app: served without a token (a tablet loads the app before
anyone has logged in), while the API behind it still needs one; nothing in the app
names another host."""

from __future__ import annotations

import re
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.settings import Settings
from server.webapp import APP_ROOT
from tests.conftest import SECRET


async def test_the_shell_loads_without_a_token_and_the_api_still_needs_one(
    client: AsyncTestClient[Litestar],
) -> None:
    r = await client.get("/app", follow_redirects=False)
    assert r.status_code in (301, 302, 307, 308)
    assert r.headers["location"] == "/app/"  # the service worker's scope
    page = await client.get("/app/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    for path in re.findall(r'(?:src|href)="(/app/[^"]+)"', page.text):
        assert (await client.get(path)).status_code == 200, path
    for path in ("/app/lib/index.js", "/app/vendor/tus.js", "/app/vendor/msgpack.js", "/app/sw.js"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert "javascript" in r.headers["content-type"]
    manifest = await client.get("/app/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert manifest.json()["start_url"] == "/app/"
    # revalidation: an unchanged file costs a 304 without a body
    first = await client.get("/app/app.js")
    again = await client.get("/app/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    other = await client.get("/app/app.js", headers={"If-None-Match": '"not-this-one"'})
    assert other.status_code == 200
    assert other.content == first.content
    api = await client.get("/api/v1/sync/conflicts")
    assert api.status_code == 401


async def test_outside_the_app_directory_nothing_is_served(
    client: AsyncTestClient[Litestar],
) -> None:
    for path in ("/app/nope.js", "/app/..%2F..%2Fpyproject.toml", "/app/lib/../../Makefile"):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/apple")).status_code in (401, 404)


def test_no_file_of_the_app_loads_anything_from_another_host() -> None:
    files = [*(APP_ROOT / "www").glob("*.*"), *(APP_ROOT / "lib").glob("*.js")]
    assert any(f.name == "app.js" for f in files)
    for f in files:
        text = f.read_text(encoding="utf-8")
        # an XML namespace is a name, not a request
        assert not re.search(r"""(?<!xmlns=)["'(]https?://""", text), f"{f.name} names another host"
        assert "//cdn" not in text, f.name


def test_the_offline_shell_holds_every_module_of_the_library() -> None:
    """The service worker caches the shell by a list: a library module left out of it
    (``app/lib/reauth.js``, imported by ``tablet.js``) fails the app's start with no
    network."""
    sw = (APP_ROOT / "www" / "sw.js").read_text(encoding="utf-8")
    for f in sorted((APP_ROOT / "lib").glob("*.js")):
        assert f'"/app/lib/{f.name}"' in sw, f"sw.js does not cache lib/{f.name}"


async def test_the_app_directory_is_a_setting(tmp_path: Path) -> None:
    """A server installed from a wheel (or in a container) is pointed at a built app."""
    (tmp_path / "app" / "www").mkdir(parents=True)
    (tmp_path / "app" / "lib").mkdir()
    (tmp_path / "app" / "www" / "index.html").write_text("<!doctype html><title>t</title>")
    settings = Settings(
        data_dir=str(tmp_path / "data"), jwt_secret=SECRET, app_dir=str(tmp_path / "app")
    )
    async with AsyncTestClient(app=create_app(settings)) as c:
        page = await c.get("/app/")
        assert page.status_code == 200
        assert "<title>t</title>" in page.text
        assert (await c.get("/app/app.js")).status_code == 404
