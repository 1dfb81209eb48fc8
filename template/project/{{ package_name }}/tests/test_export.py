"""Code-competition export: the notebook's code, run offline in a stand-in of the Kaggle image (its recorded
package versions, nothing from this environment's site) under a simulated /kaggle, installs from the bundle alone
and writes the same submission as local predict + submit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ..cli import app
from ..config import load_config
from ..core.errors import ProjectError
from ..core.runs import RunPaths
from ..export import export, push
from .conftest import PACKAGE, PROJECT_ROOT, TASK, WRITERS, task_overrides
from .image_environment import (
    copy_environment,
    image_environment,
    manifest_for_this_python,
    manifest_of_this_environment,
)


@pytest.fixture
def trained(tmp_path: Path) -> tuple[list[str], RunPaths]:
    """A trained run; its export takes this environment for the image (no wheel to fetch) unless told otherwise."""
    WRITERS[TASK](tmp_path / "data")
    overrides = task_overrides(tmp_path / "data", tmp_path / "outputs")
    result = CliRunner().invoke(app, ["run", *overrides, "--skip-check"])
    assert result.exit_code == 0, result.output
    here = manifest_of_this_environment(tmp_path / "here.txt")
    return [*overrides, f"export.image_manifest={here}"], RunPaths.from_config(load_config(overrides))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a stand-in for the Kaggle image, the recorded manifest with this interpreter's Python): built once."""
    root = tmp_path_factory.mktemp("image")
    manifest = manifest_for_this_python(PROJECT_ROOT / "configs" / "kaggle_image.txt", root / "kaggle_image.txt")
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    requirements = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return image_environment(manifest, requirements, root / "venv"), manifest


def run_notebook(
    tmp_path: Path, export_dir: Path, data_root: Path, competition: str, environment: Path, cells: int | None = None
) -> subprocess.CompletedProcess:
    """The exported notebook's code cells (the first `cells`, or all) run as one script, offline, in a copy of the
    stand-in image, with the bundle and the competition's files under a simulated /kaggle/input."""
    root = tmp_path / "kaggle-root"
    meta = json.loads((export_dir / "notebook" / "kernel-metadata.json").read_text())
    shutil.copytree(export_dir / "dataset", root / "kaggle" / "input" / meta["dataset_sources"][0].split("/")[1])
    shutil.copytree(data_root, root / "kaggle" / "input" / competition)
    (root / "kaggle" / "working").mkdir(parents=True)
    python = copy_environment(environment, tmp_path / "venv")
    source = json.loads((export_dir / "notebook" / "inference.ipynb").read_text())["cells"][:cells]
    code = "\n".join("".join(cell["source"]) for cell in source)
    env = {**os.environ, "KAGGLE_ROOT": str(root), "PYTHONNOUSERSITE": "1", "PIP_NO_INDEX": "1"}
    return subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)


def notebook_submission(tmp_path: Path, export_dir: Path, data_root: Path, environment: Path) -> pd.DataFrame:
    ran = run_notebook(tmp_path, export_dir, data_root, "tiny-comp", environment)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    return pd.read_csv(tmp_path / "kaggle-root" / "kaggle" / "working" / "submission.csv", keep_default_na=False)


