"""Hosting a demo: the Dockerfile, the hosted-demo profile, `make demo` and the install rule.

Docker cannot run on the development machine, so the Dockerfile is checked as text (and its
health check command is run against a local server); `make` runs for real with a stand-in
`docker` and a stand-in venv python, so nothing is built, pulled or installed.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from sharecore.core.limits import Limits, env_variable
from sharecore.runs.store import DATA_DIR_VARIABLE
from tests.support.users import UNPRIVILEGED_UID, run_unprivileged

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "deploy" / "hosted-demo.env"
CONCURRENCY = "SHARECORE_MAX_CONCURRENT_RUNS"  # read by sharecore.runs.runner, not a Limits field
UPLOAD = "STREAMLIT_SERVER_MAX_UPLOAD_SIZE"  # read by Streamlit: its cap on one upload request, in MiB


def instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments left out."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def dockerfile_env() -> dict[str, str]:
    """Every variable the Dockerfile's ENV lines set (KEY=VALUE form)."""
    env = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(rest))
    return env


def profile() -> dict[str, str]:
    """The KEY=VALUE lines of deploy/hosted-demo.env."""
    lines = [line for line in PROFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def json_args(rest: str) -> list[str]:
    """The arguments of an exec-form (JSON array) CMD or HEALTHCHECK CMD."""
    return json.loads(rest[rest.index("[") :])


# ----------------------------------------------------------------------------- the profile
def test_the_dockerfile_sets_exactly_the_hosted_demo_profile():
    caps = {
        key: value
        for key, value in dockerfile_env().items()
        if (key.startswith("SHARECORE_") or key == UPLOAD) and key != DATA_DIR_VARIABLE  # where: not a cap
    }
    assert caps == profile()


def test_every_setting_of_the_profile_has_a_comment_saying_why():
    lines = PROFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("# "), f"{PROFILE.name}: no comment above {line!r}"


def test_the_profile_sets_every_cap_and_nothing_the_app_does_not_read():
    known = {env_variable(f.name) for f in fields(Limits)} | {CONCURRENCY, UPLOAD}
    assert set(profile()) == known  # a misspelt name would be ignored by the app without a word


def test_the_profiles_caps_read_through_limits_from_env_give_exactly_its_values(monkeypatch):
    for variable in {env_variable(f.name) for f in fields(Limits)} | {CONCURRENCY}:
        monkeypatch.delenv(variable, raising=False)
    for key, value in profile().items():
        monkeypatch.setenv(key, value)
    limits = Limits.from_env(base=Limits())
    assert {env_variable(f.name): str(getattr(limits, f.name)) for f in fields(Limits)} == {
        key: value for key, value in profile().items() if key not in (CONCURRENCY, UPLOAD)
    }
    assert limits != Limits(), "the profile should differ from the defaults it is meant to tighten"


def test_the_profiles_concurrency_reaches_the_runner():
    env = {**os.environ, CONCURRENCY: profile()[CONCURRENCY]}
    out = subprocess.run(
        [sys.executable, "-c", "import sharecore.runs.runner as r; print(r.MAX_CONCURRENT_RUNS)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == profile()[CONCURRENCY]


def test_streamlit_refuses_an_upload_over_the_profiles_model_cap_before_reading_it(monkeypatch):
    """The Your model page's cap (SHARECORE_MAX_MODEL_MB) is also Streamlit's cap on the request body:
    `streamlit run` (the image's CMD) reads the variable as its --server.maxUploadSize."""
    from streamlit import config
    from streamlit.web import cli

    assert profile()[UPLOAD] == profile()["SHARECORE_MAX_MODEL_MB"]
    monkeypatch.setenv(UPLOAD, profile()[UPLOAD])
    parent = cli.main.make_context("streamlit", ["run", "streamlit_app.py"])
    run = cli.main_run.make_context("run", ["streamlit_app.py"], parent=parent)
    assert run.params["server_maxUploadSize"] == int(profile()[UPLOAD])
    # Locally, .streamlit/config.toml leaves room for the page's own cap (50 MiB by default).
    assert config.get_option("server.maxUploadSize") >= Limits().max_model_mb


def test_the_readmes_secrets_snippet_holds_the_same_settings():
    readme = (ROOT / "README.md").read_text()
    hosting = readme[readme.index("## Hosting a demo") :]
    snippet = re.search(r"```toml\n(.*?)```", hosting, re.S)
    assert snippet, "the hosting guide has no ```toml secrets snippet"
    secrets = tomllib.loads(snippet.group(1))
    caps = {key: value for key, value in profile().items() if key not in (CONCURRENCY, UPLOAD)}
    assert Limits.from_mapping(secrets["sharecore"], base=Limits()) == Limits.from_env(caps, base=Limits())
    assert set(secrets["sharecore"]) == {f.name for f in fields(Limits)}
    # Streamlit puts root-level secrets into os.environ before the app starts: that is how the runner sees it.
    assert str(secrets[CONCURRENCY]) == profile()[CONCURRENCY]


# ----------------------------------------------------------------------------- the Dockerfile
def test_the_image_runs_as_a_user_that_is_not_root():
    users = [rest for keyword, rest in instructions() if keyword == "USER"]
    assert users, "no USER: the app would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    created = " ".join(rest for keyword, rest in instructions() if keyword == "RUN")
    assert re.search(rf"useradd .*--uid {user}\b", created), f"USER {user} is not a user the image creates"


def image_user() -> tuple[str, str]:
    """The (uid, gid) of the Dockerfile's last USER line."""
    user = [rest for keyword, rest in instructions() if keyword == "USER"][-1]
    uid, _, gid = user.partition(":")
    return uid, gid or uid


def run_commands() -> list[tuple[int, str]]:
    """(index among the instructions, command) of every `&&`-joined command of the RUN lines."""
    return [
        (i, command.strip())
        for i, (keyword, rest) in enumerate(instructions())
        if keyword == "RUN"
        for command in rest.split("&&")
    ]


def test_the_image_keeps_runs_in_a_data_folder_that_its_user_owns_and_declares_it_a_volume():
    folder = dockerfile_env().get(DATA_DIR_VARIABLE)
    assert folder == "/data", f"ENV {DATA_DIR_VARIABLE} should name the image's data folder; got {folder!r}"
    uid, gid = image_user()
    made = [i for i, command in run_commands() if re.fullmatch(rf"mkdir (-p )?{folder}", command)]
    owned = [i for i, command in run_commands() if command == f"chown {uid}:{gid} {folder}"]
    assert made and owned, f"no RUN makes {folder} and gives it to the app's user {uid}:{gid}: {run_commands()}"
    volumes = [
        (i, json.loads(rest) if rest.startswith("[") else rest.split())
        for i, (keyword, rest) in enumerate(instructions())
        if keyword == "VOLUME"
    ]
    declared = [i for i, paths in volumes if folder in paths]
    assert declared, f"{folder} is not declared a VOLUME: a container's runs would go with it"
    # A build step that changes a declared volume's folder after VOLUME is discarded.
    assert max(made + owned) < declared[0]

    assert dockerfile_env()["PORT"] == "8501"
    (cmd,) = [rest for keyword, rest in instructions() if keyword == "CMD"]
    command = " ".join(json_args(cmd))
    assert "streamlit run streamlit_app.py" in command
    assert re.search(r"--server\.port=\"?\$\{?PORT\}?", command), command
    assert "--server.address=0.0.0.0" in command
    assert json_args(cmd)[:2] == ["sh", "-c"], "only a shell expands $PORT"


def test_the_image_starts_from_python_311_slim_and_installs_requirements_txt():
    keywords = instructions()
    assert keywords[0] == ("FROM", "python:3.11-slim")
    assert ("RUN", "pip install --no-cache-dir -r requirements.txt") in keywords


def test_every_file_the_image_copies_exists_and_is_not_left_out_of_the_context():
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    for must in (".git", ".venv", ".pytest_cache", ".ruff_cache", ".hypothesis", "**/__pycache__", "docs/"):
        assert must in ignored
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY":
            sources += shlex.split(rest)[:-1]
    assert {"streamlit_app.py", "ui/", "pages/", "sharecore/", ".streamlit/config.toml"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        parts = Path(source).parts  # the source and every folder above it
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hits = [p for p in ignored for prefix in prefixes if fnmatch.fnmatch(prefix, p.rstrip("/"))]
        assert not hits, f"COPY {source} is left out of the build context by .dockerignore's {hits}"


# Run by the image's user with the image's ENV: opens the store from SHARECORE_DATA_DIR, then keeps a
# hand-made run (no TensorFlow) and reads it back.
_OPEN_THE_STORE = """
import json, sys
from sharecore.runs.store import RunStore, new_key
try:
    store = RunStore.from_env()
except ValueError as err:  # StoreUnavailable is one
    print(f"{type(err).__name__}: {err}")
    sys.exit(3)
from tests.support.store import assert_results_equal, hand_made
workspace = new_key()
run_id = store.save(workspace, hand_made(), "kept in the image's folder").run_id
assert_results_equal(hand_made(), store.load(run_id).result)
print(json.dumps({"path": str(store.path), "labels": [run.label for run in store.runs(workspace)]}))
"""


def open_the_store_as_the_image_user(data_dir: Path) -> subprocess.CompletedProcess:
    """`_OPEN_THE_STORE` as the Dockerfile's USER, with its ENV (SHARECORE_DATA_DIR moved to `data_dir`)."""
    uid, _ = image_user()
    assert uid == str(UNPRIVILEGED_UID), "tests/support/users.py runs as the image's user: keep them the same"
    env = {**dockerfile_env(), DATA_DIR_VARIABLE: str(data_dir), "PYTHONPATH": str(ROOT)}
    return run_unprivileged([sys.executable, "-c", _OPEN_THE_STORE], env=env)


def test_the_image_user_keeps_and_reads_back_a_run_in_a_folder_made_as_the_image_makes_its_data_folder(
    open_tmp_path,
):
    uid, gid = image_user()
    data = open_tmp_path / "data"
    data.mkdir()  # by root, as the image's RUN does, and then given to the user
    os.chown(data, int(uid), int(gid))
    out = open_the_store_as_the_image_user(data)
    assert out.returncode == 0, out.stdout + out.stderr
    kept = json.loads(out.stdout)
    assert kept == {"path": str(data / "runs.sqlite3"), "labels": ["kept in the image's folder"]}
    assert (data / "runs.sqlite3").stat().st_uid == int(uid)


def test_the_image_user_in_a_folder_it_cannot_write_gets_one_clear_message_naming_the_folder_and_the_fix(
    open_tmp_path,
):
    data = open_tmp_path / "data"
    data.mkdir(mode=0o755)  # root's: what /data is in an image that forgot to give it to its user
    out = open_the_store_as_the_image_user(data)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    message = out.stdout.strip()
    assert message.startswith("StoreUnavailable: The run store "), message
    assert f"its folder {str(data)!r} belongs to uid 0" in message and "mode 0755" in message, message
    assert f"this server runs as uid {UNPRIVILEGED_UID}" in message, message
    assert f"chown -R {UNPRIVILEGED_UID} {str(data)!r}" in message and f"point {DATA_DIR_VARIABLE} at" in message
    assert list(data.iterdir()) == [], "nothing was made in the folder"


@pytest.fixture
def health_server():
    """A local server that answers 200 on /_stcore/health, as Streamlit does, and 404 elsewhere."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            ok = self.path == "/_stcore/health"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _health_check(port: int) -> int:
    (check,) = [rest for keyword, rest in instructions() if keyword == "HEALTHCHECK"]
    args = json_args(check)
    assert args[:2] == ["python", "-c"], "the slim image has no curl; the check must be Python's"
    out = subprocess.run([sys.executable, *args[1:]], env={**os.environ, "PORT": str(port)}, capture_output=True)
    return out.returncode


def test_the_health_check_passes_on_a_healthy_server_at_port(health_server):
    assert _health_check(health_server) == 0


def test_the_health_check_fails_when_nothing_answers_at_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _health_check(closed) != 0


# ----------------------------------------------------------------------------- make
def _make(*args: str, path: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    # Not the settings of a `make test` that runs these tests: its MAKELEVEL turns "make:" into "make[1]:".
    outer = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")
    environ = {k: v for k, v in os.environ.items() if k not in outer} | env
    if path is not None:
        environ["PATH"] = f"{path}{os.pathsep}{environ['PATH']}"
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60
    )


def _stand_in(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_n_demo_builds_and_runs_the_image():
    out = _make("-n", "demo", "PORT=8600")
    assert "docker build -t sharecore-demo ." in out.stdout
    assert "docker run --rm -p 8600:8501 sharecore-demo" in out.stdout


# ----------------------------------------------------------------------------- several processes
def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"### {title}")
    return text[start : text.index("\n#", start + 4)]


def _upload_mb() -> int:
    return int(profile()[UPLOAD])


def test_the_nginx_example_sticks_by_cookie_passes_websockets_and_lets_a_profile_upload_through():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    lines = [line.split("#")[0].strip() for line in conf.splitlines() if line.split("#")[0].strip()]
    assert "hash $sharecore_route consistent;" in lines and "ip_hash;" not in lines
    assert any(line.startswith("map $cookie_sharecore_route $sharecore_route") for line in lines)
    assert any("Set-Cookie" in line and "sharecore_route=$sharecore_route" in line for line in lines)
    assert "proxy_http_version 1.1;" in lines
    assert "proxy_set_header Upgrade $http_upgrade;" in lines
    assert "proxy_set_header Connection $connection_upgrade;" in lines
    [timeout] = [line for line in lines if line.startswith("proxy_read_timeout")]
    assert timeout in ("proxy_read_timeout 1h;", "proxy_read_timeout 3600s;")
    [body] = [line for line in lines if line.startswith("client_max_body_size")]
    assert int(re.fullmatch(r"client_max_body_size (\d+)m;", body).group(1)) > _upload_mb()
    servers = [line for line in lines if line.startswith("server 127.0.0.1:")]
    assert servers == ["server 127.0.0.1:8501;", "server 127.0.0.1:8502;"]
    section = _readme_section("Several processes behind one address")
    assert "make hosted PORT=8501" in section and "make hosted PORT=8502" in section


def test_the_caddy_example_sticks_by_cookie_and_lets_a_profile_upload_through():
    conf = (ROOT / "deploy" / "Caddyfile").read_text()
    assert re.search(r"^\s*lb_policy cookie\b", conf, re.MULTILINE)
    assert re.search(r"^\s*reverse_proxy 127\.0\.0\.1:8501 127\.0\.0\.1:8502 \{", conf, re.MULTILINE)
    size = re.search(r"^\s*max_size (\d+)MB$", conf, re.MULTILINE)
    assert size and int(size.group(1)) > _upload_mb()
    assert "health_uri /_stcore/health" in conf


def test_the_readme_says_where_the_store_lives_with_several_processes():
    section = _readme_section("Several processes behind one address")
    [row] = [line for line in section.splitlines() if line.startswith("| kept runs")]
    assert "runs.sqlite3" in row and "SHARECORE_DATABASE_URL" in row and "network filesystem" in row
    assert "sticky sessions" in section.lower() and "STREAMLIT_SERVER_COOKIE_SECRET" in section
    assert "only for now" not in (ROOT / "README.md").read_text()


# A venv python that keeps its environment and arguments instead of starting Streamlit.
RECORDING_PYTHON = """here="$(dirname "$0")/.."
env > "$here/env.txt"
echo "$*" > "$here/args.txt"
"""


def _recording_venv(tmp_path: Path) -> Path:
    """A venv that is up to date for make (no pip runs) and whose python records how it was started."""
    venv = tmp_path / "venv"
    _stand_in(venv / "bin" / "python", RECORDING_PYTHON)
    (venv / ".installed").touch()
    return venv


def _started_with(venv: Path) -> tuple[dict[str, str], str]:
    env = dict(line.split("=", 1) for line in (venv / "env.txt").read_text().splitlines() if "=" in line)
    return env, (venv / "args.txt").read_text().strip()


@needs_make
def test_make_hosted_starts_the_app_with_every_setting_of_the_profile_and_a_variable_set_already_wins(
    tmp_path, monkeypatch
):
    for name in profile():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHARECORE_MAX_STEPS", "5000")  # as `SHARECORE_MAX_STEPS=5000 make hosted` sets it
    venv = _recording_venv(tmp_path)
    out = _make("hosted", f"VENV={venv}", f"BIN={venv}/bin", "PORT=8611")
    assert out.returncode == 0, out.stderr
    assert "hosted-demo profile (deploy/hosted-demo.env) on http://localhost:8611" in out.stdout
    env, args = _started_with(venv)
    assert args == "-m streamlit run streamlit_app.py --server.port 8611"
    assert {name: env.get(name) for name in profile()} == profile() | {"SHARECORE_MAX_STEPS": "5000"}
    assert profile()["SHARECORE_MAX_STEPS"] != "5000"


@needs_make
def test_make_demo_without_docker_says_so_in_one_line_and_runs_the_hosted_profile_instead(tmp_path, monkeypatch):
    for name in profile():
        monkeypatch.delenv(name, raising=False)
    _stand_in(tmp_path / "bin" / "docker", 'echo "Cannot connect to the Docker daemon" >&2; exit 1\n')
    venv = _recording_venv(tmp_path)
    out = _make("demo", f"VENV={venv}", f"BIN={venv}/bin", "PORT=8612", path=tmp_path / "bin")
    assert out.returncode == 0, out.stderr
    ours = out.stderr.strip().splitlines()
    assert len(ours) == 1 and "no Docker here" in ours[0] and "make hosted" in ours[0], out.stderr
    assert "docker build" not in out.stdout
    env, args = _started_with(venv)
    assert args.endswith("--server.port 8612")
    assert {name: env.get(name) for name in profile()} == profile()


@needs_make
def test_make_demo_with_docker_builds_then_runs(tmp_path):
    log = tmp_path / "docker.log"
    _stand_in(tmp_path / "docker", f'echo "$*" >> "{log}"\n')
    out = _make("demo", "PORT=8600", path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert log.read_text().splitlines() == ["info", "build -t sharecore-demo .", "run --rm -p 8600:8501 sharecore-demo"]


# A venv python that reports `tensorflow` as installed when FAKE_TF is set, and keeps the
# requirements file that `-m pip install -r FILE` was given instead of installing anything.
FAKE_PYTHON = """case "$1" in
  -c) [ -n "$FAKE_TF" ] && { echo "$FAKE_TF"; exit 0; }; exit 1 ;;
  -m) while [ $# -gt 0 ]; do [ "$1" = -r ] && cp "$2" "$(dirname "$0")/../pip-got.txt"; shift; done ;;
esac
"""


@needs_make
@pytest.mark.parametrize("tensorflow", ["2.21.0", ""], ids=["user-tensorflow-kept", "no-tensorflow"])
def test_make_installs_tensorflow_cpu_only_when_the_venv_has_no_tensorflow(tmp_path, tensorflow):
    venv = tmp_path / "venv"
    _stand_in(venv / "bin" / "python", FAKE_PYTHON)
    out = _make(f"VENV={venv}", f"BIN={venv}/bin", f"{venv}/.installed", FAKE_TF=tensorflow)
    assert out.returncode == 0, out.stderr
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    got = (venv / "pip-got.txt").read_text().splitlines()
    if tensorflow:
        assert got == [line for line in requirements if not line.startswith("tensorflow-cpu")]
        assert len(got) == len(requirements) - 1
        assert f"keeping the tensorflow {tensorflow}" in out.stdout
    else:
        assert got == requirements
        assert "keeping" not in out.stdout


@needs_make
def test_make_installs_the_dev_tools_without_installing_requirements_txt_again(tmp_path):
    venv = tmp_path / "venv"
    _stand_in(venv / "bin" / "python", FAKE_PYTHON)
    out = _make(f"VENV={venv}", f"BIN={venv}/bin", f"{venv}/.installed-dev", FAKE_TF="2.21.0")
    assert out.returncode == 0, out.stderr
    got = (venv / "pip-got.txt").read_text().splitlines()  # the last pip call: the dev tools
    assert not any(line.startswith(("-r", "tensorflow")) for line in got), got
    assert any(line.startswith("pytest==") for line in got)
