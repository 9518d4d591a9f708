#!/usr/bin/env python
"""Compose the README's teaser figure (nbs/images/teaser.png) from figures the notebooks already saved.

README.md is generated without notebook outputs, so its picture must be a committed file. Each tile is
a saved output of an executed notebook, found by cell id (so moving cells does not break it) and cropped
to a box given as fractions of the image; rerun after re-executing those notebooks.

    python scripts/make_teaser.py
"""
import base64, io, json
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# (notebook, cell id, output index, crop (left, top, right, bottom) as fractions, caption)
TILES = [
    ("65_compare", "f3aad55b", 0, (0.505, 0.205, 0.745, 0.43), "STARFlow: class-conditional digits (nb 16, 65)"),
    ("36_dsplats", "c5555d34", 1, (0.0, 0.05, 0.5, 0.21), "DSplats: 3D Gaussians from one view (nb 36)"),
    ("38_shapetokens", "61dda331", 0, (0.0, 0.05, 1.0, 0.68), "Shape Tokens: one token set, 512 to 16k points (nb 38)"),
    ("40_simplicits", "4d2a7a93", 0, (0.58, 0.0, 1.0, 1.0), "Simplicits against warp.fem (nb 40)"),
    ("41_vid2sim", "ddb6f870", 0, (0.0, 0.09, 0.5, 0.35), "Vid2Sim: Gaussians following the simulation (nb 41)"),
    ("23b_wvd_cameras", "9361236f", 0, (0.0, 0.0, 1.0, 1.0), "WVD: cameras recovered from XYZ images (nb 23b)"),
]


def saved_image(nb, cell_id, k):
    cells = json.loads((ROOT/"nbs"/f"{nb}.ipynb").read_text())["cells"]
    cell = next((c for c in cells if c.get("id") == cell_id), None)
    if cell is None: raise SystemExit(f"{nb}: no cell with id {cell_id}: update TILES in {Path(__file__).name}")
    data = cell["outputs"][k].get("data", {}) if len(cell.get("outputs", [])) > k else {}
    key = next((m for m in ("image/png", "image/jpeg") if m in data), None)
    if key is None: raise SystemExit(f"{nb} cell {cell_id}: output {k} is not an image (re-run the notebook: python scripts/run_notebooks.py nbs/{nb}.ipynb)")
    return Image.open(io.BytesIO(base64.b64decode(data[key]))).convert("RGB")


def main(out=ROOT/"nbs"/"images"/"teaser.png"):
    fig, axs = plt.subplots(2, 3, figsize=(12, 5.6), dpi=80)
    for ax, (nb, cid, k, (l, t, r, b), cap) in zip(axs.flat, TILES):
        im = saved_image(nb, cid, k); W, H = im.size
        ax.imshow(im.crop((round(l * W), round(t * H), round(r * W), round(b * H))))
        ax.set_title(cap, fontsize=10); ax.axis("off")
    fig.tight_layout(); out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80); print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
