"""The daily ETL's pyarrow as a Lambda layer, built from the pinned PyPI wheel and attached to `daily_etl` only.

Why a layer we build rather than the alternatives:
- chalice gives every function the same package, so pyarrow in `requirements.txt` (42 MB zipped, 141 MB
  unzipped) would also ship with the webhooks;
- chalice 1.34 cannot package pyarrow >= 21 (manylinux_2_28 wheels only), and Lambda's python3.11 runs on
  Amazon Linux 2 (glibc 2.26), which could not load those wheels anyway;
- the AWS SDK for pandas managed layer builds its pyarrow with ARROW_WITH_ZSTD=OFF, and the contract's tables
  are zstd Parquet: the ETL would fail there with "Support for codec 'zstd' not built".

The layer holds exactly the manylinux2014 wheel of the version pinned in `requirements-dev.txt`, the version the
tests run on, minus files nothing imports (tests, C++ headers, Cython sources).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from chatlake import PROJECT_DIR

REQUIREMENTS_DEV = PROJECT_DIR / "requirements-dev.txt"
CHALICE_CONFIG = PROJECT_DIR / ".chalice" / "config.json"
ETL_FUNCTION = "daily_etl"
ETL_FUNCTIONS = (ETL_FUNCTION, "etl_share", "intraday_etl")  # they import pyarrow: each gets the layer

# Chalice deploys the local Python's minor version; python3.11 on Lambda is Amazon Linux 2 (glibc 2.26).
LAMBDA_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
LAMBDA_PLATFORM = "manylinux2014_x86_64"
LAMBDA_ARCHITECTURE = "x86_64"
# Lambda's limits: a layer uploaded directly (not from S3) is at most 50 MB zipped, and a function with its
# layers at most 250 MB unzipped; the function's own package is kept well under 5 MB by a test.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024 - 5 * 1024 * 1024
# Wheel content nothing imports at run time.
DROPPED_DIRS = ("pyarrow/tests/", "pyarrow/include/", "pyarrow/src/")
DROPPED_SUFFIXES = (".pyx", ".pxd", ".pxi", ".pyc")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same wheel always gives the same zip (and CodeSha256)


class LayerError(Exception):
    """The layer could not be built or published; the message says why and what to do."""


@dataclass(frozen=True)
class LayerZip:
    path: Path
    pyarrow_version: str
    zipped_bytes: int
    unzipped_bytes: int


def pinned_version(requirements: str, package: str = "pyarrow") -> str:
    """The `package==X` pin in a requirements file's text."""
    for line in requirements.splitlines():
        m = re.fullmatch(rf"\s*{re.escape(package)}\s*==\s*([\w.]+)\s*(#.*)?", line, re.IGNORECASE)
        if m:
            return m.group(1)
    raise LayerError(f"no {package}==VERSION pin in the requirements")


def layer_name(version: str) -> str:
    """`chatlake-pyarrow-20-0-0`: the ARN then says which pyarrow the ETL runs on."""
    return "chatlake-pyarrow-" + re.sub(r"[^A-Za-z0-9]", "-", version)


def layer_version_of(arn: str) -> str | None:
    """The pyarrow version a layer ARN of ours names (None for any other layer)."""
    m = re.search(r":layer:chatlake-pyarrow-([0-9A-Za-z-]+):\d+$", arn)
    return m.group(1).replace("-", ".") if m else None


