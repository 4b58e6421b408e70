"""An independent computation of the Cityscapes-style metric on a folder of predictions, for
the tests of `search eval` on every data set format (tests/datasets.rs).

    python3 scripts/miou_check.py FORMAT ROOT SPLIT PRED_DIR TABLE_JSON

It lists the ground truth of each layout itself, reads label PNGs with PIL (palette PNGs as
their indices, grey as values, RGB as colours of the table), maps stored values to train ids
with the class table (JSON of the table's TOML keys), and prints one JSON line:
{"miou": ..., "classes": {name: iou or null}, "images": n}. Predictions are single-channel PNGs
of stored values at PRED_DIR/<id>.png, or (Cityscapes) the one PNG below PRED_DIR whose name
starts with the id.
Needs numpy and pillow (scripts/setup.sh installs them into .libtorch/tools).
"""

import glob
import json
import os
import sys

import numpy as np
from PIL import Image


def ground_truth(fmt, root, split):
    """(id, label path, prediction file name) of every image of the split."""
    if fmt == "cityscapes":
        out = []
        for path in sorted(glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_labelIds.png"))):
            stem = os.path.basename(path)[: -len("_gtFine_labelIds.png")]
            out.append((stem, path, stem + ".png"))
        return out
    if fmt == "folder":
        base = os.path.join(root, "labels", split)
        out = []
        for path in sorted(glob.glob(os.path.join(base, "**", "*.png"), recursive=True)):
            ident = os.path.splitext(os.path.relpath(path, base))[0]
            out.append((ident, path, ident + ".png"))
        return out
    if fmt == "voc":
        lst = os.path.join(root, "ImageSets", "Segmentation", split + ".txt")
        if not os.path.exists(lst):
            lst = os.path.join(root, "ImageSets", "SegmentationAug", split + ".txt")
        out = []
        for line in open(lst):
            if not line.split():
                continue
            ident = os.path.splitext(os.path.basename(line.split()[0]))[0]
            path = os.path.join(root, "SegmentationClass", ident + ".png")
            if not os.path.exists(path):
                path = os.path.join(root, "SegmentationClassAug", ident + ".png")
            out.append((ident, path, ident + ".png"))
        return out
    if fmt == "ade20k":
        folder = {"train": "training", "val": "validation"}.get(split, split)
        out = []
        for path in sorted(glob.glob(os.path.join(root, "annotations", folder, "*.png"))):
            ident = os.path.splitext(os.path.basename(path))[0]
            out.append((ident, path, ident + ".png"))
        return out
    raise SystemExit(f"unknown format {fmt}")


def main():
    fmt, root, split, preds, table_path = sys.argv[1:6]
    table = json.load(open(table_path))
    classes = table["class"]
    n = len(classes)
    value_to_train = np.full(256, -1, dtype=np.int64)  # -1: not in the table
    for v in table.get("ignore", [255]):
        value_to_train[v] = 255
    colors = {tuple(c): 255 for c in table.get("ignore_colors", [])}
    for i, c in enumerate(classes):
        value_to_train[c.get("value", i)] = i
        colors[tuple(c["color"])] = i

    def train_ids(path):
        image = Image.open(path)
        if image.mode in ("P", "L"):
            values = np.array(image)
            ids = value_to_train[values]
        else:
            rgb = np.array(image.convert("RGB")).reshape(-1, 3)
            ids = np.array([colors.get(tuple(px), -1) for px in rgb]).reshape(image.size[1], image.size[0])
        if (ids < 0).any():
            raise SystemExit(f"{path}: a value outside the table")
        return ids

    confusion = np.zeros((n, n + 1), dtype=np.int64)
    items = ground_truth(fmt, root, split)
    for ident, gt_path, pred_name in items:
        gt = train_ids(gt_path)
        pred_path = os.path.join(preds, pred_name)
        if not os.path.exists(pred_path):  # Cityscapes: named with the id, anywhere below
            (pred_path,) = glob.glob(os.path.join(preds, "**", ident + "*.png"), recursive=True)
        pred = train_ids(pred_path)
        valid = gt < n
        pred = np.where(pred < n, pred, n)
        np.add.at(confusion, (gt[valid], pred[valid]), 1)
    result = {}
    ious = []
    for c in range(n):
        tp = confusion[c, c]
        fp = confusion[:, c].sum() - tp
        fn = confusion[c, :].sum() - tp
        denominator = tp + fp + fn
        iou = float(tp) / float(denominator) if denominator > 0 else None
        result[classes[c]["name"]] = iou
        if iou is not None:
            ious.append(iou)
    print(json.dumps({"miou": sum(ious) / len(ious), "classes": result, "images": len(items)}))


if __name__ == "__main__":
    main()
