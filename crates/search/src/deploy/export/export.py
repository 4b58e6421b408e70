"""The Python half of `search export` (embedded in the binary, run with the torch and onnx that
scripts/setup.sh installs), one mode per call:

    python3 export.py JOB_JSON

- {"mode": "fold", "torchscript": path, "height": h, "width": w}: folds every convolution +
  batch norm pair of the traced TorchScript file (torch.jit.freeze) in place, checked against
  the unfolded graph.
- {"mode": "onnx", "torchscript": path, "onnx": path, "height": h, "width": w, "opset": 17,
  "metadata": {str: str}}: converts the TorchScript file to ONNX with the metadata, checked with
  onnx.checker and against the TorchScript with onnxruntime on two images.

Prints one JSON line: the checks and timings.
"""

import json
import sys
import time

import torch


def batch_norms(graph):
    return sum(1 for node in graph.nodes() if node.kind() == "aten::batch_norm")


def images(job):
    torch.manual_seed(0)
    # Two images: the batch size is not part of the traced graph.
    return torch.rand(2, 3, job["height"], job["width"]) * 255.0


def fold(job):
    traced = torch.jit.load(job["torchscript"]).eval()
    x = images(job)
    start = time.time()
    with torch.no_grad():
        reference = traced(x)
    # Freezing inlines the constants and folds every convolution + batch norm pair.
    folded = torch.jit.freeze(traced)
    with torch.no_grad():
        out = folded(x)
    folded.save(job["torchscript"])
    return {
        "batch_norm_nodes_traced": batch_norms(traced.inlined_graph),
        "batch_norm_nodes_folded": batch_norms(folded.graph),
        "max_abs_diff": float((out - reference).abs().max()),
        "seconds": time.time() - start,
    }


def onnx_export(job):
    import onnx
    import onnxruntime

    model = torch.jit.load(job["torchscript"]).eval()
    x = images(job)
    with torch.no_grad():
        reference = model(x)
    start = time.time()
    torch.onnx.export(
        model,
        (x[:1],),
        job["onnx"],
        dynamo=False,  # the TorchScript-based exporter: the only one that takes a ScriptModule
        opset_version=job["opset"],
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    proto = onnx.load(job["onnx"])
    for key, value in sorted(job["metadata"].items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, job["onnx"])
    session = onnxruntime.InferenceSession(job["onnx"], providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    return {
        "batch_2_shape": list(reference.shape),
        "opset": [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")][0],
        "batch_norm_nodes": sum(1 for n in proto.graph.node if n.op_type == "BatchNormalization"),
        "max_abs_diff": float(abs(out - reference.numpy()).max()),
        "seconds": time.time() - start,
    }


def main():
    job = json.loads(sys.argv[1])
    modes = {"fold": fold, "onnx": onnx_export}
    print(json.dumps(modes[job["mode"]](job)))


if __name__ == "__main__":
    main()
