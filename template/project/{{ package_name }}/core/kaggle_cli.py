"""The kaggle CLI as `export --push` drives it. It exits 0 on errors it only prints, and Kaggle processes an
uploaded dataset asynchronously: the notebook is pushed once `kaggle datasets status` says the dataset is ready."""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from .errors import ProjectError
from .runs import read_json

# `kaggle datasets status OWNER/SLUG` prints one word: kagglesdk's DatabundleVersionStatus lower-cased (kaggle >= 1.7:
# not_yet_persisted, blobs_received, blobs_decompressed, blobs_copied_to_sds, individual_blobs_compressed, ready,
# failed, deleted, reprocessing), the server's word before (pending, ready, error). Any other word means "not yet".
READY = "ready"
FAILED = ("failed", "error", "deleted")
READY_TIMEOUT_MINUTES = 10.0  # how long push waits for Kaggle to process the uploaded dataset
POLL_SECONDS = 5.0  # between two `kaggle datasets status` calls
VERSION_SETTLE_SECONDS = 30.0  # after `datasets version`: how long "ready" alone counts as the old version's status
STATUS_RETRIES = 3  # failing `datasets status` calls in a row tolerated while waiting (a network hiccup)
TITLE_LENGTH = (6, 50)  # `kaggle datasets create` refuses a title outside this range
# Lines the kaggle CLI prints with exit code 0 (kaggle_api_extended.py: dataset_create_new_cli,
# dataset_create_version_cli, kernels_push_cli); the kernel still runs, without the sources it names.
PRINTED_ERRORS = ("Dataset creation error: ", "Dataset version creation error: ", "Kernel push error: ")
INVALID_SOURCES = re.compile(
    r"The following are not valid (dataset|competition|kernel) sources and could not be added to the kernel: (.*)"
)
SOURCE_HINTS = {
    "dataset": "the dataset is not ready yet, or its id is not yours",
    "competition": "join the competition (accept its rules) on kaggle.com, or fix its slug",
    "kernel": "a notebook id that does not exist or that you cannot read",
}


def dataset_title(package: str, experiment: str) -> str:
    """The dataset's title within Kaggle's 6 to 50 characters: a short one ends in 'bundle'."""
    shortest, longest = TITLE_LENGTH
    title = f"{package} {experiment}"
    if len(title) < shortest:
        title = f"{title} bundle"
    return title[:longest].rstrip()


def read_dataset_id(dataset: Path, *, required: bool = False) -> str:
    """OWNER/SLUG from the bundle's dataset-metadata.json (a placeholder when it is missing and not `required`)."""
    metadata = dataset / "dataset-metadata.json"
    return read_json(metadata)["id"] if required or metadata.is_file() else "OWNER/SLUG"


def _reason(output: str) -> str:
    return " ".join(output.split())[:200]


