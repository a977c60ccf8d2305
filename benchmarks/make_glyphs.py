"""Remake ``src/lenet/data/glyphs.safetensors``: the digits 0-9 of Debian's handwriting-style
fonts, rendered once, MNIST-style, for the font part of the real-input suite
(:mod:`lenet.data.suites`).

The suite must build on machines without these fonts, so the glyphs ship with lenet and this
script is how they were made. Each font file is pinned by its SHA-256 (the Debian package's
version is noted beside it): a different file is refused, since the suite's pinned checksums
depend on every glyph. Run it on Debian 13 (trixie) after::

    apt-get install fonts-dkg-handwriting fonts-breip fonts-humor-sans \\
        fonts-comic-neue fonts-kristi fonts-dancingscript fonts-bwht fonts-rufscript \\
        fonts-sjfonts fonts-klee fonts-yusei-magic

    .venv/bin/python benchmarks/make_glyphs.py

Each digit is drawn black on white at 160 px and made a 28x28 MNIST digit by lenet's own
preprocessing (:func:`lenet.inference.preprocess.mnist_preprocess`: ink box, longest side
20 px, centred by mass), white ink on black, uint8.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from safetensors.numpy import save

from lenet.inference.preprocess import mnist_preprocess
from lenet.storage import atomic

OUT = Path(__file__).resolve().parents[1] / "src" / "lenet" / "data" / "glyphs.safetensors"
# (Debian 13 package and version, font file, SHA-256 of the file). Not femkeklaver: its
# digits are outlines (hollow), which no pen makes.
FONTS = [
    ("fonts-dkg-handwriting 0.17-1",
     "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
     "93eb07f57b84f04fa975ebf49ecec43d9b2c85834a9b63864072c6b993efd131"),
    ("fonts-dkg-handwriting 0.17-1",
     "/usr/share/fonts/truetype/fifthhorseman/dkgBd.ttf",
     "62b88a2819923a5f0ab3944713122d0a0957a4081c0294d00c3205e225d5c3f2"),
    ("fonts-breip 1:0.5.1-3",
     "/usr/share/fonts/truetype/breip/Breip.ttf",
     "cded2aeeeb7d35baa8aa5b57df35a25836910498271d3d2eec502f6aa7033eb7"),
    ("fonts-humor-sans 1.0-4",
     "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
     "2ded6a27448c9ed30aaff177744e2bcf1e52e0aab018b2a8be64565df633318f"),
    ("fonts-comic-neue 2.51-4",
     "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf",
     "2728ee8f303e31934e62bf27b044fd7657b0613412d51f7444db1078cc3a7cb2"),
    ("fonts-comic-neue 2.51-4",
     "/usr/share/fonts/opentype/comic-neue/ComicNeue-Bold.otf",
     "0637fea8f858cd1d9a6e0ff786bed3d8cc2dc59b871a28e268a5a0106f052a92"),
    ("fonts-kristi 20101220-1",
     "/usr/share/fonts/truetype/kristi/Kristi.ttf",
     "6c14164cd50b52d03d88728971285fe1dbf0d6ee8af6d29274b5d5026a0fb622"),
    ("fonts-dancingscript 1.2-2",
     "/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
     "38178945aaefdea573f4998d8b984985aaebb95964da337b23e77e682d7d3d17"),
    ("fonts-dancingscript 1.2-2",
     "/usr/share/fonts/opentype/dancingscript/DancingScript-Bold.otf",
     "0ef9febbf9cf763e47b51170bc74c5ac0e0cc65918469ec6521729ce11dacd46"),
    ("fonts-bwht 0.1-3",
     "/usr/share/fonts/opentype/bwht/BecauseWeBuild-Regular.otf",
     "202160d49b0cfbe8a812c5a75487058f7caba2398324214a1e6d34f24b68d855"),
    ("fonts-bwht 0.1-3",
     "/usr/share/fonts/opentype/bwht/BecauseWeConnect-Regular.otf",
     "c9c7135605a5c8cd143b611881c93383c6804166c4770810ab0c07dbbff3aac9"),
    ("fonts-bwht 0.1-3",
     "/usr/share/fonts/opentype/bwht/BecauseWeCreate-Regular.otf",
     "abdbea89b7de43bccae63975af1714a26a473584341d5c395fca1cb1c51ff48f"),
    ("fonts-bwht 0.1-3",
     "/usr/share/fonts/opentype/bwht/BecauseWeLearn-Regular.otf",
     "d5551a6a1449de4ee2e8ddcd0bcc3e7d292d24c61fc6515d8db9b03a65b127dd"),
    ("fonts-bwht 0.1-3",
     "/usr/share/fonts/opentype/bwht/BecauseWeMentor-Regular.otf",
     "b71888fd9a79936e44a55baf1bf0bb4e594827be890882c4fc9918409e8c2509"),
    ("fonts-bwht 0.1-3",
     "/usr/share/fonts/opentype/bwht/BecauseWeOrganize-Regular.otf",
     "f97f8557caa4de42f743d8d4ea0851993b12c112e8713fd6d6d08881e6a24c5e"),
    ("fonts-rufscript 010-6",
     "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",
     "99b16515f19ab35d18049235797b0dbe3ec73535d455994442b206c96405050f"),
    ("fonts-sjfonts 2.1-2",
     "/usr/share/fonts/truetype/sjfonts/Delphine.ttf",
     "afeea795e392f6b8e0cc4ba3978375908d1f29f8d82f1b7b15d9fdc755a05288"),
    ("fonts-sjfonts 2.1-2",
     "/usr/share/fonts/truetype/sjfonts/SteveHand.ttf",
     "51e0820b832b2cd3db9dc9a759520c868166ae291f19afc3d94689e668d0435e"),
    ("fonts-klee 1.000-20210121-2",
     "/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf",
     "2e466518e3762920add16d542cb73130cbd74968d3b3e92ccbc550c5a76f815b"),
    ("fonts-yusei-magic 1.000-20210130-2",
     "/usr/share/fonts/truetype/yusei-magic/YuseiMagic-Regular.ttf",
     "65e62d87973faaa92b473afd8fc36eeb81b738118e80223be0b2ecda74d05cb4"),
]
SIZE = 160


def render(path: str) -> np.ndarray:
    """uint8 (10, 28, 28): the font's digits 0-9, MNIST-style."""
    font = ImageFont.truetype(path, SIZE)
    out = []
    for d in "0123456789":
        page = Image.new("L", (3 * SIZE, 3 * SIZE), 255)
        ImageDraw.Draw(page).text((SIZE, SIZE // 2), d, font=font, fill=0)
        out.append(mnist_preprocess(np.asarray(page, dtype=np.float64), f"{path} {d!r}"))
    glyphs = np.stack(out)
    flat = glyphs.reshape(10, -1).astype(np.float64)
    if len({g.tobytes() for g in glyphs}) < 10 or (flat.sum(axis=1) == 0).any():
        raise SystemExit(f"{path}: its digits are not ten distinct glyphs (a missing glyph?)")
    return glyphs


def main() -> int:
    glyphs, names = [], []
    for package, path, pin in FONTS:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if pin and digest != pin:
            raise SystemExit(f"{path}: SHA-256 {digest}, pinned {pin} ({package}); "
                             "install that package version, or update the pin and the suite")
        glyphs.append(render(path))
        names.append({"font": Path(path).name, "package": package, "sha256": digest})
        print(f"{Path(path).name:36s} {digest}")
    data = save({"glyphs": np.stack(glyphs)}, metadata={"fonts": json.dumps(names)})
    atomic.write_bytes(OUT, data)
    print(f"wrote {OUT} ({len(data):,} bytes, {len(names)} fonts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
