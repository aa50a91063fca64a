"""The host's pip settings for an image build: the build must resolve packages where the host does.

`python scripts/images/host_pip.py OUT_DIR PREFIX` writes OUT_DIR/pip.conf with the settings pip
reports on this machine (`pip config list`: config files and PIP_* variables, variables winning)
and prints one `HOST:CONTAINER:ro` volume per line for every local path those settings name
(find-links directories, `file://` indexes, a constraint file). Each is mounted at PREFIX + its
host path, and pip.conf names it there: the mounts cannot shadow a path of the image, and what
they leave in it (buildah keeps empty mount points) stays under PREFIX.

Left out: `cert` (the base image carries the host's CA bundle where Debian's pip reads it,
scripts/images/base.sh) and settings that would change what gets installed rather than where
from (`user`, `target`, `prefix`, `require-virtualenv`).
"""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path

SKIPPED = {"cert", "user", "target", "prefix", "root", "require-virtualenv", "no-input"}


def host_settings() -> dict[str, dict[str, str]]:
    """{section: {option: value}} from `pip config list`; PIP_* variables override [global]."""
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                             capture_output=True, text=True, check=True).stdout
    sections: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, quoted = line.partition("=")
        section, _, option = name.rpartition(".")
        if option in SKIPPED or not quoted:
            continue
        value = ast.literal_eval(quoted)
        if section == ":env:":
            env[option] = value
        else:
            sections.setdefault(section, {})[option] = value
    sections.setdefault("global", {}).update(env)
    return sections


def local_paths(sections: dict[str, dict[str, str]]) -> list[Path]:
    """Existing absolute paths named in the settings (`/opt/wheels`, `file:///opt/pypi/simple`).

    A local index `.../simple` links its files relative to itself (`../../files/...`), so its
    parent directory is mounted."""
    paths = []
    for options in sections.values():
        for value in options.values():
            for token in value.split():
                path = Path(token.removeprefix("file://"))
                if token.startswith("file://") and path.name == "simple":
                    path = path.parent
                if path.is_absolute() and path.exists() and path not in paths:
                    paths.append(path)
    return paths


def under_prefix(value: str, paths: list[Path], prefix: str) -> str:
    """`value` with every mounted path in it moved under `prefix`."""
    tokens = []
    for token in value.split():
        for path in paths:
            token = re.sub(rf"^(file://)?{re.escape(str(path))}(?=/|$)", rf"\g<1>{prefix}{path}", token)
        tokens.append(token)
    return " ".join(tokens)


def main(out_dir: Path, prefix: str) -> None:
    sections = host_settings()
    paths = local_paths(sections)
    config = configparser.ConfigParser(interpolation=None)
    config.read_dict({section: {k: under_prefix(v, paths, prefix) for k, v in options.items()}
                      for section, options in sections.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "pip.conf", "w") as f:
        config.write(f)
    for path in paths:
        print(f"{path}:{prefix}{path}:ro")  # noqa: T201 - the volumes are this script's output


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].rstrip("/"))