def test_an_exported_seed_blend_reproduces_the_local_submission_in_the_image_and_a_missing_wheel_fails_its_first_cell(
    tmp_path: Path, image, monkeypatch
) -> None:
    """Export a seed blend against the recorded Kaggle image (this interpreter's Python): the bundle holds the members,
    the blend's weights (and detection's fusion thresholds) and a wheel of every package the image lacks or has at a
    version the project refuses, each with its reason; in a stand-in of the image, offline, the notebook installs
    them with their dependencies and writes the local submission exactly. Without one of those wheels the first cell
    stops with one line naming the package."""
    environment, manifest = image
    data_root = tmp_path / "data"
    WRITERS[TASK](data_root)
    overrides = [*task_overrides(data_root, tmp_path / "outputs"), "seeds=[0,1]", "ensemble.weights=greedy"]
    assert CliRunner().invoke(app, ["run", *overrides, "--skip-check"]).exit_code == 0
    settings = [
        *overrides,
        "export.fp16=false",
        "export.competition=tiny-comp",
        "export.user=tester",
        f"export.dest={tmp_path / 'export'}",
        "export.time_limit_hours=0.000001",
    ]
    monkeypatch.chdir(PROJECT_ROOT)
    result = CliRunner().invoke(app, ["export", *settings, "--image-manifest", str(manifest)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "iterative-stratification==" in output and "MiB not on the image" in output  # a wheel and its reason
    assert "image has 4.13.0.92, the project needs ==5.0.0.93" in output  # opencv: on the image, refused
    assert "s per test image" in output and "past the 1e-06 h limit" in output  # the projection warns
    assert f"kaggle datasets create -p {tmp_path / 'export' / 'dataset'} --dir-mode zip" in result.output
    dataset, notebook = tmp_path / "export" / "dataset", tmp_path / "export" / "notebook"
    runs = sorted(p.name for p in (dataset / "runs").iterdir())
    assert runs == ["baseline-seed0", "baseline-seed1"]  # the members; the notebook blends them
    wheels = sorted(p.name for p in (dataset / "wheels").glob("*.whl"))
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert any(name.startswith("opencv_python_headless-5.0.0.93-") and "manylinux" in name for name in wheels)
    assert not any(name.startswith(("numpy-", "timm-", "pandas-")) for name in wheels)  # the image has them
    assert all(tag in name or "abi3" in name or "-none-any" in name for name in wheels), wheels
    project_wheel = next(dataset / "wheels" / name for name in wheels if name.startswith(f"{PACKAGE}-"))
    with zipfile.ZipFile(project_wheel) as bundle:
        packaged = bundle.namelist()
    assert f"{PACKAGE}/cli.py" in packaged and not any(f"{PACKAGE}/tests/" in name for name in packaged)
    meta = json.loads((notebook / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["dataset_sources"] == [
        f"tester/{PACKAGE.replace('_', '-')}-baseline"
    ]
    assert meta["competition_sources"] == ["tiny-comp"]
    offline = notebook_submission(tmp_path / "image", tmp_path / "export", data_root, environment)
    local = pd.read_csv(tmp_path / "outputs" / "baseline" / "submissions" / "submission.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(offline, local)  # same weights, same code: the same submission, exactly

    (dataset / "wheels" / next(w for w in wheels if w.startswith("iterative_stratification-"))).unlink()
    first = run_notebook(tmp_path / "missing", tmp_path / "export", data_root, "tiny-comp", environment, cells=2)
    assert first.returncode == 1
    assert first.stderr.strip().splitlines()[-1].startswith("installing from the bundle failed: ")
    assert "iterative-stratification" in first.stderr.strip().splitlines()[-1]


def test_fp16_checkpoints_halve_the_size_and_keep_predictions(tmp_path: Path, trained, monkeypatch) -> None:
    overrides, paths = trained
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    bundle = export(load_config([*overrides, f"export.dest={tmp_path / 'e'}", "export.wheels=[]"]), PROJECT_ROOT)
    fold = paths.checkpoint(0, "best")
    half = torch.load(bundle.dataset / "runs" / "baseline" / "fold_0" / "best.pt", weights_only=True)["model"]
    full = torch.load(fold, weights_only=True)["model"]
    assert all(half[k].dtype == torch.float16 for k, v in full.items() if v.is_floating_point())
    assert all(
        torch.allclose(half[k].float(), v, atol=1e-2, rtol=1e-3) for k, v in full.items() if v.is_floating_point()
    )
    assert (bundle.dataset / "runs" / "baseline" / "fold_0" / "best.pt").stat().st_size < 0.6 * fold.stat().st_size
    assert any("no Kaggle user" in warning for warning in bundle.warnings)
    # A notebook the user edited is not replaced by the next export, unless asked to.
    settings = load_config([*overrides, f"export.dest={tmp_path / 'e'}", "export.wheels=[]"])
    export(settings, PROJECT_ROOT)  # unedited: replaced
    notebook = bundle.notebook / "inference.ipynb"
    notebook.write_text(notebook.read_text().replace("submission.csv", "submission_v2.csv"))
    with pytest.raises(ProjectError, match=r"inference\.ipynb was edited since `export` wrote it; .* --force"):
        export(settings, PROJECT_ROOT)
    assert "submission_v2.csv" in notebook.read_text()
    export(settings, PROJECT_ROOT, force=True)
    assert "submission_v2.csv" not in notebook.read_text()


def test_export_needs_a_timed_predict_and_push_needs_the_cli(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ProjectError, match="no timed `predict` of this run; run `predict` first"):
        export(load_config([f"output_dir={tmp_path}"]))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    bundle_dir = tmp_path / "b"
    (bundle_dir / "dataset").mkdir(parents=True)
    (bundle_dir / "dataset" / "dataset-metadata.json").write_text('{"id": "u/d"}')
    from ..export import Bundle

    with pytest.raises(ProjectError, match="the kaggle CLI is not installed"):
        push(Bundle(bundle_dir / "dataset", bundle_dir / "notebook"), "m")


def test_export_without_push_prints_the_upload_commands_with_dir_mode_zip(tmp_path: Path, monkeypatch) -> None:
    """A hand upload without --dir-mode zip leaves out runs/, wheels/ and configs/: export prints the commands to
    type, with the bundle's real paths (quoted where they hold a space)."""
    import shlex

    from .. import export as export_module
    from ..export import Bundle

    folder = tmp_path / "my exports"
    bundle = Bundle(folder / "dataset", folder / "notebook", files={"dataset/wheels/a.whl": 2**20})
    monkeypatch.setattr(export_module, "export", lambda settings, force, image_manifest: bundle)
    result = CliRunner().invoke(app, ["export", f"output_dir={tmp_path}", "model.pretrained=false", "--message", "v 2"])
    assert result.exit_code == 0, result.output
    dataset, notebook = shlex.quote(str(bundle.dataset)), shlex.quote(str(bundle.notebook))
    lines = [line.strip() for line in result.output.splitlines()]
    assert f"kaggle datasets create -p {dataset} --dir-mode zip" in lines
    assert f"(a later export: kaggle datasets version -p {dataset} -m 'v 2' --dir-mode zip)" in lines
    assert f"kaggle kernels push -p {notebook}" in lines


def test_onnx_export_matches_pytorch_or_says_which_tasks_it_covers(tmp_path: Path, trained) -> None:
    overrides, _ = trained
    result = CliRunner().invoke(app, ["export", *overrides, f"export.dest={tmp_path / 'e'}", "--format", "onnx"])
    if TASK == "detection":  # torchvision detectors' post-processing does not export cleanly: said in one line
        assert result.exit_code != 0 and "covers classification and segmentation models, not detection" in result.output
        return
    assert result.exit_code == 0, result.output
    import numpy as np
    import onnxruntime

    spec = json.loads((tmp_path / "e" / "onnx" / "onnx.json").read_text())
    assert set(spec["folds"]) == {"fold_0.onnx", "fold_1.onnx"}
    assert all(fold["max_difference"] < 1e-4 for fold in spec["folds"].values())
    session = onnxruntime.InferenceSession(str(tmp_path / "e" / "onnx" / "fold_0.onnx"))
    size = spec["input"]["size"]
    single = np.full((1, spec["input"]["channels"], size, size), 128, dtype=np.float32)  # another batch size
    probabilities = session.run(None, {"images": single})[0]
    assert probabilities.shape[:2] == (1, len(spec["output"]["classes"]) + (TASK == "segmentation"))
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)  # softmax over classes (and background) inside
    assert result.output.count("max |difference|") == 2


# A `kaggle` executable that behaves like the real CLI (kaggle_api_extended.py): Kaggle processes an upload
# asynchronously (here: `datasets status` answers `processing` words for the calls after create/version, after
# `stale` answers of "ready" that still describe the previous version), errors and refused sources are printed
# with exit code 0, and `kernels push` attaches the newest version that is ready, or warns when there is none.
FAKE_KAGGLE = """
import json, pathlib, sys
args = sys.argv[1:]
open(CALLS, 'a').write(' '.join(args) + '\\n')
behaviour = json.loads(pathlib.Path(BEHAVIOUR).read_text())
state_file = pathlib.Path(STATE)
state = json.loads(state_file.read_text()) if state_file.is_file() else {'versions': 0, 'answers': [], 'attached': 0}
final = behaviour.get('final', 'ready')
if args[:2] == ['datasets', 'status']:
    if not state['versions']:
        sys.exit('404 Client Error: Not Found for url: https://www.kaggle.com/api/v1/datasets/status/' + args[2])
    print(state['answers'].pop(0) if state['answers'] else final, end='')  # one word, no newline
elif args[:2] in (['datasets', 'create'], ['datasets', 'version']):
    dataset = json.loads((pathlib.Path(args[3]) / 'dataset-metadata.json').read_text())
    if args[1] == 'create' and (state['versions'] or behaviour.get('title_taken')):
        print(f'Dataset creation error: The requested title "{dataset["title"]}" is already in use by a dataset. '
              'Please choose another title.')
        sys.exit(0)
    state['versions'] += 1
    state['answers'] = ['ready'] * behaviour.get('stale', 0) * (args[1] == 'version') + behaviour['processing']
    print('Your private Dataset is being created. Please check progress at https://www.kaggle.com/' + dataset['id'])
elif args[:2] == ['kernels', 'push']:
    kernel = json.loads((pathlib.Path(args[3]) / 'kernel-metadata.json').read_text())
    ready = state['versions'] - (1 if state['answers'] or final != 'ready' else 0)
    invalid = [source for source in kernel['dataset_sources'] if source != DATASET or not ready]
    if invalid:
        print('The following are not valid dataset sources and could not be added to the kernel: ' + str(invalid))
    competitions = [c for c in kernel['competition_sources'] if c not in behaviour.get('joined', [])]
    if competitions:
        print('The following are not valid competition sources and could not be added to the kernel: '
              + str(competitions))
    state['attached'] = 0 if invalid else ready
    print('Kernel version 1 successfully pushed.  Please check progress at https://www.kaggle.com/code/' + kernel['id'])
state_file.write_text(json.dumps(state))
"""
DATASET_ID = "tester/ab-x-bundle"


def fake_kaggle(tmp_path: Path, monkeypatch, **behaviour: object) -> tuple[Path, Path, Path]:
    """The fake on PATH; (its calls, one line each; its behaviour, JSON the test may rewrite; its state)."""
    calls, behaviour_file, state = tmp_path / "calls.txt", tmp_path / "behaviour.json", tmp_path / "state.json"
    behaviour_file.write_text(json.dumps({"processing": ["pending", "running"], **behaviour}))
    script = tmp_path / "bin" / "kaggle"
    script.parent.mkdir()
    names = {"CALLS": calls, "BEHAVIOUR": behaviour_file, "STATE": state, "DATASET": DATASET_ID}
    constants = "".join(f"{name} = {str(value)!r}\n" for name, value in names.items())
    script.write_text(f"#!{sys.executable}\n{constants}{FAKE_KAGGLE}")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return calls, behaviour_file, state


def push_bundle(tmp_path: Path, dataset_sources: tuple[str, ...] = (DATASET_ID,)):
    """A bundle's two metadata files, as export writes them (no checkpoints: the fake uploads nothing)."""
    from ..export import Bundle

    bundle = Bundle(tmp_path / "export" / "dataset", tmp_path / "export" / "notebook")
    bundle.dataset.mkdir(parents=True)
    bundle.notebook.mkdir()
    (bundle.dataset / "dataset-metadata.json").write_text(json.dumps({"title": "ab x bundle", "id": DATASET_ID}))
    kernel = {
        "id": f"{DATASET_ID}-inference",
        "dataset_sources": list(dataset_sources),
        "competition_sources": ["tiny-comp"],
    }
    (bundle.notebook / "kernel-metadata.json").write_text(json.dumps(kernel))
    return bundle


def test_push_waits_until_kaggle_has_processed_the_dataset_then_pushes_the_notebook(tmp_path: Path, monkeypatch):
    import re

    from ..core import kaggle_cli

    calls, behaviour, state = fake_kaggle(tmp_path, monkeypatch, joined=["tiny-comp"])
    bundle = push_bundle(tmp_path)
    status, upload = f"datasets status {DATASET_ID}", f"-p {bundle.dataset} --dir-mode zip"
    done = push(bundle, "first", poll_seconds=0)
    assert calls.read_text().splitlines() == [
        status,
        f"datasets create {upload}",
        status,
        status,
        status,
        f"kernels push -p {bundle.notebook}",
    ]
    assert [done[0], done[2]] == ["kaggle datasets create", "kaggle kernels push"]
    assert re.fullmatch(rf"kaggle datasets status {DATASET_ID}: ready after \d+ s", done[1])
    assert json.loads(state.read_text())["attached"] == 1
    # Right after `version` the status still says ready (the previous version's) twice: push waits for the
    # processing of the new one to show and end, and the notebook gets version 2.
    behaviour.write_text(json.dumps({"processing": ["running"], "stale": 2, "joined": ["tiny-comp"]}))
    calls.unlink()
    push(bundle, "second", poll_seconds=0)
    assert calls.read_text().splitlines() == [
        status,
        f"datasets version -p {bundle.dataset} -m second --dir-mode zip",
        status,
        status,
        status,
        status,
        f"kernels push -p {bundle.notebook}",
    ]
    assert json.loads(state.read_text())["attached"] == 2
    # A version processed before the first poll: "ready" alone counts once it held for VERSION_SETTLE_SECONDS.
    behaviour.write_text(json.dumps({"processing": [], "joined": ["tiny-comp"]}))
    monkeypatch.setattr(kaggle_cli, "VERSION_SETTLE_SECONDS", 0.0)
    calls.unlink()
    push(bundle, "third", poll_seconds=0)
    assert [line.split(" -")[0] for line in calls.read_text().splitlines()] == [
        status,
        "datasets version",
        status,
        "kernels push",
    ]
    assert json.loads(state.read_text())["attached"] == 3


def test_push_reports_the_sources_kaggle_did_not_attach_although_the_cli_exits_0(tmp_path: Path, monkeypatch):
    """Pushed before the dataset is ready (as push did before it waited), the notebook gets no dataset: the CLI says
    so with exit code 0; push stops in one line naming the source. So for a competition not joined."""
    from ..core import kaggle_cli

    calls, _, _ = fake_kaggle(tmp_path, monkeypatch, joined=["tiny-comp"])
    monkeypatch.setattr(kaggle_cli, "wait_until_ready", lambda *args, **kwargs: "not waited")
    with pytest.raises(ProjectError) as error:
        push(push_bundle(tmp_path), "m")
    assert str(error.value) == (
        f'kaggle kernels push: Kaggle did not attach the dataset source {DATASET_ID} ("not valid dataset sources"), '
        "so the pushed notebook runs without it: the dataset is not ready yet, or its id is not yours; check "
        f"dataset_sources in {tmp_path / 'export' / 'notebook' / 'kernel-metadata.json'}"
    )
    assert calls.read_text().splitlines()[-1].startswith("kernels push")  # it ran, and exited 0
    monkeypatch.undo()
    shutil.rmtree(tmp_path / "bin")
    (tmp_path / "state.json").unlink()
    fake_kaggle(tmp_path, monkeypatch)  # tiny-comp's rules not accepted
    with pytest.raises(ProjectError, match=r"competition source tiny-comp .*join the competition") as error:
        push(push_bundle(tmp_path / "again"), "m", poll_seconds=0)
    assert "\n" not in str(error.value)


def test_push_stops_in_one_line_when_kaggle_fails_or_takes_too_long(tmp_path: Path, monkeypatch) -> None:
    calls, behaviour, state = fake_kaggle(tmp_path, monkeypatch, final="failed")
    bundle = push_bundle(tmp_path)
    with pytest.raises(ProjectError) as error:
        push(bundle, "m", poll_seconds=0)
    assert str(error.value) == (
        f"kaggle datasets status {DATASET_ID}: Kaggle could not process the upload (failed); see "
        f"https://www.kaggle.com/datasets/{DATASET_ID}; the notebook was not pushed"
    )
    assert "kernels push" not in calls.read_text()
    state.unlink()
    behaviour.write_text(json.dumps({"processing": ["running"] * 10**6}))
    with pytest.raises(ProjectError) as error:
        push(bundle, "m", timeout_minutes=0.001, poll_seconds=0.01)
    assert str(error.value) == (
        f"kaggle datasets status {DATASET_ID}: still 'running' after 0.001 min; the notebook was not pushed: once it "
        f"prints ready, run: kaggle kernels push -p {bundle.notebook}"
    )
    assert "kernels push" not in calls.read_text()
    state.unlink()
    behaviour.write_text(json.dumps({"processing": [], "title_taken": True}))
    with pytest.raises(
        ProjectError, match=r'^kaggle datasets create: Dataset creation error: The requested title "ab x'
    ):
        push(bundle, "m", poll_seconds=0)  # printed with exit code 0


def test_export_push_prints_what_it_did_or_one_error_line(tmp_path: Path, monkeypatch) -> None:
    import re

    from .. import export as export_module
    from ..core import kaggle_cli

    bundle = push_bundle(tmp_path)
    monkeypatch.setattr(export_module, "export", lambda settings, **kwargs: bundle)
    monkeypatch.setattr(kaggle_cli, "POLL_SECONDS", 0.0)
    _, behaviour, _ = fake_kaggle(tmp_path, monkeypatch, joined=["tiny-comp"])
    command = ["export", f"output_dir={tmp_path}", "model.pretrained=false", "--push"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    pushed = (
        rf"pushed: kaggle datasets create, kaggle datasets status {DATASET_ID}: ready after \d+ s, kaggle kernels push"
    )
    assert re.search(pushed, " ".join(result.output.split()))
    behaviour.write_text(json.dumps({"processing": ["running"], "final": "error"}))  # kaggle < 1.7's word
    result = CliRunner().invoke(app, command)
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: kaggle datasets status {DATASET_ID}: Kaggle could not process the upload (error); "
        f"see https://www.kaggle.com/datasets/{DATASET_ID}; the notebook was not pushed"
    ]


def test_dataset_title_keeps_within_kaggles_6_to_50_characters() -> None:
    from ..core.kaggle_cli import dataset_title

    assert dataset_title("ab", "x") == "ab x bundle"  # `kaggle datasets create` refuses a title under 6 characters
    from ..export import _slug

    assert _slug(dataset_title("ab", "x")) == "ab-x-bundle"  # and a slug under 6: export makes it from the title
    assert dataset_title("cla_comp", "baseline") == "cla_comp baseline"
    assert len(dataset_title("a_long_package_name", "an-experiment-with-a-very-long-name")) == 50


@pytest.mark.skipif(TASK == "detection", reason="ONNX export covers classification and segmentation")
def test_onnx_parity_is_checked_on_other_images_and_refused_past_the_tolerance(tmp_path: Path, trained, monkeypatch):
    import numpy as np
    import onnxruntime

    overrides, _ = trained
    traced, checked = [], []
    original_export = torch.onnx.export

    def recording_export(model, args, *rest, **kwargs):
        traced.append(args[0])
        return original_export(model, args, *rest, **kwargs)

    class Recording(onnxruntime.InferenceSession):
        def run(self, names, feeds, *rest, **kwargs):
            checked.append(feeds["images"])
            return super().run(names, feeds, *rest, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", recording_export)
    monkeypatch.setattr(onnxruntime, "InferenceSession", Recording)
    command = ["export", *overrides, f"export.dest={tmp_path / 'e'}", "--format", "onnx"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "on 3 test images (not the traced batch)" in result.output and "(tolerance 0.001)" in result.output
    assert [len(batch) for batch in traced] == [2, 2] and [len(batch) for batch in checked] == [3, 3]
    assert not np.allclose(traced[0][:1].numpy(), checked[0][:1])  # random pixels traced, test images checked

    class Diverging(Recording):
        def run(self, names, feeds, *rest, **kwargs):
            return [output + 0.01 for output in super().run(names, feeds, *rest, **kwargs)]

    monkeypatch.setattr(onnxruntime, "InferenceSession", Diverging)
    result = CliRunner().invoke(app, command)
    assert result.exit_code != 0
    onnx = tmp_path / "e" / "onnx"
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {onnx / 'fold_0.onnx'}: onnxruntime differs from PyTorch")
    assert "past the tolerance 0.001; removed" in errors[0]
    assert not (onnx / "fold_0.onnx").exists() and not (onnx / "onnx.json").exists()
