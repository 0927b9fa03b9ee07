"""Inverse planning: padding for a size, output_padding to restore, all mappings."""

import random

import pytest

from analysis import solve
from analysis.errors import SpecError
from analysis.layers import Conv2d, ConvTranspose2d


def test_padding_for_same_and_for_halving():
    assert solve.padding_for(32, 32, kernel=3) == (1, 1)
    assert solve.padding_for(32, 32, kernel=4) == (1, 2)  # odd total: extra cell after
    assert solve.padding_for(32, 16, kernel=3, stride=2) == (0, 1)
    assert solve.padding_for(32, 40, kernel=3) == (5, 5)  # growing needs 'full'-like padding


def test_padding_for_impossible_target_is_none():
    # a 3x3 stride-1 conv cannot shrink 32 to 10 (padding only grows the output)
    assert solve.padding_for(32, 10, kernel=3) is None


@pytest.mark.parametrize("seed", range(10))
def test_padding_for_is_verified_by_the_forward_arithmetic(seed):
    rng = random.Random(seed)
    size, k, s, d = rng.randint(1, 50), rng.randint(1, 7), rng.randint(1, 4), rng.randint(1, 3)
    target = rng.randint(1, 30)
    pad = solve.padding_for(size, target, k, s, d)
    if pad is not None:
        layer = Conv2d(kernel=k, stride=s, dilation=d, padding=(pad, pad))
        assert layer.output_shape((1, size, size))[1] == target


def test_output_padding_restores_the_size():
    assert solve.output_padding_for(8, kernel=3, stride=2, padding=1) == 1
    assert solve.output_padding_for(7, kernel=3, stride=2, padding=1) == 0
    with pytest.raises(SpecError, match="does not fit"):
        solve.output_padding_for(2, kernel=5)


def test_choices_map_224_to_112():
    found = solve.choices(224, 112, max_kernel=3)
    assert [(c.kernel, c.stride, c.padding) for c in found] == [
        (1, 2, (0, 0)), (2, 2, (0, 0)), (3, 2, (1, 1))]


def test_transposed_choices_all_produce_the_target():
    found = solve.choices(16, 32, max_kernel=4, transposed=True)
    assert found
    for c in found:
        layer = ConvTranspose2d(kernel=c.kernel, stride=c.stride, padding=c.padding[0],
                                dilation=c.dilation, output_padding=c.output_padding)
        assert layer.output_shape((1, 16, 16))[1] == 32
    assert any((c.kernel, c.stride, c.padding, c.output_padding) == (4, 2, (1, 1), 0)
               for c in found)


def test_asymmetric_choices_include_symmetric_ones():
    sym = solve.choices(10, 5, max_kernel=3)
    asym = solve.choices(10, 5, max_kernel=3, symmetric=False)
    assert set(sym) < set(asym)


def test_solver_rejects_non_positive_sizes():
    with pytest.raises(SpecError, match="field 'input'"):
        solve.padding_for(0, 3, 3)