def run_kaggle(command: list[str]) -> str:
    """Run a kaggle CLI command; its stdout and stderr. A non-zero exit or an error it prints is a ProjectError."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = f"{result.stdout}\n{result.stderr}"
    name = " ".join(command[:3])
    if result.returncode != 0:
        raise ProjectError(
            f"{name}: {_reason(result.stderr.strip() or result.stdout) or f'exit code {result.returncode}'}"
        )
    for line in output.splitlines():
        if line.strip().startswith(PRINTED_ERRORS):
            raise ProjectError(f"{name}: {_reason(line)}")
    return output


def dataset_status(dataset_id: str) -> tuple[str | None, str]:
    """(the status word, or None when the CLI failed, e.g. no such dataset; what it printed)."""
    result = subprocess.run(["kaggle", "datasets", "status", dataset_id], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None, _reason(result.stderr.strip() or result.stdout) or f"exit code {result.returncode}"
    words = result.stdout.split()  # an out-of-date warning may come first; the status is printed last
    return (words[-1].lower() if words else ""), _reason(result.stdout)


def dataset_exists(dataset_id: str) -> bool:
    """Whether Kaggle has the dataset (`kaggle datasets status` fails on one it does not have)."""
    if shutil.which("kaggle") is None:
        raise ProjectError("export --push: the kaggle CLI is not installed (pip install kaggle) or not on PATH")
    return dataset_status(dataset_id)[0] is not None


def wait_until_ready(
    dataset_id: str,
    *,
    new_version: bool,
    then: str,
    timeout_minutes: float | None = None,
    poll_seconds: float | None = None,
) -> str:
    """Poll `kaggle datasets status` until Kaggle has processed the upload; how long it took. `then` is the command
    the error lines give for the step left undone.

    The status takes no version number and Kaggle does not document which version it describes right after
    `datasets version`: "ready" then counts as the new version's only once a processing word was seen since the
    upload, or after "ready" alone for VERSION_SETTLE_SECONDS (a small version may be processed before the first
    poll; a status that still describes the old version would have turned to processing by then)."""
    timeout = 60 * (READY_TIMEOUT_MINUTES if timeout_minutes is None else timeout_minutes)
    pause = POLL_SECONDS if poll_seconds is None else poll_seconds
    started = time.monotonic()
    processing_seen, ready_since, failures, status = not new_version, None, 0, ""
    while True:
        word, printed = dataset_status(dataset_id)
        now = time.monotonic()
        failures = 0 if word is not None else failures + 1
        if failures > STATUS_RETRIES:
            raise ProjectError(
                f"kaggle datasets status {dataset_id}: {printed}; the notebook was not pushed: once it prints ready, "
                f"run: {then}"
            )
        status = word or status
        if status in FAILED:
            raise ProjectError(
                f"kaggle datasets status {dataset_id}: Kaggle could not process the upload ({status}); see "
                f"https://www.kaggle.com/datasets/{dataset_id}; the notebook was not pushed"
            )
        if status == READY:
            ready_since = now if ready_since is None else ready_since
            if processing_seen or now - ready_since >= VERSION_SETTLE_SECONDS or now - started >= timeout:
                return f"ready after {now - started:.0f} s"
        elif word:
            processing_seen, ready_since = True, None
        if now - started >= timeout:
            raise ProjectError(
                f"kaggle datasets status {dataset_id}: still {status or 'unknown'!r} after {timeout / 60:g} min; "
                f"the notebook was not pushed: once it prints ready, run: {then}"
            )
        time.sleep(pause)


def check_kernel_push(output: str, metadata: Path) -> None:
    """`kaggle kernels push` exits 0 when Kaggle refused some of the notebook's data sources: the notebook then runs
    without them. The first refused kind becomes a ProjectError naming the sources."""
    found = INVALID_SOURCES.search(output)
    if found is None:
        return
    kind, names = found.groups()
    try:
        names = ", ".join(ast.literal_eval(names.strip()))  # the CLI prints a Python list: ['owner/slug']
    except (ValueError, SyntaxError, TypeError):
        names = names.strip()
    raise ProjectError(
        f'kaggle kernels push: Kaggle did not attach the {kind} source {names} ("not valid {kind} sources"), so '
        f"the pushed notebook runs without it: {SOURCE_HINTS[kind]}; check {kind}_sources in {metadata}"
    )


def push_when_ready(
    dataset_id: str,
    upload: list[str],
    push_notebook: list[str],
    kernel_metadata: Path,
    *,
    new_version: bool,
    timeout_minutes: float | None = None,
    poll_seconds: float | None = None,
) -> list[str]:
    """Run `upload` (datasets create or version), wait until the dataset is ready, run `push_notebook` and check
    that Kaggle attached every source; what was done, for the CLI to print."""
    run_kaggle(upload)
    ready = wait_until_ready(
        dataset_id,
        new_version=new_version,
        then=shlex.join(push_notebook),
        timeout_minutes=timeout_minutes,
        poll_seconds=poll_seconds,
    )
    check_kernel_push(run_kaggle(push_notebook), kernel_metadata)
    return [" ".join(upload[:3]), f"kaggle datasets status {dataset_id}: {ready}", " ".join(push_notebook[:3])]
