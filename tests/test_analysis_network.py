"""Network walking: dotted names, blocks, merges, input override, helpers."""

import pytest

from analysis.errors import SpecError
from analysis.layers import Activation, Conv2d, Flatten, Linear, MaxPool2d
from analysis.network import Block, Network, analyse, map_layers, walk_layers


def _net():
    return Network("n", (3, 16, 16), (
        Conv2d("stem", 8, 3, padding=1),
        Block("res", "add", ((Conv2d("a", 8, 3, padding=1), Activation()), ())),
        Block("grp", "sequential", ((MaxPool2d("pool", 2),),)),
        Flatten("flat"), Linear("fc", 10)))


def test_rows_in_order_with_dotted_names():
    a = analyse(_net())
    assert [r.name for r in a.rows] == ["stem", "res.0.a", "res.0.act1", "res", "grp.pool",
                                        "flat", "fc"]
    assert a.output_shape == (10,)
    assert a.rows[3].input_elements == 2 * 8 * 16 * 16  # a merge reads all its inputs


def test_input_override_changes_shapes_not_params():
    small = analyse(_net(), input_shape=(3, 8, 8))
    big = analyse(_net())
    assert small.rows[-1].params.total != big.rows[-1].params.total  # fc sees fewer features
    assert small.rows[0].params == big.rows[0].params
    assert small.rows[0].output_shape == (8, 8, 8)


def test_bad_input_and_bad_block_kind():
    with pytest.raises(SpecError, match="field 'input'"):
        analyse(_net(), input_shape=(3, 0, 8))
    bad = Network("n", (3, 8, 8), (Block("b", "multiply", ((), ())),))
    with pytest.raises(SpecError, match="unknown block kind 'multiply'"):
        analyse(bad)


def test_concat_needs_equal_spatial_sizes_unless_cropping():
    paths = ((Conv2d("a", 2, 3),), ())
    with pytest.raises(SpecError, match="concat needs equal spatial sizes"):
        analyse(Network("n", (1, 8, 8), (Block("cat", "concat", paths),)))
    out = analyse(Network("n", (1, 8, 8), (Block("cat", "concat", paths, crop=True),)))
    assert out.output_shape == (3, 6, 6)


def test_walk_and_map_layers_descend_into_blocks():
    net = _net()
    assert [l.name for l in walk_layers(net.layers)] == ["stem", "a", "", "pool", "flat", "fc"]
    renamed = map_layers(net.layers, lambda l: l)
    assert renamed == net.layers
