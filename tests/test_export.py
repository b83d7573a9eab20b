"""Exports: torch's Sequential and onnxruntime on the ONNX graph compute the library's function."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import load_file

from expand_and_cluster import ACTIVATIONS, to_torch
from expand_and_cluster.cli import main
from expand_and_cluster.export import to_onnx, write_onnx, write_safetensors
from expand_and_cluster.network import MLP, torch_forward
from expand_and_cluster.store import write_network
from expand_and_cluster.teachers import synthetic_teacher

# Bound on |export - library| / max(1, |library|) on 1,000 gaussian inputs. Float32: torch
# matches the library's float32 pass exactly; onnxruntime's float32 kernels sum in another
# order and differ by up to 2.4e-6 (measured), about 20 float32 epsilons, so 1e-6 cannot hold.
TOLERANCE = {"float32": 5e-6, "float64": 1e-10}


def _with_skip(net: MLP) -> MLP:
    rng = np.random.default_rng(1)
    return MLP(net.weights, net.biases, net.activation, rng.normal(size=(1, net.n_inputs)))


def _networks():
    for name in ACTIVATIONS:
        yield name, synthetic_teacher("5,4,3,2", name, 0)
    yield "softplus+skip", _with_skip(synthetic_teacher("5,4,1", "softplus", 0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "net"), list(_networks()), ids=[n for n, _ in _networks()])
def test_torch_and_onnx_reproduce_the_forward_pass(name, net, dtype):
    x = np.random.default_rng(2).normal(size=(1000, net.n_inputs))
    # Float32 exports are judged against the library's own float32 pass (the one students
    # train with); float64 ones against its numpy pass.
    if dtype == "float32":
        x32 = torch.from_numpy(x.astype(np.float32))
        params = net.torch_parameters(torch.float32)
        expected = torch_forward(params, x32, net.activation).double().numpy()
    else:
        expected = net(x)
    scale = np.maximum(1.0, np.abs(expected))
    with torch.no_grad():
        y_torch = to_torch(net, dtype)(torch.from_numpy(x.astype(dtype))).double().numpy()
    session = ort.InferenceSession(
        to_onnx(net, dtype).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    y_onnx = session.run(None, {"x": x.astype(dtype)})[0].astype(np.float64)
    errors = [np.max(np.abs(y - expected) / scale) for y in (y_torch, y_onnx)]
    print(f"{name} {dtype}: torch {errors[0]:.1e}, onnx {errors[1]:.1e}")
    assert max(errors) < TOLERANCE[dtype]


def test_safetensors_state_dict_loads_into_the_sequential(tmp_path):
    net = _with_skip(synthetic_teacher("3,4,1", "gelu", 0))
    write_safetensors(tmp_path / "n.safetensors", net)
    state = load_file(tmp_path / "n.safetensors")
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias", "skip.weight"}
    model = to_torch(MLP([w * 0 for w in net.weights], net.biases, "gelu", net.skip_weight))
    model.load_state_dict(state)
    x = np.random.default_rng(0).normal(size=(50, 3))
    with torch.no_grad():
        assert np.allclose(model(torch.from_numpy(x)).numpy(), net(x), atol=1e-12)


def test_export_command_writes_each_format(tmp_path, capsys):
    net = synthetic_teacher("3,4,1", "tanh", 0)
    write_network(tmp_path / "network.zarr", net)
    assert main(["export", str(tmp_path / "network.zarr"), "--to", "onnx"]) == 0
    assert (tmp_path / "network.onnx").exists()
    out = tmp_path / "elsewhere.safetensors"
    assert (
        main(["export", str(tmp_path / "network.zarr"), "--to", "safetensors", "--out", str(out)])
        == 0
    )
    assert set(load_file(out)) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    with pytest.raises(SystemExit) as refused:  # argparse: exit 2 with the choices
        main(["export", str(tmp_path / "network.zarr"), "--to", "keras"])
    assert refused.value.code == 2
    assert main(["export", str(tmp_path / "network.zarr"), "--to", "onnx"]) == 2  # exists
    write_onnx(tmp_path / "again.onnx", net, "float32")
