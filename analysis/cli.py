"""``cconv-plan``: plan CNN layers from a description (shapes, receptive fields, costs).

Thin by design: parse arguments, call the library, print what :mod:`analysis.formatting`
renders. A bad spec or an impossible layer prints one line naming the layer and the
field and exits with status 2.

Examples::

    cconv-plan network --measure          # MobileNet v1, planned and timed with cconv
    cconv-plan zoo
    cconv-plan network mobilenet_v1 --param width=0.5 --input 160
    cconv-plan network my_net.toml --format json
    cconv-plan rf resnet50
    cconv-plan compare vgg16 --measure --threads 2
    cconv-plan shape conv out_channels=64 kernel=7 stride=2 padding=3 --input 3,224,224
    cconv-plan solve padding 32 16 --kernel 3 --stride 2
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

from . import compare as compare_mod
from . import costs as costs_mod
from . import formatting, solve as solve_mod, spec, zoo
from .errors import SpecError
from .layers import BN_PARAM_MODES, LAYER_TYPES
from .network import Network, analyse

PROG = "cconv-plan"
DEFAULT_MODEL = "mobilenet_v1"


# ---------------------------------------------------------------------------- argument helpers
def parse_value(text: str) -> Any:
    """A command-line value: JSON if it parses (ints, lists, true), ``a,b`` as int tuple,
    else the string itself."""
    try:
        value = json.loads(text)
        return tuple(value) if isinstance(value, list) else value
    except ValueError:
        pass
    if "," in text:
        try:
            return tuple(int(v) for v in text.split(","))
        except ValueError:
            pass
    return text


def parse_assignments(items: Sequence[str], what: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("", what, f"expected key=value, got {item!r}")
        out[key.replace("-", "_")] = parse_value(value)
    return out


def parse_input(text: Optional[str]) -> Optional[tuple]:
    """``C,H,W``, ``H,W`` or ``S`` (square) -> a tuple of 1-3 positive ints."""
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or min(values) < 1:
        raise SpecError("", "input", f"expected C,H,W or H,W or a size, got {text!r}")
    return values


def resolve_input(network: Network, given: Optional[tuple]) -> tuple:
    if given is None:
        return tuple(network.input_shape)
    c = network.input_shape[0]
    if len(given) == 1:
        return (c, given[0], given[0])
    if len(given) == 2:
        return (c,) + given
    return given


def load_network(target: str, params: Dict[str, Any], given_input: Optional[tuple]) -> Network:
    """A zoo model (``params`` as builder keywords) or a spec file."""
    if spec.looks_like_spec(target):
        if params:
            raise SpecError("", "param", "--param applies to zoo models, not spec files")
        return spec.load(target)
    params = dict(params)
    builder = zoo.ZOO.get(target)
    if (builder is not None and given_input is not None and "resolution" not in params
            and "resolution" in inspect.signature(builder).parameters):
        hw = given_input[-2:] if len(given_input) > 1 else given_input * 2
        if hw[0] == hw[-1]:
            params["resolution"] = hw[0]
    return zoo.build(target, **params)


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--input", help="input size: C,H,W or H,W or one size (square)")
    common.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    common.add_argument("--dtype", default="float32", choices=sorted(costs_mod.DTYPE_BYTES),
                        help="element type for bytes and --measure (default float32)")
    common.add_argument("--format", default=formatting.DEFAULT_FORMAT,
                        help="any tabulate format (grid, github, simple, ...), csv or json")
    common.add_argument("--measure", action="store_true",
                        help="run each layer with cconv and report measured times")
    common.add_argument("--threads", type=int, default=None,
                        help="cconv threads for --measure (default: all usable cores)")
    common.add_argument("--repeat", type=int, default=3, help="--measure: best of N runs")
    common.add_argument("--peak-gflops", type=float, default=costs_mod.DEFAULT_PEAK_GFLOPS,
                        help="roofline peak compute, GFLOP/s")
    common.add_argument("--bandwidth-gbs", type=float,
                        default=costs_mod.DEFAULT_BANDWIDTH_GBS,
                        help="roofline memory bandwidth, GB/s")
    common.add_argument("--bn-params", default="trainable", choices=BN_PARAM_MODES,
                        help="batch-norm parameters: trainable 2C (torchvision), all 4C, none")
    common.add_argument("--plot", metavar="FILE.png", help="also draw a chart (matplotlib)")

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("shape", parents=[common], help="one layer given on the command line")
    p.add_argument("op", help=f"layer op: {', '.join(sorted(LAYER_TYPES))}")
    p.add_argument("fields", nargs="*", help="layer fields as key=value (kernel=3 padding=same)")

    for name, text in (("network", "per-layer table of a zoo model or spec file"),
                       ("rf", "receptive field of every layer"),
                       ("compare", "standard vs depthwise-separable convolutions")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("target", nargs="?", default=DEFAULT_MODEL,
                       help=f"zoo model name or spec file (.json/.toml/.yaml); default "
                            f"{DEFAULT_MODEL}"
                       + ("; or a layer op followed by key=value fields" if name == "compare"
                          else ""))
        p.add_argument("fields", nargs="*", help=argparse.SUPPRESS)
        p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="zoo model parameter (e.g. width=0.5)")
        if name == "network":
            p.add_argument("--summary", choices=("params", "weights"), default=None,
                           help="also a per-type table (conv 3x3, depthwise 3x3, linear, ...) "
                                "with shares of parameters (or weights only, the MobileNet "
                                "paper's convention) and of MACs")

    p = sub.add_parser("solve", parents=[common], help="inverse planning")
    p.add_argument("what", choices=("padding", "output-padding", "map"))
    p.add_argument("sizes", nargs="+", type=int, help="SIZE [TARGET]")
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--padding", type=int, default=0)
    p.add_argument("--dilation", type=int, default=1)
    p.add_argument("--max-kernel", type=int, default=7)
    p.add_argument("--max-stride", type=int, default=4)
    p.add_argument("--max-dilation", type=int, default=1)
    p.add_argument("--transposed", action="store_true", help="map: transposed convs")
    p.add_argument("--asymmetric", action="store_true", help="map: unequal paddings too")

    sub.add_parser("zoo", parents=[common], help="list the built-in models")
    return parser


# ---------------------------------------------------------------------------- commands
def _check_threads(args) -> None:
    if args.threads == 0:
        raise SpecError("", "threads", "0 threads is not a count; use a positive number, "
                                       "-1 for all cores, or leave it out")
    if args.repeat < 1:
        raise SpecError("", "repeat", f"must be >= 1, got {args.repeat}")


def _machine(args) -> costs_mod.Machine:
    if args.peak_gflops <= 0 or args.bandwidth_gbs <= 0:
        raise SpecError("", "peak-gflops", "peak and bandwidth must be positive")
    return costs_mod.Machine(args.peak_gflops * 1e9, args.bandwidth_gbs * 1e9)


def _network_record(network: Network, args, given_input):
    from . import measure
    analysis = analyse(network, resolve_input(network, given_input), args.bn_params)
    machine = _machine(args)
    costs = costs_mod.network_costs(analysis, args.batch, args.dtype, machine)
    measured = None
    if args.measure:
        _check_threads(args)
        measured = measure.time_rows(analysis.rows, args.batch, args.dtype, args.threads,
                                     args.repeat)
    record = formatting.network_record(analysis, costs, args.batch, args.dtype, machine,
                                       measured)
    if getattr(args, "summary", None):
        weights_only = args.summary == "weights"
        record["summary"] = costs_mod.summary_by_kind(analysis, costs, weights_only)
        record["weights_only"] = weights_only
    return record


def _single_layer_network(op: str, fields: List[str], given_input) -> Network:
    data = {"op": op, "name": op}
    data.update(parse_assignments(fields, "fields"))
    layer = spec.layer_from_dict(data, op)
    shape = given_input or (3, 224, 224)
    if len(shape) != 3:
        raise SpecError(op, "input", "a single layer needs --input C,H,W")
    return Network(op, shape, (layer,))


def cmd_network(args, given_input) -> str:
    if args.fields:
        raise SpecError("", "fields", f"unexpected arguments {args.fields}; use --param")
    network = load_network(args.target, parse_assignments(args.param, "param"), given_input)
    record = _network_record(network, args, given_input)
    if args.plot:
        from . import plot
        plot.network_plot(record, args.plot)
    if args.command == "rf":
        return formatting.render_rf(record, args.format)
    return formatting.render_network(record, args.format)


def cmd_shape(args, given_input) -> str:
    network = _single_layer_network(args.op, args.fields, given_input)
    record = _network_record(network, args, None)
    return formatting.render_network(record, args.format)


def cmd_compare(args, given_input) -> str:
    from . import measure
    if args.target in LAYER_TYPES:
        network = _single_layer_network(args.target, args.fields, given_input)
        given_input = None
    else:
        if args.fields:
            raise SpecError("", "fields", f"unexpected arguments {args.fields}")
        network = load_network(args.target, parse_assignments(args.param, "param"),
                               given_input)
    comparisons, totals = compare_mod.compare_network(
        network, resolve_input(network, given_input), args.bn_params)
    measured_totals = None
    if args.measure:
        _check_threads(args)
        timed = []
        for c in comparisons:
            std = measure.time_layer(c.layer, c.input_shape, args.batch, args.dtype,
                                     args.threads, args.repeat)
            sep = measure.time_layer(compare_mod.separable_version(c.layer), c.input_shape,
                                     args.batch, args.dtype, args.threads, args.repeat)
            timed.append(compare_mod.replace_times(c, std, sep))
        comparisons = timed
        std_ms = sum(c.standard_s for c in comparisons) * 1e3
        sep_ms = sum(c.separable_s for c in comparisons) * 1e3
        measured_totals = {"standard_ms": std_ms, "separable_ms": sep_ms,
                           "measured_ratio": sep_ms / std_ms if std_ms else None}
    record = formatting.compare_record(comparisons, totals, network.name, measured_totals)
    if args.plot:
        from . import plot
        plot.compare_plot(record, args.plot)
    return formatting.render_compare(record, args.format)


def cmd_solve(args, given_input) -> str:
    sizes = args.sizes
    if args.what == "padding":
        if len(sizes) != 2:
            raise SpecError("solve", "sizes", "padding needs SIZE TARGET")
        pad = solve_mod.padding_for(sizes[0], sizes[1], args.kernel, args.stride, args.dilation)
        rows = [{"input": sizes[0], "output": sizes[1], "kernel": args.kernel,
                 "stride": args.stride, "dilation": args.dilation,
                 "pad_before": None if pad is None else pad[0],
                 "pad_after": None if pad is None else pad[1]}]
        columns = [("input", "input"), ("output", "output"), ("kernel", "kernel"),
                   ("stride", "stride"), ("dilation", "dilation"),
                   ("pad_before", "pad before"), ("pad_after", "pad after")]
        notes = [] if pad is not None else ["no padding gives that size (it would need "
                                            "cropping, a larger stride or a smaller kernel)"]
        text = formatting.render_rows(columns, rows, args.format, notes)
        if args.format not in ("json", "csv") and pad is not None and pad[0] != pad[1]:
            text += "\npadding is asymmetric: the odd cell goes after (bottom/right)"
        return text
    if args.what == "output-padding":
        if len(sizes) != 1:
            raise SpecError("solve", "sizes", "output-padding needs SIZE")
        a = solve_mod.output_padding_for(sizes[0], args.kernel, args.stride, args.padding,
                                         args.dilation)
        rows = [{"input": sizes[0], "kernel": args.kernel, "stride": args.stride,
                 "padding": args.padding, "dilation": args.dilation, "output_padding": a}]
        columns = [("input", "size to restore"), ("kernel", "kernel"), ("stride", "stride"),
                   ("padding", "padding"), ("dilation", "dilation"),
                   ("output_padding", "output_padding")]
        return formatting.render_rows(columns, rows, args.format)
    if len(sizes) != 2:
        raise SpecError("solve", "sizes", "map needs SIZE TARGET")
    found = solve_mod.choices(sizes[0], sizes[1], args.max_kernel, args.max_stride,
                              args.max_dilation, args.transposed, not args.asymmetric)
    rows = [{"kernel": c.kernel, "stride": c.stride, "pad_before": c.padding[0],
             "pad_after": c.padding[1], "dilation": c.dilation,
             "output_padding": c.output_padding} for c in found]
    columns = [("kernel", "kernel"), ("stride", "stride"), ("pad_before", "pad before"),
               ("pad_after", "pad after"), ("dilation", "dilation")]
    if args.transposed:
        columns.append(("output_padding", "output_padding"))
    notes = [f"{len(rows)} settings map {sizes[0]} -> {sizes[1]}"
             + (" (transposed)" if args.transposed else "")]
    return formatting.render_rows(columns, rows, args.format, notes)


def cmd_zoo(args, given_input) -> str:
    rows = []
    for name, builder in zoo.ZOO.items():
        network = builder()
        analysis = analyse(network, None, args.bn_params)
        params = ", ".join(f"{k}={v.default}" for k, v in
                           inspect.signature(builder).parameters.items())
        rows.append({"name": name, "description": network.description,
                     "input_shape": list(network.input_shape),
                     "params": sum(r.params.total for r in analysis.rows),
                     "macs": sum(r.macs for r in analysis.rows), "parameters": params})
    columns = [("name", "model"), ("description", "description"), ("input_shape", "input"),
               ("params", "params"), ("macs", "MACs"), ("parameters", "--param (defaults)")]
    return formatting.render_rows(columns, rows, args.format)


COMMANDS = {"shape": cmd_shape, "network": cmd_network, "rf": cmd_network,
            "compare": cmd_compare, "solve": cmd_solve, "zoo": cmd_zoo}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``cconv-plan`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        formatting.check_format(args.format)
        if args.batch < 1:
            raise SpecError("", "batch", f"must be >= 1, got {args.batch}")
        given_input = parse_input(args.input)
        text = COMMANDS[args.command](args, given_input)
    except SpecError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    try:
        print(text)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