def download_wheel(version: str, dest: Path, run: Callable[..., Any] = subprocess.run) -> Path:
    """The Lambda-compatible pyarrow wheel from PyPI (pip's cache makes repeats cheap)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--platform", LAMBDA_PLATFORM, "--python-version", LAMBDA_PYTHON,
           "--implementation", "cp", "--dest", str(dest), f"pyarrow=={version}"]
    result = run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise LayerError(f"pip could not download a {LAMBDA_PLATFORM} wheel of pyarrow {version} for Python "
                         f"{LAMBDA_PYTHON} (Lambda's python{LAMBDA_PYTHON} needs one): {result.stderr.strip()}")
    wheels = sorted(dest.glob(f"pyarrow-{version}-*.whl"))
    if not wheels:
        raise LayerError(f"pip reported success but left no pyarrow {version} wheel in {dest}")
    return wheels[0]


def _kept(name: str) -> bool:
    return not (name.endswith("/") or name.startswith(DROPPED_DIRS) or name.endswith(DROPPED_SUFFIXES)
                or "/__pycache__/" in name)


def build_zip(wheel: Path, out: Path) -> LayerZip:
    """The wheel's files under `python/` (where Lambda looks in a layer), in a deterministic zip."""
    m = re.match(r"pyarrow-([^-]+)-", wheel.name)
    if not m:
        raise LayerError(f"{wheel.name} is not a pyarrow wheel")
    unzipped = 0
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            if not _kept(info.filename):
                continue
            entry = zipfile.ZipInfo("python/" + info.filename, ZIP_TIME)
            entry.external_attr = (0o755 if info.filename.endswith(".so") or ".so." in info.filename
                                   else 0o644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, src.read(info))
            unzipped += info.file_size
    layer = LayerZip(out, m.group(1), out.stat().st_size, unzipped)
    if layer.zipped_bytes > MAX_ZIPPED_BYTES or layer.unzipped_bytes > MAX_UNZIPPED_BYTES:
        raise LayerError(f"the layer is {layer.zipped_bytes / 2**20:.1f} MB zipped, {layer.unzipped_bytes / 2**20:.1f}"
                         f" MB unzipped: over Lambda's limits (50 MB zipped upload, 250 MB unzipped with the function)")
    return layer


def build(workdir: Path, requirements: Path = REQUIREMENTS_DEV) -> LayerZip:
    """Download the pinned wheel and build the layer zip in `workdir`."""
    version = pinned_version(requirements.read_text())
    wheel = download_wheel(version, workdir)
    return build_zip(wheel, workdir / f"{layer_name(version)}.zip")


def publish(client: Any, layer: LayerZip) -> str:
    """A new version of the layer in the client's account and region; returns its ARN."""
    reply = client.publish_layer_version(
        LayerName=layer_name(layer.pyarrow_version),
        Description=f"pyarrow {layer.pyarrow_version} ({LAMBDA_PLATFORM} wheel from PyPI) for chatlake's daily ETL",
        Content={"ZipFile": layer.path.read_bytes()},
        CompatibleRuntimes=[f"python{LAMBDA_PYTHON}"],
        CompatibleArchitectures=[LAMBDA_ARCHITECTURE],
        LicenseInfo="Apache-2.0",
    )
    return reply["LayerVersionArn"]


def with_stage_layer(config: dict[str, Any], stage: str, arn: str) -> dict[str, Any]:
    """`config` with `arn` as the ETL function's only layer in `stage` (a copy; other stages untouched)."""
    if stage not in config.get("stages", {}):
        raise LayerError(f"no stage {stage!r} in .chalice/config.json (stages: {', '.join(config.get('stages', {}))})")
    new = json.loads(json.dumps(config))
    functions = new["stages"][stage].setdefault("lambda_functions", {})
    for name in ETL_FUNCTIONS:
        functions.setdefault(name, {})["layers"] = [arn]
    return new


def command(stage: str | None, client_factory: Callable[[], Any], workdir: Path, out: TextIO | None = None,
            config_path: Path = CHALICE_CONFIG, build_layer: Callable[[Path], LayerZip] = build) -> int:
    """`publish-layer`: build, publish, and (with a stage) write the ARN into the stage's config."""
    out = out or sys.stdout
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        layer = build_layer(workdir)
        print(f"built {layer.path.name}: pyarrow {layer.pyarrow_version}, {layer.zipped_bytes / 2**20:.1f} MB zipped, "
              f"{layer.unzipped_bytes / 2**20:.1f} MB unzipped", file=out)
        client = client_factory()
        arn = publish(client, layer)
    except (BotoCoreError, ClientError) as e:
        print(f"error: publishing the layer failed: {e}", file=sys.stderr)
        return 1
    except LayerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"published {arn}", file=out)
    if stage is None:
        print(f'put it in .chalice/config.json: stages.<stage>.lambda_functions.{ETL_FUNCTION}.layers = ["{arn}"]',
              file=out)
        return 0
    try:
        config = with_stage_layer(json.loads(config_path.read_text()), stage, arn)
    except LayerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    print(f"{config_path.name}: stage {stage!r} now gives {ETL_FUNCTION} this layer; deploy with "
          f"`chalice deploy --stage {stage}` in the same region", file=out)
    return 0

