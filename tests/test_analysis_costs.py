"""Costs: FLOPs convention, bytes per dtype, intensity, roofline, shares."""

import pytest

from analysis import zoo
from analysis.costs import (Machine, dtype_bytes, layer_cost, network_costs, roofline_seconds,
                            shares_by_op, totals)
from analysis.errors import SpecError
from analysis.layers import Conv2d
from analysis.network import Network, analyse


def _row(layer, shape):
    return analyse(Network("one", shape, (layer,))).rows[0]


def test_flops_are_twice_macs_and_bias_adds_are_separate():
    row = _row(Conv2d("c", 8, 3, padding=1, bias=True), (4, 10, 10))
    cost = layer_cost(row)
    assert cost.macs == 8 * 100 * 4 * 9
    assert cost.flops == 2 * cost.macs
    assert cost.bias_flops == 8 * 100
    assert (cost.weights, cost.bias) == (8 * 4 * 9, 8)


@pytest.mark.parametrize("dtype,size", [("float32", 4), ("float64", 8), ("float16", 2)])
def test_bytes_follow_dtype_and_batch(dtype, size):
    row = _row(Conv2d("c", 8, 3, padding=1, bias=False), (4, 10, 10))
    cost = layer_cost(row, batch=3, dtype=dtype)
    assert cost.input_bytes == 3 * 4 * 100 * size
    assert cost.output_bytes == 3 * 8 * 100 * size
    assert cost.weight_bytes == 8 * 4 * 9 * size
    assert cost.macs == 3 * 8 * 100 * 4 * 9
    assert cost.intensity == pytest.approx(cost.flops / cost.total_bytes)


def test_roofline_takes_the_slower_of_compute_and_memory():
    machine = Machine(peak_flops=1e9, bandwidth=1e9)
    assert roofline_seconds(4e9, 1e9, machine) == 4.0  # compute-bound
    assert roofline_seconds(1e9, 8e9, machine) == 8.0  # memory-bound
    # a 3x3 depthwise conv does 18 flops per 8 bytes (float32 in + out): 2.25 flop/byte,
    # under the default ridge point (100 GFLOP/s / 20 GB/s = 5): memory-bound
    a = analyse(zoo.mobilenet_v1())
    dw = layer_cost(next(r for r in a.rows if r.op == "depthwise"))
    pw = layer_cost(next(r for r in a.rows if r.name == "pw1"))
    assert dw.intensity == pytest.approx(2.25, rel=1e-3)
    assert dw.roofline_s == dw.total_bytes / Machine().bandwidth
    assert pw.intensity > 10


def test_totals_are_column_sums():
    costs = network_costs(analyse(zoo.resnet50()))
    t = totals(costs)
    for key in ("params", "macs", "flops", "bias_flops", "output_bytes"):
        assert t[key] == sum(getattr(c, key) for c in costs)
    assert t["params"] == 25_557_032


def test_shares_by_op_sum_to_one():
    shares = shares_by_op(network_costs(analyse(zoo.mobilenet_v1())))
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["conv"] > 0.95


def test_unknown_dtype_and_bad_batch_are_spec_errors():
    with pytest.raises(SpecError, match="field 'dtype'.*float32"):
        dtype_bytes("int4")
    with pytest.raises(SpecError, match="field 'batch'"):
        network_costs(analyse(zoo.dcgan_generator()), batch=0)


def test_summary_by_kind_reproduces_mobilenet_table_2():
    # Howard et al. 2017, Table 2 (weights only); see test_analysis_zoo.py for the misprint
    # in the Conv 3x3 mult-adds share (printed 1.19%, computed 1.91%).
    from analysis.costs import summary_by_kind
    a = analyse(zoo.mobilenet_v1())
    rows = summary_by_kind(a, network_costs(a), weights_only=True)
    got = {r["kind"]: (round(100 * r["macs_share"], 2), round(100 * r["params_share"], 2))
           for r in rows}
    assert got == {"conv 1x1": (94.86, 74.59), "depthwise 3x3": (3.06, 1.06),
                   "conv 3x3": (1.91, 0.02), "linear": (0.18, 24.33)}
    assert [r["layers"] for r in rows] == [13, 13, 1, 1]
