"""The Python half of `search export` (embedded in the binary, run with the torch and onnx that
scripts/setup.sh installs), one mode per call:

    python3 export.py JOB_JSON

- {"mode": "build", "traced": path, "weights": path, "names": [str], "trainable": [str],
  "height": h, "width": w, "fold": bool, "metadata": {str: str}, "out": path}: builds the
  exported TorchScript module from the graph libtorch traced with the weights as inputs
  (`forward(image, *weights)`, in `names` order): the weights become the module's parameters
  (`trainable`) and buffers (batch-norm statistics), nested under the names they have in
  `weights.safetensors`, so that `state_dict()` keys match them and a user can fine-tune the
  file; any input size is resized to the traced height x width inside the module and the
  logits back to the input's size. Checked against the traced graph, for a gradient in every
  parameter, and at another size. With "fold", the module is frozen (torch.jit.freeze), which
  folds every convolution + batch norm pair: a deployment file without parameters. The
  metadata travel as the extra file `metadata.json`.
- {"mode": "onnx", "torchscript": path, "onnx": path, "height": h, "width": w, "opset": 17,
  "metadata": {str: str}}: converts the built module to ONNX with dynamic batch, height and
  width and the metadata, checked with onnx.checker and against the TorchScript with
  onnxruntime on two images, and at another size.

Prints one JSON line: the checks and timings.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F

# The exported module's attribute holding the traced graph; no weight name may start with it.
GRAPH = "traced"


def batch_norms(graph):
    return sum(1 for node in graph.nodes() if node.kind() == "aten::batch_norm")


def images(job, height=None, width=None):
    torch.manual_seed(0)
    # Two images: the batch size is not part of the graph.
    return torch.rand(2, 3, height or job["height"], width or job["width"]) * 255.0


def other_size(job):
    """A size the graph was not traced at: 1.5 times each side."""
    return job["height"] * 3 // 2, job["width"] * 3 // 2


DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "U8": torch.uint8,
}


def read_safetensors(path):
    """Every tensor of a safetensors file (8-byte header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        if end == start:
            tensors[name] = torch.empty(info["shape"], dtype=dtype)
        else:
            flat = torch.frombuffer(bytearray(data[start:end]), dtype=dtype)
            tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors


class Network(torch.nn.Module):
    """The exported network: the traced graph, its weights under their own names, and the resize
    to and from the traced size."""

    def __init__(self, graph, names, tensors, trainable, height, width):
        super().__init__()
        setattr(self, GRAPH, graph)
        self.order = list(names)
        self.size = (height, width)
        for name in names:
            *path, leaf = name.split(".")
            if path[:1] == [GRAPH] or name == GRAPH:
                raise ValueError(f"weight {name!r}: the name {GRAPH!r} is the graph's")
            module = self
            for part in path:
                if part not in module._modules:
                    module.add_module(part, torch.nn.Module())
                module = module._modules[part]
            if name in trainable:
                module.register_parameter(leaf, torch.nn.Parameter(tensors[name]))
            else:
                module.register_buffer(leaf, tensors[name])

    def weight(self, name):
        module = self
        *path, leaf = name.split(".")
        for part in path:
            module = module._modules[part]
        return getattr(module, leaf)

    def forward(self, image):
        # Bilinear resizing to the same size is the identity, so at the traced size the module
        # computes exactly what the graph does.
        x = F.interpolate(image, size=self.size, mode="bilinear", align_corners=False)
        logits = getattr(self, GRAPH)(x, *[self.weight(n) for n in self.order])
        return F.interpolate(logits, size=(image.shape[2], image.shape[3]), mode="bilinear", align_corners=False)


def gradient_check(module, x):
    """Every parameter receives a gradient, and one SGD step changes the output."""
    parameters = list(module.parameters())
    if not parameters:
        return {"parameters": 0}
    logits = module(x)
    labels = logits.detach().argmax(1).flip(-1)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    without = [name for name, p in module.named_parameters() if p.grad is None]
    if without:
        raise RuntimeError(f"{len(without)} parameters receive no gradient, e.g. {without[:3]}")
    saved = [p.detach().clone() for p in parameters]
    with torch.no_grad():
        for p in parameters:
            p -= 0.01 * p.grad
            p.grad = None
        moved = float((module(x) - logits.detach()).abs().max())
        for p, s in zip(parameters, saved):
            p.copy_(s)
    if moved == 0.0:
        raise RuntimeError("one SGD step did not change the logits")
    return {
        "parameters": sum(p.numel() for p in parameters),
        "parameter_tensors": len(parameters),
        "sgd_step_changed_logits_by": moved,
    }


def build(job):
    start = time.time()
    graph = torch.jit.load(job["traced"]).eval()
    tensors = read_safetensors(job["weights"])
    missing = [n for n in job["names"] if n not in tensors]
    if missing:
        raise KeyError(f"the weights lack {missing[:3]}")
    network = Network(graph, job["names"], tensors, set(job["trainable"]), job["height"], job["width"]).eval()
    x = images(job)
    with torch.no_grad():
        reference = graph(x, *[tensors[n] for n in job["names"]])
    module = torch.jit.trace(network, x[:1], check_trace=False)
    with torch.no_grad():
        out = module(x)
    report = {
        "max_abs_diff": float((out - reference).abs().max()),
        "buffers": sum(b.numel() for b in module.buffers()),
    }
    report.update(gradient_check(module, x))
    if job["fold"]:
        folded = torch.jit.freeze(module.eval())
        with torch.no_grad():
            folded_out = folded(x)
        report["fold"] = {
            "batch_norm_nodes_traced": batch_norms(module.inlined_graph),
            "batch_norm_nodes_folded": batch_norms(folded.graph),
            "max_abs_diff": float((folded_out - out).abs().max()),
        }
        module = folded
    h, w = other_size(job)
    with torch.no_grad():
        resized = module(images(job, h, w))
    report["other_size"] = [h, w]
    report["other_size_shape"] = list(resized.shape)
    if list(resized.shape[2:]) != [h, w]:
        raise RuntimeError(f"an input of {w}x{h} gave logits of {list(resized.shape)}")
    report["file_parameters"] = sum(p.numel() for p in module.parameters())
    torch.jit.save(module, job["out"], _extra_files={"metadata.json": json.dumps(job["metadata"], sort_keys=True)})
    report["seconds"] = time.time() - start
    return report


def onnx_export(job):
    import onnx
    import onnxruntime

    model = torch.jit.load(job["torchscript"]).eval()
    x = images(job)
    with torch.no_grad():
        reference = model(x)
    start = time.time()
    dims = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        model,
        (x[:1],),
        job["onnx"],
        dynamo=False,  # the TorchScript-based exporter: the only one that takes a ScriptModule
        opset_version=job["opset"],
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": dims, "logits": dims},
        do_constant_folding=True,
    )
    proto = onnx.load(job["onnx"])
    # The class dimension is fixed; the exporter's shape inference loses it through the resize.
    classes = proto.graph.output[0].type.tensor_type.shape.dim[1]
    classes.Clear()
    classes.dim_value = reference.shape[1]
    for key, value in sorted(job["metadata"].items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, job["onnx"])
    session = onnxruntime.InferenceSession(job["onnx"], providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    h, w = other_size(job)
    other = images(job, h, w)
    with torch.no_grad():
        other_reference = model(other)
    (other_out,) = session.run(None, {"image": other.numpy()})
    return {
        "batch_2_shape": list(reference.shape),
        "opset": [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")][0],
        "batch_norm_nodes": sum(1 for n in proto.graph.node if n.op_type == "BatchNormalization"),
        "max_abs_diff": float(abs(out - reference.numpy()).max()),
        "other_size_shape": list(other_out.shape),
        "other_size_max_abs_diff": float(abs(other_out - other_reference.numpy()).max()),
        "seconds": time.time() - start,
    }


def main():
    job = json.loads(sys.argv[1])
    modes = {"build": build, "onnx": onnx_export}
    print(json.dumps(modes[job["mode"]](job)))


if __name__ == "__main__":
    main()
