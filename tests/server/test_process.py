"""The real server process: `inspectsync serve --demo` on a free port, over a socket."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.demo import DEMO_PASSWORD
from sync.audit import read_anchors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "INSPECTSYNC_PASSWORD_TIME_COST": "1",
            "INSPECTSYNC_PASSWORD_MEMORY_KIB": "1024",
            **(env or {}),
        },
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not become ready")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_demo_server_over_a_real_socket(tmp_path):
    proc, base = start_server(tmp_path, "--demo")
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            r = http.post(
                "/api/v1/auth/login",
                json={
                    "username": "insp.zj2",
                    "password": DEMO_PASSWORD,
                    "device": {"name": "field tablet"},
                },
            )
            assert r.status_code == 200
            token = r.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            r = http.get("/api/v1/inspections", headers=auth)
            assert [i["id"] for i in r.json()["items"]] == ["insp-conj-forcause"]
            assert http.get("/api/v1/inspections/insp-ds-routine", headers=auth).status_code == 404
            # gzip when asked
            r = http.get(
                "/api/v1/checklists/versions/conjugation-v1",
                headers={**auth, "Accept-Encoding": "gzip"},
            )
            assert r.status_code == 404  # not pinned by a started inspection of theirs
            r = http.get("/schema/openapi.json", headers={"Accept-Encoding": "gzip"})
            assert r.headers.get("content-encoding") == "gzip"
    finally:
        out = stop(proc)
    assert "demo users" in out and "insp.zj1" in out
    assert (tmp_path / "jwt-secret").exists()
    # the audit chain's head was written down at start-up and again at shutdown (the
    # login registered a device since): the newest event is anchored outside the file
    start, end = read_anchors(tmp_path / "audit-anchors.jsonl")
    with sqlite3.connect(tmp_path / "inspectsync.db") as db:
        newest = db.execute("SELECT id, hash FROM history ORDER BY id DESC LIMIT 1").fetchone()
    assert start.id < end.id and (end.id, end.hash) == newest

    # restart on the same data: demo data is not duplicated, tokens still verify
    proc, base = start_server(tmp_path, "--demo")
    try:
        r = httpx.get(f"{base}/api/v1/auth/me", headers=auth, timeout=10)
        assert r.status_code == 200 and r.json()["username"] == "insp.zj2"
    finally:
        out = stop(proc)
    assert "already present" in out


def test_serve_without_secret_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "INSPECTSYNC_JWT_SECRET"}
    r = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 2
    assert "INSPECTSYNC_JWT_SECRET" in r.stderr
