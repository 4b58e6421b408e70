"""The Python half of `search export` (embedded in the binary, run with the torch and onnx that
scripts/setup.sh installs): batch-norm folding of the TorchScript file, conversion to ONNX,
metadata, and the checks of both against the TorchScript that Rust traced.

    python3 export.py JOB_JSON

JOB_JSON: {"torchscript": path, "onnx": path or null, "fold_bn": bool, "height": h, "width": w,
"opset": 17, "metadata": {str: str}}. Prints one JSON line: the checks and timings.
"""

import json
import sys
import time

import torch


def batch_norms(graph):
    return sum(1 for node in graph.nodes() if node.kind() == "aten::batch_norm")


def main():
    job = json.loads(sys.argv[1])
    h, w = job["height"], job["width"]
    report = {}
    traced = torch.jit.load(job["torchscript"]).eval()
    torch.manual_seed(0)
    # Two images: the batch size is not part of the traced graph.
    x = torch.rand(2, 3, h, w) * 255.0
    with torch.no_grad():
        reference = traced(x)
    report["batch_2_shape"] = list(reference.shape)
    report["batch_norm_nodes_traced"] = batch_norms(traced.inlined_graph)
    model = traced
    if job["fold_bn"]:
        start = time.time()
        # Freezing inlines the constants and folds every convolution + batch norm pair.
        model = torch.jit.freeze(traced)
        report["batch_norm_nodes_folded"] = batch_norms(model.graph)
        with torch.no_grad():
            folded = model(x)
        report["fold_bn_max_abs_diff"] = float((folded - reference).abs().max())
        model.save(job["torchscript"])
        report["fold_bn_seconds"] = time.time() - start
    if job["onnx"]:
        import onnx
        import onnxruntime

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
        report["onnx_seconds"] = time.time() - start
        report["onnx_opset"] = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")][0]
        report["onnx_batch_norm_nodes"] = sum(1 for n in proto.graph.node if n.op_type == "BatchNormalization")
        session = onnxruntime.InferenceSession(job["onnx"], providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"image": x.numpy()})
        report["onnx_max_abs_diff"] = float(abs(out - reference.numpy()).max())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
