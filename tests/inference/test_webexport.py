"""lenet.inference.webexport: a model as operations for the page's JavaScript forward pass, checked
against the model itself and against what /api/activations reports, and the static site."""

from __future__ import annotations

import base64
import json
import struct

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lenet import cli
from lenet.analysis.activations import layer_activations
from lenet.data.transforms import Preprocessing
from lenet.errors import LenetError, OutputError
from lenet.inference.webexport import (
    MODEL_FILE,
    READER_FILE,
    WebExportError,
    default_out,
    describe,
    describe_reader,
    export_web,
    run_description,
    run_line_description,
)
from lenet.models import create, readers, weights
from lenet.models.registry import get_spec
from lenet.models.sdnn import SDNN
from lenet.storage import atomic

FAMILIES = ["lenet5", "lenet5-tanh", "lenet5-sigmoid", "lenet5-1998", "mlp"]


def _model(name: str):
    torch.manual_seed(0)
    meta = weights.WeightsMeta(name, get_spec(name).preprocessing, "mnist",
                               [str(i) for i in range(10)])
    return create(name).eval(), meta


def _digits(n: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return (torch.rand(n, 28, 28, generator=gen) * 255).round().to(torch.uint8)


@pytest.mark.parametrize("name", FAMILIES)
def test_description_gives_the_models_scores(name):
    model, meta = _model(name)
    doc, blob = describe(model, meta)
    assert len(blob) == 4 * doc["weights"]
    x = meta.preprocessing(_digits())
    with torch.inference_mode():
        want = model(x)
    got = run_description(doc, blob, x)
    assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_layers_are_the_ones_the_server_reports(name):
    model, meta = _model(name)
    doc, _ = describe(model, meta)
    acts = layer_activations(model, meta.preprocessing(_digits(1))).to_dict()
    got = [(la["name"], la["kind"], la["shape"], la["reads"]) for la in doc["layers"]]
    assert got == [(la["name"], la["kind"], la["shape"], la["reads"]) for la in acts["layers"]]
    # Each layer is written by its last operation; the input by none.
    written = {op["layer"] for op in doc["ops"] if op["layer"] is not None}
    assert written == set(range(1, len(doc["layers"])))
    if name == "lenet5-1998":
        assert doc["rbf"] == {k: acts["rbf"][k] for k in ("codes", "shape", "features")}
        c3 = next(la for la in doc["layers"] if la["name"] == "c3")
        assert c3["reads"]["sparse"] and sum(map(len, c3["reads"]["table"])) == 60
    else:
        assert doc["rbf"] is None


class _Functional(nn.Module):
    """ReLU applied as a function: invisible to module hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(784, 16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x.flatten(1))))


def _meta(prep: Preprocessing | None = None):
    return weights.WeightsMeta("custom", prep or Preprocessing(0.5, 0.5), "mnist",
                               [str(i) for i in range(10)])


def test_a_function_outside_the_modules_is_refused_not_lost():
    torch.manual_seed(0)
    with pytest.raises(WebExportError, match="do not give its output"):
        describe(_Functional().eval(), _meta())


def test_a_layer_it_cannot_run_is_named():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                          nn.Linear(4 * 26 * 26, 10)).eval()
    with pytest.raises(WebExportError, match="layer BatchNorm2d: the web page cannot run it"):
        describe(model, _meta())


def test_a_preprocessing_it_cannot_do_is_refused():
    model, _ = _model("mlp")
    with pytest.raises(WebExportError, match="resize or deslant"):
        describe(model, _meta(Preprocessing(0.5, 0.5, resize=16)))


def _model_js(folder) -> tuple[dict, bytes]:
    text = (folder / MODEL_FILE).read_text()
    prefix = "window.LENET_MODEL = "
    line = next(s for s in text.splitlines() if s.startswith(prefix))
    doc = json.loads(line[len(prefix):].rstrip(";"))
    return doc, base64.b64decode(doc["weights_base64"])


def test_export_web_writes_a_site_that_needs_no_server(tmp_path):
    folder = export_web("lenet5-1998", tmp_path / "site", reader=None)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [".lenet-export.json", "app.js", "favicon.svg", "forward.js", "index.html",
                     "layers.js", "mnist.js", "model.js", "number.js", "pen.js", "read.js",
                     "style.css"]  # + what it wrote
    # Readable by a web server (what open() would give), not left at a temp file's 0600.
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK for p in folder.iterdir())
    html = (folder / "index.html").read_text()
    assert "/static/" not in html and '<script src="model.js"></script>' in html
    assert html.index("model.js") < html.index("forward.js") < html.index("app.js")
    doc, blob = _model_js(folder)
    assert doc["model"] == "lenet5-1998" and len(blob) == 4 * doc["weights"]
    model, meta = weights.load_model("lenet5-1998")
    x = meta.preprocessing(_digits())
    first = doc["ops"][0]["weight"]
    n = first["shape"][0] * first["shape"][1] * first["shape"][2] * first["shape"][3]
    assert struct.unpack_from(f"<{n}f", blob, 4 * first["offset"]) == \
        tuple(model.c1.weight.detach().flatten().tolist())
    with torch.inference_mode():
        assert torch.allclose(run_description(doc, blob, x), model(x), atol=1e-4)


def test_cli_writes_the_site_and_refuses_a_file_as_folder(tmp_path, capsys):
    out = tmp_path / "web"
    assert cli.main(["export", "--weights", "lenet5", "--format", "web", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}/index.html")
    assert (out / "model.js").is_file()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["export", "lenet5", "--format", "web", "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "it exists and is not a directory" in err
    with pytest.raises(OutputError):
        export_web("lenet5", blocker)


def test_default_folder(tmp_path):
    assert str(default_out("lenet5")) == "lenet5-web"
    path = weights.save(tmp_path / "run" / "model.safetensors", *_model("mlp"))
    assert default_out(path) == tmp_path / "run" / "model-web"
    with pytest.raises(LenetError):
        export_web(tmp_path / "absent.safetensors", tmp_path / "out")


# --------------------------------------------------------------------------- the number reader
def _script_doc(path) -> tuple[dict, bytes]:
    text = path.read_text()
    doc = json.loads(text[text.index("= ") + 2:].rstrip().rstrip(";"))
    return doc, base64.b64decode(doc.pop("weights_base64"))


def _reader_file(tmp_path) -> str:
    torch.manual_seed(0)
    model, meta = SDNN(), readers.reader_meta(0.25, {"margin": 12})
    return str(readers.publish(model, meta, "test-reader", tmp_path / "readers"))


def test_a_site_that_reads_numbers(tmp_path):
    path = _reader_file(tmp_path)
    folder = export_web("lenet5", tmp_path / "site", reader=path)
    html = (folder / "index.html").read_text()
    assert html.index(READER_FILE) < html.index("forward.js") < html.index("number.js")
    assert "window.LENET_READER = " in (folder / READER_FILE).read_text()
    doc, blob = _script_doc(folder / READER_FILE)
    model, meta = readers.load_reader(path)
    assert (doc["reject"], doc["margin"], doc["stride"], doc["centre0"]) == \
        (0.25, 12, 4, model.centre(0))
    assert doc["classes"] == meta.classes and len(blob) == 4 * doc["weights"]
    x = meta.preprocessing((torch.rand(2, 28, 75, generator=torch.Generator().manual_seed(2))
                            * 255).round().to(torch.uint8))
    with torch.inference_mode():
        assert torch.allclose(run_line_description(doc, blob, x), model(x), atol=1e-4)


@pytest.mark.parametrize("margin", [12, 0])
def test_reader_description_gives_the_sdnns_scores_at_any_width(margin):
    torch.manual_seed(0)
    model, meta = SDNN(margin=margin).eval(), readers.reader_meta(0.5, {})
    doc, blob = describe_reader(model, meta, {"margin": margin})
    assert [op["op"] for op in doc["ops"]][:2] == (["pad", "conv"] if margin else ["conv", "act"])
    gen = torch.Generator().manual_seed(2)
    for width in (28, 75, 300):
        x = meta.preprocessing((torch.rand(2, 28, width, generator=gen) * 255).round()
                               .to(torch.uint8))
        with torch.inference_mode():
            want = model(x)
        assert torch.allclose(run_line_description(doc, blob, x), want, atol=1e-4), width


def test_describe_reader_refuses_what_the_page_cannot_run():
    meta = readers.reader_meta(0.5, {})
    model, _ = _model("lenet5")
    with pytest.raises(WebExportError, match="only with an SDNN"):
        describe_reader(model, meta, {})
    padded = weights.WeightsMeta("sdnn", Preprocessing(0.5, 0.5, pad=2), "mnist", meta.classes)
    with pytest.raises(WebExportError, match="preprocessing"):
        describe_reader(SDNN(), padded, {})

    class Shifted(SDNN):  # something outside the layers the description knows
        def forward(self, x):
            return super().forward(x) + 1.0

    with pytest.raises(WebExportError, match="do not give its output"):
        describe_reader(Shifted(), meta, {})


def test_the_default_site_reads_numbers_where_a_reader_is_bundled(tmp_path):
    folder = export_web("lenet5", tmp_path / "site")
    bundled = readers.is_reader_name(readers.DEFAULT_READER)
    assert (folder / READER_FILE).is_file() == bundled
    assert (READER_FILE in (folder / "index.html").read_text()) == bundled
