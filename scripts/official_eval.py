"""Runs the official Cityscapes pixel-level evaluation (PyPI `cityscapesscripts`,
csEvalPixelLevelSemanticLabeling) on a prediction folder and prints its per-class IoU and mIoU
as one JSON line, so that tests can compare `search eval --pred` with it.

Usage: PYTHONPATH=.libtorch/tools python3 scripts/official_eval.py DATA_ROOT PRED_DIR SPLIT
(scripts/setup.sh installs the evaluation into .libtorch/tools).
"""
import glob
import json
import math
import os
import sys


def main():
    root, predictions, split = sys.argv[1], sys.argv[2], sys.argv[3]
    os.environ["CITYSCAPES_DATASET"] = root
    os.environ["CITYSCAPES_RESULTS"] = predictions
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = official.args
    args.evalInstLevelScore = False
    args.quiet = True
    args.predictionPath = predictions
    args.exportFile = os.path.join(predictions, "official-results.json")
    ground_truth = sorted(glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_labelIds.png")))
    prediction = [official.getPrediction(args, gt) for gt in ground_truth]
    results = official.evaluateImgLists(prediction, ground_truth, args)
    scores = {name: (None if math.isnan(v) else v) for name, v in results["classScores"].items()}
    print(json.dumps({"miou": results["averageScoreClasses"], "classes": scores}))


if __name__ == "__main__":
    main()
