"""Checks of the production deployment files: compose.yaml, Dockerfile, .dockerignore, deploy/.

No Docker engine runs on the development machines, so these files cannot be started here. Instead:

* compose.yaml is validated against the Compose Specification JSON schema
  (``<repo>/../shared/schemas/compose-spec.json``), and the validator is shown to reject broken
  documents, so that a passing validation means something;
* the properties the deployment relies on (healthchecks behind every ``depends_on``, no literal
  secrets, environment variables that the Settings object really reads, a GPU-only vLLM, ...) are
  asserted directly on the parsed file;
* the Dockerfile and .dockerignore are parsed and checked for what the image must (not) contain;
* compose.gpu.yaml (the GPU override) is validated too, and merged onto compose.yaml the way Compose
  merges environment mappings, to check what the API and the workers see with and without it.

Everything is local and fast: no network, no Docker.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from jsonschema import validators

from kg_builder.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
GPU_OVERRIDE_FILE = REPO / "compose.gpu.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
SCHEMA_FILE = REPO.parent / "shared" / "schemas" / "compose-spec.json"

KGFORGE_SERVICES = ("api", "worker")

# KGFORGE_* variables the compose file already passes to the API and the workers although
# kg_builder.settings.Settings has no field for them yet: each is added to Settings by a later
# issue (named here). Keep this list short and explicit; anything else must be a Settings field.
FUTURE_SETTINGS_KEYS: set[str] = set()

# Environment keys that hold secrets: their values must come from the environment, never literals.
SECRET_KEY_PATTERN = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|AUTH|CREDENTIAL", re.I)

# Values for the required variables when a test renders the file the way Compose would.
SAMPLE_ENV = {
    "KGFORGE_GRAPH_PASSWORD": "test-only-Xq9v-not-a-real-secret",
    "KGFORGE_API_KEYS": "test-only-key-1,test-only-key-2",
    "KGFORGE_POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef",
}


# --- helpers: Compose interpolation -------------------------------------------------------------

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err}, ${NAME:+alt}, $NAME;
# "$$" is an escaped dollar (for the container's shell) and is not an interpolation.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolations(value: str) -> list[tuple[str, str | None, str]]:
    """The (name, operator, argument) of every Compose interpolation in ``value``."""
    found = []
    for m in _INTERPOLATION.finditer(value):
        if m.group("escaped"):
            continue
        name = m.group("braced") or m.group("bare")
        found.append((name, m.group("op"), m.group("arg") or ""))
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    """Render ``value`` as Compose does (the subset of the syntax compose.yaml uses)."""

    def replace(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise KeyError(f"required variable {name} is missing: {arg}")
            return current
        if op == ":+":
            return arg if current else ""
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def walk_strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string value (and string key) in a parsed YAML document, with its path."""
    out: list[tuple[str, str]] = []
    if isinstance(node, str):
        out.append((path, node))
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str):
                out.append((f"{path}/<key>", key))
            out.extend(walk_strings(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(walk_strings(value, f"{path}[{i}]"))
    return out


def environment(service: dict) -> dict[str, str | None]:
    """A service's environment as a dict (Compose accepts a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: v for k, _, v in (item.partition("=") for item in env)}
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def depends_on(service: dict) -> dict[str, dict]:
    """A service's depends_on as {name: {condition: ...}} (list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return deps


def container_ports(service: dict) -> set[int]:
    """The container-side ports a service publishes (short or long syntax)."""
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            # [ip:][host:]container[/proto]; the ip part may itself be an interpolation.
            spec = re.sub(r"\$\{[^}]*\}", "IP", str(entry)).split("/")[0]
            ports.add(int(spec.rsplit(":", 1)[-1]))
    return ports


def mounts(service: dict) -> list[dict]:
    """A service's volumes in long syntax (type, source, target, read_only)."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            out.append(entry)
            continue
        parts = str(entry).split(":")
        source, target = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        kind = "volume" if source and not source.startswith((".", "/", "~", "$")) else "bind"
        out.append({"type": kind, "source": source, "target": target,
                    "read_only": len(parts) > 2 and "ro" in parts[2].split(",")})
    return out


def command_text(service: dict) -> str:
    cmd = service.get("command") or ""
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def healthcheck_text(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test") or ""
    return " ".join(test) if isinstance(test, list) else test


def literal_secret_problems(doc: dict) -> list[str]:
    """Places where compose.yaml would carry a secret value instead of reading it from the env."""
    problems = []
    for name, service in (doc.get("services") or {}).items():
        for key, value in environment(service).items():
            if not SECRET_KEY_PATTERN.search(key) or value in (None, ""):
                continue
            found = interpolations(value)
            if not found:
                problems.append(f"{name}.environment.{key} is a literal value")
            for var, op, arg in found:
                if op in ("-", ":-") and arg:
                    problems.append(f"{name}.environment.{key} has a default secret for {var}")
    for path, text in walk_strings(doc):
        # Secret-looking variables anywhere (commands, ports, ...) must not have a default value.
        for var, op, arg in interpolations(text):
            if SECRET_KEY_PATTERN.search(var) and op in ("-", ":-") and arg:
                problems.append(f"{path}: ${{{var}}} defaults to a literal secret")
        # Credentials inside URLs (redis://:pw@host, bolt://user:pw@host) must be interpolated.
        for m in re.finditer(r"[a-z+]+://[^/\s:@]*:([^@\s/]+)@", text):
            if not interpolations(m.group(1)):
                problems.append(f"{path}: URL with a literal password")
    return problems


# --- helpers: Dockerfile and .dockerignore -----------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):  # comment inside a continuation
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            word, _, args = current.strip().partition(" ")
            instructions.append((word.upper(), args.strip()))
        current = ""
    return instructions


def dockerfile_stages(text: str) -> list[dict]:
    """The stages of a Dockerfile: base image (ARG defaults substituted), name, instructions."""
    args: dict[str, str] = {}
    stages: list[dict] = []
    for word, rest in dockerfile_instructions(text):
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif word == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            stages.append({"base": base, "name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((word, rest))
    return stages


def copy_sources(args: str) -> tuple[list[str], list[str]]:
    """(sources, flags) of a COPY/ADD instruction (shell form)."""
    words = args.split()
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], flags


def _dockerignore_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore pattern syntax (Go filepath.Match plus "**") as a regex."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def dockerignore_matcher(text: str) -> Callable[[str], bool]:
    """A function telling whether a context-relative path is excluded from the build context.

    Same rules as Docker: patterns in order, the last one that matches the path or one of its
    parent folders wins, and "!" patterns re-include.
    """
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/") or "."
        rules.append((negate, _dockerignore_regex(pattern)))

    def excluded(path: str) -> bool:
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for negate, regex in rules:
            if any(regex.fullmatch(c) for c in candidates):
                result = not negate
        return result

    return excluded


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def compose_validator():
    """A validator for the Compose Specification schema; skips when the schema is not there."""
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"Compose Specification schema not found at {SCHEMA_FILE} (needs ../shared)")
    schema = json.loads(SCHEMA_FILE.read_text())
    declared = schema.get("$schema", "")
    # The vendored schema declares "https://json-schema.org/draft-07/schema", but jsonschema knows
    # draft 7 as "http://json-schema.org/draft-07/schema#": an exact lookup misses and would
    # silently fall back to the latest draft. Try the spelling variants before giving up.
    variants = [declared, declared + "#", declared.replace("https://", "http://", 1),
                declared.replace("https://", "http://", 1) + "#"]
    cls = next((c for v in variants
                if (c := validators.validator_for({"$schema": v}, default=None)) is not None), None)
    if cls is None:
        pytest.fail(f"jsonschema has no validator for $schema {declared!r}")
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def stages() -> list[dict]:
    return dockerfile_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def ignored() -> Callable[[str], bool]:
    return dockerignore_matcher(DOCKERIGNORE.read_text())


# --- compose.yaml: the schema -------------------------------------------------------------------

def test_compose_file_is_valid_against_the_compose_spec(compose, compose_validator):
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def _set_ports_to_number(doc):
    doc["services"]["api"]["ports"] = 12


def _add_unknown_top_level_key(doc):
    doc["servics"] = {}


def _misspell_a_depends_on_condition(doc):
    doc["services"]["api"]["depends_on"]["neo4j"]["condition"] = "service_healty"


def _misspell_a_healthcheck_key(doc):
    doc["services"]["neo4j"]["healthcheck"]["intervall"] = "10s"


@pytest.mark.parametrize("break_it", [_set_ports_to_number, _add_unknown_top_level_key,
                                      _misspell_a_depends_on_condition, _misspell_a_healthcheck_key])
def test_schema_validation_rejects_broken_documents(compose, compose_validator, break_it):
    # The errors inside services come from "$ref": "#/definitions/service" and below, so this
    # also shows that the schema's references resolve (a validator that skipped them would pass).
    broken = copy.deepcopy(compose)
    break_it(broken)
    assert list(compose_validator.iter_errors(broken)), f"{break_it.__name__} was not rejected"


# --- compose.yaml: dependencies and healthchecks -----------------------------------------------

def test_every_dependency_exists_and_has_a_healthcheck(services):
    # service_healthy needs a healthcheck; service_completed_successfully a one-shot that exits.
    for name, service in services.items():
        for dep, how in depends_on(service).items():
            assert dep in services, f"{name} depends on an undefined service {dep}"
            condition = how.get("condition")
            assert condition in ("service_healthy", "service_completed_successfully"), (name, dep, condition)
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} must be a one-shot (restart: \"no\")"
                continue
            check = services[dep].get("healthcheck") or {}
            assert check.get("test") and not check.get("disable"), (
                f"{name} depends on {dep}, which has no healthcheck")
            assert check["test"] not in (["NONE"], "NONE")


def test_graph_job_database_and_broker_dependencies_wait_until_healthy(services):
    for name in KGFORGE_SERVICES:
        deps = depends_on(services[name])
        for dep in ("neo4j", "postgres", "redis"):
            assert deps.get(dep, {}).get("condition") == "service_healthy", (name, dep)
        assert deps["graph-schema"]["condition"] == "service_completed_successfully", name
    assert depends_on(services["flower"])["redis"]["condition"] == "service_healthy"


def test_every_healthcheck_sets_its_timing(services):
    for name, service in services.items():
        check = service.get("healthcheck")
        if check:
            missing = {"interval", "timeout", "retries", "start_period"} - check.keys()
            assert not missing, f"{name}.healthcheck lacks {sorted(missing)}"


def test_no_service_depends_on_the_gpu_only_llm(services):
    # Otherwise `docker compose up` without --profile gpu could not start the stack.
    for name, service in services.items():
        assert "vllm" not in depends_on(service), name


# --- compose.yaml: the individual services -----------------------------------------------------

def test_neo4j_is_a_pinned_neo4j_5_with_browser_bolt_and_a_data_volume(compose, services):
    neo4j = services["neo4j"]
    assert re.fullmatch(r"neo4j:5\.\d+(\.\d+)?-community", neo4j["image"]), neo4j["image"]
    assert {7474, 7687} <= container_ports(neo4j)
    data = [m for m in mounts(neo4j) if m["target"] == "/data"]
    assert data and data[0]["type"] == "volume" and data[0]["source"] in compose["volumes"]
    auth = environment(neo4j)["NEO4J_AUTH"]
    assert auth.startswith("neo4j/")
    assert ("KGFORGE_GRAPH_PASSWORD", ":?") in [(n, op) for n, op, _ in interpolations(auth)]
    assert "cypher-shell" in healthcheck_text(neo4j) or "7474" in healthcheck_text(neo4j)


def test_redis_is_redis_7_with_ping_healthcheck_and_append_only_volume(compose, services):
    redis = services["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-alpine)?", redis["image"]), redis["image"]
    assert "redis-cli" in healthcheck_text(redis) and "ping" in healthcheck_text(redis)
    assert re.search(r"--appendonly\s+yes", command_text(redis))
    data = [m for m in mounts(redis) if m["target"] == "/data"]
    assert data and data[0]["type"] == "volume" and data[0]["source"] in compose["volumes"]


def test_api_runs_uvicorn_on_8000_from_the_repository_image(services):
    api = services["api"]
    assert command_text(api) == "python -m api.serve --host 0.0.0.0 --port 8000"  # uvicorn, KGFORGE_API_WORKERS
    assert 8000 in container_ports(api)
    build = api["build"]
    # Never "..": the context would then include ../shared/data.
    assert build["context"] == "."
    assert (REPO / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    check = healthcheck_text(api)
    assert "urllib" in check and "http://127.0.0.1:8000/healthz" in check


def test_worker_and_api_share_image_and_environment(services):
    api, worker = services["api"], services["worker"]
    assert worker["image"] == api["image"]
    assert environment(worker) == environment(api)
    assert command_text(worker).startswith(
        "celery -A workers.app worker --loglevel INFO --concurrency 2")
    assert "inspect ping" in healthcheck_text(worker)


def test_kgforge_environment_points_at_the_compose_services(services):
    env = environment(services["api"])
    assert env["KGFORGE_GRAPH_URI"] == "bolt://neo4j:7687"
    assert env["KGFORGE_GRAPH_USER"] == "neo4j"
    assert env["KGFORGE_GRAPH_DATABASE"] == "neo4j"
    assert env["KGFORGE_BROKER_URL"] == "redis://redis:6379/0"
    assert env["KGFORGE_ENV"] == "production"
    # Offline mode unless compose.gpu.yaml (or the variable) names an endpoint.
    assert interpolate(env["KGFORGE_LLM_BASE_URL"], {}) == ""
    assert interpolate(env["KGFORGE_LLM_BASE_URL"], {"KGFORGE_LLM_BASE_URL": "http://llm:1/v1"}) == "http://llm:1/v1"
    for required in ("KGFORGE_GRAPH_PASSWORD", "KGFORGE_API_KEYS"):
        assert [(n, op) for n, op, _ in interpolations(env[required])] == [(required, ":?")]
    jobs_url = env["KGFORGE_JOBS_URL"]
    assert [(n, op) for n, op, _ in interpolations(jobs_url)] == [("KGFORGE_POSTGRES_PASSWORD", ":?")]
    assert interpolate(jobs_url, SAMPLE_ENV) == (
        f"postgresql://kgforge:{SAMPLE_ENV['KGFORGE_POSTGRES_PASSWORD']}@postgres:5432/kgforge")


def test_kgforge_home_is_a_volume_and_the_data_is_mounted_read_only(compose, services):
    for name in KGFORGE_SERVICES:
        env, by_target = environment(services[name]), {m["target"]: m for m in mounts(services[name])}
        home = by_target[env["KGFORGE_HOME"]]
        assert env["KGFORGE_HOME"] == "/var/lib/kgforge"
        assert home["type"] == "volume" and home["source"] in compose["volumes"]
        data = by_target[env["KGFORGE_DATA_DIR"]]
        assert env["KGFORGE_DATA_DIR"] == "/data/shared"
        assert data["type"] == "bind" and data.get("read_only") is True
        assert interpolate(data["source"], {}) == "../shared/data"
        assert interpolate(data["source"], {"KGFORGE_DATA_DIR": "/srv/kg"}) == "/srv/kg"


def test_postgres_is_a_pinned_server_with_pg_isready_over_tcp_a_volume_and_no_published_port(compose, services):
    pg = services["postgres"]
    assert re.fullmatch(r"postgres:1[5-9](\.\d+)?(-alpine)?", pg["image"]), pg["image"]
    check = healthcheck_text(pg)
    assert "pg_isready" in check and "127.0.0.1" in check and "kgforge" in check
    assert not pg.get("ports"), "the job database is only for the containers on the project network"
    data = [m for m in mounts(pg) if m["target"] == "/var/lib/postgresql/data"]
    assert data and data[0]["type"] == "volume" and data[0]["source"] in compose["volumes"]
    env = environment(pg)
    assert env["POSTGRES_USER"] == "kgforge" and env["POSTGRES_DB"] == "kgforge"
    assert [(n, op) for n, op, _ in interpolations(env["POSTGRES_PASSWORD"])] == [("KGFORGE_POSTGRES_PASSWORD", ":?")]
    # The URL the services get names this server, user and database.
    url = environment(services["api"])["KGFORGE_JOBS_URL"]
    assert re.fullmatch(r"postgresql://kgforge:\$\{KGFORGE_POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432/kgforge", url), url


def test_graph_schema_runs_once_before_the_services_against_a_healthy_neo4j(services):
    init = services["graph-schema"]
    assert init["image"] == services["api"]["image"] and environment(init) == environment(services["api"])
    assert "setup_schema()" in command_text(init)
    assert depends_on(init) == {"neo4j": {"condition": "service_healthy"}}
    assert init["restart"] == "no" and not init.get("ports") and not init.get("healthcheck")


def test_gpu_override_points_the_services_at_vllm_and_nothing_else(compose, services, compose_validator):
    override = yaml.safe_load(GPU_OVERRIDE_FILE.read_text())
    errors = list(compose_validator.iter_errors(override))
    assert not errors, [e.message for e in errors]
    assert set(override["services"]) == set(KGFORGE_SERVICES)
    for name in KGFORGE_SERVICES:
        assert set(override["services"][name]) == {"environment"}
        # Compose merges environment mappings key by key: the override wins for its keys only.
        merged = {**environment(services[name]), **environment(override["services"][name])}
        assert merged["KGFORGE_LLM_BASE_URL"] == "http://vllm:8000/v1"
        assert {k: v for k, v in merged.items() if k != "KGFORGE_LLM_BASE_URL"} == {
            k: v for k, v in environment(services[name]).items() if k != "KGFORGE_LLM_BASE_URL"}
    # The host it names is the gpu profile's service, on the port vLLM listens on.
    assert services["vllm"]["profiles"] == ["gpu"] and "--port=8000" in command_text(services["vllm"])
    assert "compose.gpu.yaml" in ENV_EXAMPLE.read_text() and "COMPOSE_PROFILES=gpu" in ENV_EXAMPLE.read_text()


def test_flower_watches_the_redis_broker_on_5555(services):
    flower = services["flower"]
    assert 5555 in container_ports(flower)
    text = command_text(flower) + " " + " ".join(str(v) for v in environment(flower).values())
    assert "redis://redis:6379" in text


def test_vllm_is_gpu_only_with_a_gpu_reservation_cache_and_health(compose, services):
    vllm = services["vllm"]
    assert vllm["profiles"] == ["gpu"]
    for name, service in services.items():
        if name != "vllm":
            assert "gpu" not in (service.get("profiles") or []), name
    image, _, tag = vllm["image"].partition(":")
    assert image == "vllm/vllm-openai" and tag and tag != "latest"
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "KGFORGE_LLM_MODEL" in [n for n, _, _ in interpolations(command_text(vllm))]
    assert interpolate(command_text(vllm), {}).split()[0] == "Qwen/Qwen2.5-7B-Instruct"
    assert "--port=8000" in command_text(vllm) or "--port 8000" in command_text(vllm)
    assert 8000 in container_ports(vllm)
    assert any(interpolate(str(p), {}).endswith("8001:8000") for p in vllm["ports"])
    cache = [m for m in mounts(vllm) if "huggingface" in m["target"]]
    assert cache and cache[0]["type"] == "volume" and cache[0]["source"] in compose["volumes"]
    assert "/health" in healthcheck_text(vllm)


def test_third_party_images_are_pinned(services):
    for name, service in services.items():
        if "build" in service:
            continue
        repo, _, tag = service["image"].rpartition(":")
        assert repo and tag and tag != "latest", f"{name} image {service['image']!r} is not pinned"


# --- compose.yaml: secrets and variables -------------------------------------------------------

def test_no_literal_secrets(compose):
    assert literal_secret_problems(compose) == []


@pytest.mark.parametrize("break_it", [
    lambda d: d["services"]["neo4j"]["environment"].update(NEO4J_AUTH="neo4j/hunter22"),
    lambda d: d["services"]["api"]["environment"].update(
        KGFORGE_GRAPH_PASSWORD="${KGFORGE_GRAPH_PASSWORD:-hunter22}"),
    lambda d: d["services"]["redis"].update(command="redis-server --masterauth ${REDIS_PASSWORD:-x1}"),
    lambda d: d["services"]["flower"].update(command="celery --broker=redis://:hunter22@redis:6379/0"),
], ids=["literal", "default", "default-in-command", "url-password"])
def test_literal_secret_check_catches_secrets(compose, break_it):
    broken = copy.deepcopy(compose)
    # The anchored environment mapping is shared between services: copy before editing.
    for service in broken["services"].values():
        if isinstance(service.get("environment"), dict):
            service["environment"] = dict(service["environment"])
    break_it(broken)
    assert literal_secret_problems(broken)


def test_every_variable_has_a_default_or_is_required(compose):
    # A bare ${VAR} becomes "" with only a warning; every variable must either have a default or
    # make Compose stop with a message.
    for path, text in walk_strings(compose):
        for name, op, _ in interpolations(text):
            assert op is not None, f"{path}: ${{{name}}} has neither a default nor a :? message"


def test_compose_renders_only_with_the_required_variables(compose):
    text = COMPOSE_FILE.read_text()
    for name in SAMPLE_ENV:
        with pytest.raises(KeyError, match=name):
            interpolate(text, {k: v for k, v in SAMPLE_ENV.items() if k != name})
    rendered = yaml.safe_load(interpolate(text, SAMPLE_ENV))
    assert rendered["services"]["neo4j"]["environment"]["NEO4J_AUTH"] == (
        "neo4j/" + SAMPLE_ENV["KGFORGE_GRAPH_PASSWORD"])


def test_kgforge_variables_are_settings_fields(services):
    fields = set(Settings.model_fields)
    for name in KGFORGE_SERVICES:
        keys = [k for k in environment(services[name]) if k.startswith("KGFORGE_")]
        assert keys, name
        unknown = [k for k in keys
                   if k.removeprefix("KGFORGE_").lower() not in fields | FUTURE_SETTINGS_KEYS]
        assert not unknown, f"{name}: {unknown} are not fields of kg_builder.settings.Settings"


def test_settings_accept_the_rendered_environment(services, monkeypatch):
    # What the API and the workers will actually read, rendered as Compose would render it.
    env = {k: interpolate(v or "", SAMPLE_ENV) for k, v in environment(services["api"]).items()}
    for key in [k for k in os.environ if k.upper().startswith("KGFORGE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.env == "production"
    assert not settings.embedded and settings.bolt_uri == "bolt://neo4j:7687"
    assert settings.resolved_graph_password() == SAMPLE_ENV["KGFORGE_GRAPH_PASSWORD"]
    assert settings.graph_database == "neo4j"
    assert settings.broker_url == "redis://redis:6379/0"
    assert not settings.llm_base_url  # offline mode (kg_builder.llm.llm_from_settings gives None)
    assert settings.llm_model == "Qwen/Qwen2.5-7B-Instruct"
    assert settings.jobs_url == f"postgresql://kgforge:{SAMPLE_ENV['KGFORGE_POSTGRES_PASSWORD']}@postgres:5432/kgforge"
    assert settings.home == Path("/var/lib/kgforge") and settings.data_dir == Path("/data/shared")


def test_env_example_documents_every_variable_without_values_for_secrets(compose):
    text = ENV_EXAMPLE.read_text()
    documented = dict(re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))
    used = {name for _, s in walk_strings(compose) for name, _, _ in interpolations(s)}
    assert not used - documented.keys(), f"undocumented in {ENV_EXAMPLE.name}: {used - documented.keys()}"
    for name, value in documented.items():
        if SECRET_KEY_PATTERN.search(name):
            assert value == "", f"{ENV_EXAMPLE.name} gives {name} a value"
    # The required ones are the uncommented lines, left empty.
    for name in SAMPLE_ENV:
        assert re.search(rf"^{name}=$", text, re.M), name


# --- Dockerfile and .dockerignore --------------------------------------------------------------

def _package_dirs(pyproject: dict) -> list[str]:
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.rstrip("*").rstrip(".") for p in include})


def test_image_is_python_311_slim(stages):
    assert stages, "no FROM in the Dockerfile"
    names = {s["name"] for s in stages if s["name"]}
    for stage in stages:
        assert stage["base"] == "python:3.11-slim" or stage["base"] in names, stage["base"]


def test_torch_cpu_wheel_is_installed_before_the_project(stages):
    runs = [args for stage in stages for word, args in stage["instructions"] if word == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if "torch==" in r)
    project_at = next(i for i, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r))
    assert "https://download.pytorch.org/whl/cpu" in runs[torch_at]
    assert torch_at < project_at


def test_final_stage_runs_as_a_non_root_user_in_app(stages):
    final = stages[-1]["instructions"]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage never switches away from root"
    assert users[-1].split(":")[0] not in ("root", "0")
    workdirs = [args for word, args in final if word == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/app"


def test_copy_sources_are_in_the_context(stages, ignored):
    for stage in stages:
        for word, args in stage["instructions"]:
            if word not in ("COPY", "ADD"):
                continue
            sources, flags = copy_sources(args)
            if any(f.startswith("--from") for f in flags):
                continue
            for source in sources:
                assert ".." not in Path(source).parts and not source.startswith("/"), source
                assert "data" not in Path(source).parts, f"{source}: data never goes in the image"
                if any(ch in source for ch in "*?["):
                    continue  # a wildcard may match nothing (BuildKit accepts that)
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_every_package_is_copied_and_not_ignored(stages, pyproject, ignored):
    copied = {Path(src).parts[0]
              for stage in stages for word, args in stage["instructions"] if word == "COPY"
              for src in copy_sources(args)[0]}
    for package in _package_dirs(pyproject):
        assert package in copied, f"package {package} is not copied into the image"
        assert not ignored(f"{package}/__init__.py"), f"package {package} is excluded by .dockerignore"
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str):
        copied_globs = [src for stage in stages for word, args in stage["instructions"]
                        if word == "COPY" for src in copy_sources(args)[0]]
        assert any(re.fullmatch(_dockerignore_regex(g), readme) for g in copied_globs)
        assert not ignored(readme)


@pytest.mark.parametrize("path", [
    ".git/HEAD", ".venv/bin/python", "venv/bin/python", "kg_builder/__pycache__/settings.cpython-311.pyc",
    "kg_builder/graphdb/__pycache__/x.pyc", "benchmarks/results/run.json", "data/umls/train.tsv",
    "shared/data/README.md", "results/metrics.json", ".pytest_cache/v/x", ".kgforge/db/root_password",
    ".env", "tests/deploy/test_compose.py", "kgforge.egg-info/PKG-INFO", "models/reranker.safetensors",
])
def test_dockerignore_keeps_out(ignored, path):
    assert ignored(path)


@pytest.mark.parametrize("path", [
    "pyproject.toml", "README.md", "kg_builder/settings.py", "kg_builder/graphdb/__init__.py",
    "cypher/upsert_triples.cypher", "api/main.py", "workers/app.py",
])
def test_dockerignore_lets_in(ignored, path):
    assert not ignored(path)


def test_dockerignore_matcher_follows_docker_rules():
    # The matcher above decides the two tests before it; check it against known Docker behaviour.
    excluded = dockerignore_matcher("*\n!keep/\n**/*.pyc\n!keep/important.pyc\n")
    assert excluded("other/file.py") and excluded("top.txt")
    assert not excluded("keep/a.py") and not excluded("keep/sub/b.py")
    assert excluded("keep/sub/c.pyc") and not excluded("keep/important.pyc")
