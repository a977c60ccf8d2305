"""lenet.inference.export: `lenet export --format onnx`, and its files run by ONNX Runtime
(`Predictor.from_onnx`, `lenet predict --backend onnxruntime`)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from lenet import cli


@pytest.fixture(scope="module")
def onnx_file(run_dir):
    """`lenet export RUN_DIR` writes RUN_DIR/model.onnx by default."""
    assert cli.main(["export", str(run_dir), "--format", "onnx"]) == 0
    out = run_dir / "model.onnx"
    assert out.is_file()
    return out


def test_onnx_file_is_valid_with_metadata_and_dynamic_batch(onnx_file, run_dir):
    from lenet.models import weights

    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    _, meta = weights.read(run_dir)
    assert props["lenet.model"] == "lenet5"
    assert json.loads(props["lenet.classes"]) == [str(i) for i in range(10)]
    assert json.loads(props["lenet.preprocessing"]) == meta.preprocessing.to_dict()
    assert json.loads(props["lenet.test_accuracy"]) == meta.test_accuracy
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # symbolic: any batch size
    assert not list(onnx_file.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_onnxruntime_agrees_with_torch_on_1000_digits(onnx_file, run_dir, mnist_test):
    from lenet.inference.predict import Predictor

    images, _ = mnist_test
    torch_pred = Predictor.load(run_dir)
    x = torch_pred.preprocessing(__import__("torch").from_numpy(images[:1000])).numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ort_scores = session.run(None, {name: x})[0]
    one = session.run(None, {name: x[:1]})[0]  # dynamic batch: 1 and 1000 both run
    torch_scores = torch_pred.scores(images[:1000])
    diff = float(np.abs(ort_scores - torch_scores).max())
    print(f"max |onnxruntime - torch| over 1000 digits: {diff:.2e}")
    assert ort_scores.shape == (1000, 10) and one.shape == (1, 10)
    assert np.array_equal(ort_scores.argmax(1), torch_scores.argmax(1))
    assert diff <= 1e-4
    # The same through lenet's own loader of the exported file.
    via_file = Predictor.load(onnx_file, backend="onnxruntime").scores(images[:1000])
    assert np.abs(via_file - torch_scores).max() <= 1e-4


def test_predict_backend_onnxruntime_matches_torch(onnx_file, run_dir, tmp_path, capsys,
                                                   mnist_test):
    from PIL import Image

    images, _ = mnist_test
    for i in range(8):
        Image.fromarray(255 - images[i]).resize((56, 56)).save(tmp_path / f"x{i}.png")
    outs = []
    for args in ([str(run_dir)], [str(run_dir), "--backend", "onnxruntime"],
                 [str(onnx_file)]):  # a .onnx file runs on onnxruntime by default
        assert cli.main(["predict", args[0], str(tmp_path), "--json", *args[1:]]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert len(outs) == 3
    for other in outs[1:]:
        assert [r["digit"] for r in other] == [r["digit"] for r in outs[0]]
        assert np.allclose([r["confidence"] for r in other],
                           [r["confidence"] for r in outs[0]], atol=1e-4)


def test_onnx_file_with_torch_backend_and_bad_onnx_file(onnx_file, tmp_path, capsys):
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    assert cli.main(["predict", str(onnx_file), str(img), "--backend", "torch"]) == 2
    assert "--backend onnxruntime" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not protobuf")
    assert cli.main(["predict", str(bad), str(img)]) == 2
    err = capsys.readouterr().err
    assert "bad.onnx: not a valid ONNX file" in err and "Traceback" not in err


def test_from_onnx_reads_the_metadata_and_refuses_foreign_files(onnx_file, run_dir, tmp_path):
    from lenet.inference.export import ExportError
    from lenet.inference.predict import Predictor

    pred = Predictor.from_onnx(onnx_file)
    torch_pred = Predictor.load(run_dir)
    assert pred.backend == "onnxruntime" and pred.model is None
    assert (pred.model_name, pred.classes, pred.dataset, pred.test_accuracy) == (
        torch_pred.model_name, torch_pred.classes, torch_pred.dataset, torch_pred.test_accuracy)
    assert pred.preprocessing.to_dict() == torch_pred.preprocessing.to_dict()
    with pytest.raises(ExportError, match="no such ONNX file"):
        Predictor.from_onnx(tmp_path / "missing.onnx")
    plain = onnx.load(str(onnx_file))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    with pytest.raises(ExportError, match="ONNX file without lenet metadata"):
        Predictor.from_onnx(tmp_path / "plain.onnx")


# The output is checked before the export: a bad place fails at once, nothing is loaded.
@pytest.fixture
def no_loading(monkeypatch):
    from lenet.models import weights

    def fail(*args, **kwargs):
        pytest.fail("the weights were loaded before the output was checked")

    monkeypatch.setattr(weights, "load_model", fail)


def test_export_refuses_a_directory_as_output_before_loading(tmp_path, no_loading):
    from lenet.errors import OutputError
    from lenet.inference.export import export_onnx

    with pytest.raises(OutputError, match=r"^cannot write .*: it is a directory"):
        export_onnx(tmp_path / "weights.safetensors", tmp_path)


def test_export_checks_the_default_output_next_to_the_weights(tmp_path, no_loading,
                                                              monkeypatch):
    import errno
    import os
    import tempfile

    from lenet.errors import OutputError
    from lenet.inference.export import export_onnx

    (tmp_path / "w.safetensors").write_bytes(b"never read")

    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", erofs)
    with pytest.raises(OutputError) as e:
        export_onnx(tmp_path / "w.safetensors")
    assert str(e.value) == (f"cannot write {tmp_path / 'w.onnx'}: {tmp_path} is not writable "
                            f"({os.strerror(errno.EROFS)}); choose another path with --out")
