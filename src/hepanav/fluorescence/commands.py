"""CLI of hepanav.fluorescence: ``hepanav fluoro analyze | margin-check | render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

fluoro = typer.Typer(
    name="fluoro",
    help="ICG near-infrared fluorescence: detect and measure lesions, check margins, "
    "render display videos (research software, not a medical device).",
    no_args_is_help=True,
)

NirOpt = Annotated[
    str,
    typer.Option(
        "--nir", help="NIR image, image folder/glob, multi-page TIFF, video, or camera:N."
    ),
]
WhiteOpt = Annotated[
    str | None,
    typer.Option("--white", help="White-light source of the same size (layout separate)."),
]
LayoutOpt = Annotated[
    str, typer.Option("--layout", help="separate | side-by-side | overlay (vendor video).")
]
NirSideOpt = Annotated[str, typer.Option("--nir-side", help="side-by-side: NIR half left|right.")]
OverlayColourOpt = Annotated[
    str, typer.Option("--overlay-colour", help="overlay layout: tower colour green|jet.")
]
BitDepthOpt = Annotated[
    int | None, typer.Option("--bit-depth", help="NIR bit depth 8, 12 or 16 (default: pixel type).")
]
MmOpt = Annotated[float | None, typer.Option("--mm-per-px", help="Pixel size on tissue, mm.")]
InnerOpt = Annotated[
    float, typer.Option("--bg-inner-px", help="Background annulus start beyond the edge, px.")
]
OuterOpt = Annotated[
    float, typer.Option("--bg-outer-px", help="Background annulus end beyond the edge, px.")
]
RoiOpt = Annotated[
    str | None,
    typer.Option(
        "--bg-roi", help="User background rectangle 'x,y,w,h' in px (instead of the annulus)."
    ),
]
ModeOpt = Annotated[
    str, typer.Option("--display", help="overlay | mono | colormap | side-by-side.")
]
ColourOpt = Annotated[
    str,
    typer.Option(
        "--colour",
        help="cividis (default, colour-blind safe) | viridis | inferno | magenta | green "
        "(vendor convention; hard to see on red liver for red-green colour-blind viewers).",
    ),
]
GainOpt = Annotated[
    str, typer.Option("--gain", help="auto (smoothed) | fixed (for quantification).")
]
RangeOpt = Annotated[
    str | None, typer.Option("--gain-range", help="fixed gain window 'low,high' in DN.")
]
MaxFramesOpt = Annotated[int | None, typer.Option("--max-frames", help="Stop after N frames.")]


MsbOpt = Annotated[
    bool,
    typer.Option(
        "--msb-aligned",
        help="NIR holds 12-bit data in the high bits of 16-bit words (detected when all "
        "values are multiples of 16).",
    ),
]
ChannelOpt = Annotated[
    str | None,
    typer.Option(
        "--channel",
        help="Colour NIR frames: use this raw channel r|g|b. NIR cameras deliver one "
        "channel; a colour NIR frame whose channels differ is refused without it (grey "
        "stored as RGB is read as grey).",
    ),
]

# CLI option of each settings field, so that a schema error names what the user typed.
_OPTION_OF = {
    "mm_per_px": "--mm-per-px",
    "inner_px": "--bg-inner-px",
    "outer_px": "--bg-outer-px",
    "roi_xywh": "--bg-roi",
    "low": "--gain-range",
    "high": "--gain-range",
    "min_cnr": "--min-cnr",
    "min_area_px": "--min-area-px",
}


def _validated(model, option_name: str | None = None, **values):
    """``model(**values)``; a validation error becomes one line naming the CLI option.

    ``option_name`` is the option named for errors of the model as a whole (its
    validators that check several fields together, e.g. ``high > low``).
    """
    from pydantic import ValidationError

    from hepanav.core import InputError

    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        option = next((_OPTION_OF[p] for p in reversed(loc) if p in _OPTION_OF), option_name)
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        given = err.get("input")
        if option and isinstance(given, int | float):
            msg = f"{msg} (got {given!r})"
        raise InputError(msg, option or ".".join(loc) or model.__name__) from None


def _numbers(text: str, n: int, field: str) -> tuple[float, ...]:
    from hepanav.core import InputError

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise InputError(f"expected {n} comma-separated numbers, got {text!r}", field)
    return values


def _check_io(inputs, out: Path, folder: bool = True) -> None:
    """Refuse an output that is, holds or sits inside an input, before any work starts."""
    from hepanav.core.atomic import check_output_folder
    from hepanav.core.paths import check_inputs_outputs

    paths = [None if p is None or str(p).startswith("camera:") else p for p in inputs]
    if folder:
        check_inputs_outputs(paths, [], folders=[out])
        check_output_folder(out)
    else:
        check_inputs_outputs(paths, [out])


def _settings(bit_depth, mm_per_px, inner, outer, roi):
    import math

    from hepanav.core import InputError
    from hepanav.fluorescence.schema import AnalysisSettings, BackgroundDefinition

    if bit_depth not in (None, 8, 12, 16):
        raise InputError(f"must be 8, 12 or 16, not {bit_depth}", "--bit-depth")
    if roi:
        values = _numbers(roi, 4, "--bg-roi")
        if not all(math.isfinite(v) and v == int(v) for v in values):
            raise InputError(f"x, y, w, h must be whole numbers of pixels, got {roi!r}", "--bg-roi")
        bg = _validated(
            BackgroundDefinition,
            "--bg-roi",
            kind="roi",
            roi_xywh=tuple(int(v) for v in values),
        )
    else:
        bg = _validated(BackgroundDefinition, "--bg-outer-px", inner_px=inner, outer_px=outer)
    return _validated(AnalysisSettings, bit_depth=bit_depth, mm_per_px=mm_per_px, background=bg)


def _display_options(mode, colour, gain, gain_range):
    from hepanav.core import InputError
    from hepanav.fluorescence.display import COLOURS, MODES
    from hepanav.fluorescence.schema import GainWindow
    from hepanav.fluorescence.stream import DisplayOptions

    if mode not in MODES:
        raise InputError(f"choose from {', '.join(MODES)}", "--display")
    if colour not in COLOURS:
        raise InputError(f"choose from {', '.join(COLOURS)}", "--colour")
    if gain not in ("auto", "fixed"):
        raise InputError("choose auto or fixed", "--gain")
    if gain_range and gain != "fixed":
        # Auto gain ignores the window: a silent fall-back would spoil a quantification.
        raise InputError("a fixed window needs --gain fixed", "--gain-range")
    rng = None
    if gain_range:
        low, high = _numbers(gain_range, 2, "--gain-range")
        window = _validated(GainWindow, "--gain-range", low=low, high=high)
        rng = (window.low, window.high)
    return DisplayOptions(mode=mode, colour=colour, gain=gain, fixed_range=rng)


def _description(nir, white, layout, info):
    from hepanav.fluorescence.schema import InputDescription
    from hepanav.fluorescence.sources import describe_input

    return InputDescription(**describe_input(nir, white, layout, info))


def _check_max_frames(max_frames):
    from hepanav.core import InputError

    # 0 would otherwise mean "no limit" (it is falsy) and a negative number is a mistake.
    if max_frames is not None and max_frames < 1:
        raise InputError(f"must be at least 1, not {max_frames}", "--max-frames")


def _check_roi_inside(settings, size_wh):
    from hepanav.core import InputError

    roi = settings.background.roi_xywh
    if roi and (roi[0] + roi[2] > size_wh[0] or roi[1] + roi[3] > size_wh[1]):
        raise InputError(
            f"rectangle {roi} leaves the {size_wh[0]}x{size_wh[1]} px frame", "--bg-roi"
        )


@fluoro.command("analyze")
def analyze_cmd(
    nir: NirOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    white: WhiteOpt = None,
    layout: LayoutOpt = "separate",
    nir_side: NirSideOpt = "right",
    overlay_colour: OverlayColourOpt = "green",
    bit_depth: BitDepthOpt = None,
    mm_per_px: MmOpt = None,
    bg_inner_px: InnerOpt = 3.0,
    bg_outer_px: OuterOpt = 10.0,
    bg_roi: RoiOpt = None,
    display_mode: ModeOpt = "overlay",
    colour: ColourOpt = "cividis",
    gain: GainOpt = "auto",
    gain_range: RangeOpt = None,
    video: Annotated[bool, typer.Option("--video/--no-video", help="Write display.mp4.")] = True,
    report: Annotated[bool, typer.Option("--report/--no-report", help="Write report.html.")] = True,
    max_frames: MaxFramesOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    msb_aligned: MsbOpt = False,
    channel: ChannelOpt = None,
) -> None:
    """Detect, measure (TBR, CNR, pattern) and track lesions in every frame.

    Writes OUT/lesions.json, OUT/frames.csv, OUT/display.mp4 and OUT/report.html.
    """
    from hepanav.core.atomic import output_folder
    from hepanav.core.progress import progress
    from hepanav.fluorescence.report import write_analysis_report
    from hepanav.fluorescence.sources import frame_pairs, refuse_overwriting_inputs
    from hepanav.fluorescence.stream import analyze_stream

    settings = _settings(bit_depth, mm_per_px, bg_inner_px, bg_outer_px, bg_roi)
    options = _display_options(display_mode, colour, gain, gain_range)
    options.mm_per_px = settings.mm_per_px
    _check_max_frames(max_frames)
    outputs = [out / n for n in ("lesions.json", "frames.csv", "display.mp4", "report.html")]
    refuse_overwriting_inputs(outputs, [nir, white])
    _check_io([nir, white], out)
    info, pairs = frame_pairs(
        nir, white, layout, bit_depth, nir_side, overlay_colour, msb_aligned, channel
    )
    _check_roi_inside(settings, info["frame_size_wh"])
    settings = settings.model_copy(update={"bit_depth": info["bit_depth"]})
    desc = _description(nir, white, layout, info)
    interrupted = False
    # One output set: lesions.json, frames.csv, display.mp4 and report.html appear
    # together. Ctrl-C (the way to end a camera session) keeps the frames analysed so
    # far as a complete set whose lesions.json says complete=false.
    with progress(disable=quiet) as bar, output_folder(out, "hepanav fluoro analyze") as tmp:
        task = bar.add_task("Analysing frames", total=max_frames or info.get("count"))
        try:
            result, snapshot = analyze_stream(
                info,
                pairs,
                tmp,
                settings,
                options,
                desc,
                video_name="display.mp4" if video else None,
                max_frames=max_frames,
                on_frame=lambda rec: bar.advance(task),
            )
        except KeyboardInterrupt:
            interrupted = True
        else:
            if report:
                write_analysis_report(tmp / "report.html", result, snapshot)
    if interrupted:
        typer.echo(
            f"interrupted: the frames analysed so far are in {out} (complete=false)", err=True
        )
        raise typer.Exit(130)
    for w in result.input.warnings:
        typer.echo(f"warning: {w}", err=True)
    roi_frames = sum(any(w.startswith("--bg-roi") for w in f.warnings) for f in result.frames)
    if roi_frames:
        x, y, w, h = settings.background.roi_xywh
        typer.echo(
            f"warning: --bg-roi {x},{y},{w},{h} overlaps a detected lesion in {roi_frames} of "
            f"{result.n_frames} frame(s): no TBR/CNR there; move it onto lesion-free liver",
            err=True,
        )
    n_lesions = len({les.id for f in result.frames for les in f.lesions})
    typer.echo(
        f"{result.n_frames} frames, {n_lesions} lesion track(s), {result.n_frames_with_warnings} "
        f"frame(s) with warnings; latency median {result.latency.median_ms} ms, "
        f"p99 {result.latency.p99_ms} ms -> {out / 'lesions.json'}"
    )


@fluoro.command("margin-check")
def margin_check_cmd(
    nir: NirOpt,
    surface: Annotated[
        Path,
        typer.Option(
            "--surface", help="Mask image of the transection / cut surface (non-zero = surface)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    bit_depth: BitDepthOpt = None,
    mm_per_px: MmOpt = None,
    min_cnr: Annotated[
        float, typer.Option("--min-cnr", help="CNR of a spot that puts the margin at risk.")
    ] = 3.0,
    min_area_px: Annotated[
        int, typer.Option("--min-area-px", help="Area of a spot that puts the margin at risk.")
    ] = 20,
    bg_inner_px: InnerOpt = 3.0,
    bg_outer_px: OuterOpt = 10.0,
    max_frames: MaxFramesOpt = None,
    white: Annotated[
        str | None,
        typer.Option(
            "--white", help="White-light image of the same view: the spots are drawn on it too."
        ),
    ] = None,
    msb_aligned: MsbOpt = False,
    channel: ChannelOpt = None,
) -> None:
    """Report fluorescent spots on a transection surface and a verdict at_risk.

    Writes OUT/margin.json and OUT/margin.html. Exit code 0 either way; read at_risk.
    """
    from hepanav.core import write_json
    from hepanav.core.atomic import output_folder
    from hepanav.fluorescence.margin import (
        check_frame,
        criterion,
        load_surface_mask,
        margin_background,
        margin_pictures,
    )
    from hepanav.fluorescence.report import write_margin_report
    from hepanav.fluorescence.schema import MarginCriterion, MarginFrame, MarginResult
    from hepanav.fluorescence.sources import (
        frame_pairs,
        path_label,
    )

    settings = _settings(bit_depth, mm_per_px, bg_inner_px, bg_outer_px, None)
    rule = _validated(MarginCriterion, min_cnr=min_cnr, min_area_px=min_area_px)
    _check_max_frames(max_frames)
    _check_io([nir, white, surface], out)
    info, pairs = frame_pairs(
        nir, white, "separate", bit_depth, msb_aligned=msb_aligned, channel=channel
    )
    w, h = info["frame_size_wh"]
    mask = load_surface_mask(surface, (h, w))
    full_scale = (1 << info["bit_depth"]) - 1
    frames: list[MarginFrame] = []
    pictures = None
    for pair in pairs:
        if pair.nir is None:
            frames.append(MarginFrame(index=pair.index, at_risk=False, warnings=pair.warnings))
        else:
            frame = check_frame(
                pair.index, pair.nir, mask, settings, full_scale, rule.min_cnr, rule.min_area_px
            )
            frame.warnings = pair.warnings + frame.warnings
            frames.append(frame)
            if pictures is None or (frame.at_risk and not any(f.at_risk for f in frames[:-1])):
                pictures = margin_pictures(pair.nir, pair.white, mask, frame, rule, settings)
        if max_frames and len(frames) >= max_frames:
            break
    result = MarginResult(
        input=_description(nir, white, "separate", info),
        surface=path_label(surface),
        surface_area_px=int(mask.sum()),
        criterion=criterion(rule.min_cnr, rule.min_area_px),
        min_cnr=rule.min_cnr,
        min_area_px=rule.min_area_px,
        background=margin_background(settings.background),
        at_risk=any(f.at_risk for f in frames),
        undetermined=any(f.undetermined for f in frames)
        and not any(s.meets_criterion and s.cnr is not None for f in frames for s in f.spots),
        frames=frames,
    )
    with output_folder(out, "hepanav fluoro margin-check") as tmp:  # both files or neither
        write_json(tmp / "margin.json", result)
        write_margin_report(tmp / "margin.html", result, pictures)
    # Count only the spots that meet the at-risk criterion: the detection seeds at a low
    # local CNR, so the spot list also holds faint blobs (noise) that decide nothing.
    n_spots = sum(s.meets_criterion and s.cnr is not None for f in frames for s in f.spots)
    n_faint = sum(not s.meets_criterion for f in frames for s in f.spots)
    n_unmeasured = sum(s.meets_criterion and s.cnr is None for f in frames for s in f.spots)
    undetermined = (
        f"; UNDETERMINED: {n_unmeasured} spot(s) of area >= {rule.min_area_px} px on the "
        "surface could not be measured (no background around them), counted as at risk"
        if n_unmeasured
        else ""
    )
    n_large = sum(f.undetermined and not f.spots for f in frames)
    if n_large:
        undetermined += (
            f"; UNDETERMINED: {n_large} frame(s) with a bright area larger than half the "
            "frame (no liver background), counted as at risk"
        )
    typer.echo(
        f"at_risk={str(result.at_risk).lower()}: {n_spots} spot(s) with CNR >= "
        f"{rule.min_cnr:g} and area >= {rule.min_area_px} px on the surface in "
        f"{len(frames)} frame(s) ({n_faint} fainter or smaller not counted){undetermined} "
        f"-> {out / 'margin.json'}"
    )


@fluoro.command("render")
def render_cmd(
    nir: NirOpt,
    out: Annotated[Path, typer.Option("--out", help="Display video to write (.mp4 or .avi).")],
    white: WhiteOpt = None,
    layout: LayoutOpt = "separate",
    nir_side: NirSideOpt = "right",
    overlay_colour: OverlayColourOpt = "green",
    bit_depth: BitDepthOpt = None,
    display_mode: ModeOpt = "overlay",
    colour: ColourOpt = "cividis",
    gain: GainOpt = "auto",
    gain_range: RangeOpt = None,
    max_frames: MaxFramesOpt = None,
    msb_aligned: MsbOpt = False,
    mm_per_px: Annotated[
        float | None, typer.Option("--mm-per-px", help="Pixel size on tissue, mm: scale bar.")
    ] = None,
    channel: ChannelOpt = None,
) -> None:
    """Write the display video (overlay, mono NIR, colour map or side by side).

    The video is written to a temporary file, read back (every frame must be there) and
    only then renamed to --out: a full disk or a failing codec is an error, never a
    short or unplayable file reported as success.
    """
    from hepanav.core import InputError
    from hepanav.fluorescence.sources import frame_pairs, refuse_overwriting_inputs
    from hepanav.fluorescence.stream import render_stream

    if out.suffix.lower() not in (".mp4", ".avi", ".m4v", ".mov"):
        raise InputError("the display video must end in .mp4 or .avi", out)
    if bit_depth not in (None, 8, 12, 16):
        raise InputError(f"must be 8, 12 or 16, not {bit_depth}", "--bit-depth")
    options = _display_options(display_mode, colour, gain, gain_range)
    if mm_per_px is not None:
        options.mm_per_px = _settings(bit_depth, mm_per_px, 3.0, 10.0, None).mm_per_px
    _check_max_frames(max_frames)
    refuse_overwriting_inputs([out], [nir, white])
    _check_io([nir, white], out, folder=False)
    info, pairs = frame_pairs(
        nir, white, layout, bit_depth, nir_side, overlay_colour, msb_aligned, channel
    )
    n, latency, warnings = render_stream(info, pairs, out, options, max_frames)
    for w in warnings[:20]:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(
        f"{n} frames -> {out} (display latency median {latency.median_ms} ms, "
        f"p99 {latency.p99_ms} ms)"
    )


@fluoro.command("live")
def live_cmd(
    source: Annotated[
        str,
        typer.Option(
            "--source", help="camera:N, a recording (file, folder, glob) or rtsp://URL (NIR)."
        ),
    ],
    white: WhiteOpt = None,
    layout: LayoutOpt = "separate",
    nir_side: NirSideOpt = "right",
    overlay_colour: OverlayColourOpt = "green",
    bit_depth: BitDepthOpt = None,
    msb_aligned: MsbOpt = False,
    channel: ChannelOpt = None,
    mm_per_px: MmOpt = None,
    surface: Annotated[
        Path | None,
        typer.Option("--surface", help="Transection surface mask: show the margin warning."),
    ] = None,
    min_cnr: Annotated[float, typer.Option("--min-cnr", help="Margin: CNR of a spot.")] = 3.0,
    min_area_px: Annotated[
        int, typer.Option("--min-area-px", help="Margin: area of a spot, px.")
    ] = 20,
    display_mode: ModeOpt = "overlay",
    colour: ColourOpt = "cividis",
    frames_out: Annotated[
        Path | None,
        typer.Option(
            "--frames-out",
            help="Write the annotated frames as JPEGs (and latency.csv) here instead of "
            "opening a window.",
        ),
    ] = None,
    pace: Annotated[
        bool, typer.Option("--pace/--no-pace", help="Play recordings at their recorded rate.")
    ] = True,
    asynchronous: Annotated[
        bool,
        typer.Option(
            "--async/--sync",
            help="Analyse in a worker (see --analysis-worker) and never hold the video back "
            "(labels may be a few frames old, their age is shown); --sync waits for each "
            "frame's analysis.",
        ),
    ] = True,
    preload: Annotated[
        bool,
        typer.Option(
            "--preload",
            help="Recordings: decode every frame into memory first, then replay them at the "
            "recorded frame rate like a camera (frames the display cannot keep up with are "
            "dropped and counted). Needs --max-frames or a recording of at most 2 GB decoded.",
        ),
    ] = False,
    analysis_interval_ms: Annotated[
        float,
        typer.Option(
            "--analysis-interval-ms",
            help="--async: start a new analysis at most every this many ms (0 = as soon as "
            "the previous one is done); leaves more CPU to the video.",
        ),
    ] = 0.0,
    analysis_worker: Annotated[
        str,
        typer.Option(
            "--analysis-worker",
            help="--async: 'process' (default: a separate process at a lower priority, the "
            "frame handed over in shared memory, newest frame wins) or 'thread' (shares the "
            "display's interpreter lock).",
        ),
    ] = "process",
    max_frames: MaxFramesOpt = None,
) -> None:
    """Live display for the OR: overlay, lesion labels (TBR, pattern), margin warning,
    added latency on screen. Window: OpenCV HighGUI (q or Esc quits)."""

    import math

    from hepanav.core import InputError
    from hepanav.fluorescence.display import COLOURS, MODES
    from hepanav.fluorescence.live import WORKERS, LiveDisplay, live_frames, window_available
    from hepanav.fluorescence.margin import load_surface_mask
    from hepanav.fluorescence.schema import MarginCriterion
    from hepanav.fluorescence.sources import frame_pairs

    if display_mode not in MODES:
        raise InputError(f"choose from {', '.join(MODES)}", "--display")
    if colour not in COLOURS:
        raise InputError(f"choose from {', '.join(COLOURS)}", "--colour")
    settings = _settings(bit_depth, mm_per_px, 3.0, 10.0, None)
    rule = _validated(MarginCriterion, min_cnr=min_cnr, min_area_px=min_area_px)
    _check_max_frames(max_frames)
    if not (math.isfinite(analysis_interval_ms) and analysis_interval_ms >= 0):
        raise InputError("must be a number of ms >= 0", "--analysis-interval-ms")
    if analysis_worker not in WORKERS:
        raise InputError(f"choose from {', '.join(WORKERS)}", "--analysis-worker")
    if frames_out is None and not window_available():
        raise InputError(
            "no window can be opened here (no display, or OpenCV without GUI support such as "
            "opencv-python-headless); give --frames-out DIR, or use the web page",
            "--source",
        )
    info, pairs = frame_pairs(
        source, white, layout, bit_depth, nir_side, overlay_colour, msb_aligned, channel
    )
    w, h = info["frame_size_wh"]
    mask = load_surface_mask(surface, (h, w)) if surface is not None else None
    live = LiveDisplay(
        settings.model_copy(update={"bit_depth": info["bit_depth"]}),
        info["bit_depth"],
        display_mode,
        colour,
        mask,
        rule,
        info.get("clipped_background", False),
        asynchronous,
        analysis_interval_ms / 1e3,
        analysis_worker,
    )
    live.start()  # the worker is up before the first frame is shown
    fps = info.get("fps")
    if preload:
        pairs, fps = _preload(pairs, info, max_frames)
        pace = False  # the replay paces itself, like a camera
    frames = live_frames(pairs, live, pace=pace, max_frames=max_frames, fps=fps)
    try:
        n = _show_live(frames, frames_out)
    finally:
        live.close()
    message = f"{n} frames shown; added latency p99 {live.p99_ms() or 0:.1f} ms"
    if asynchronous:
        message += (
            f"; {live.analyses_started} analysed, {live.frames_not_analysed} shown without "
            "analysis (the worker was busy)"
        )
    if live.dropped:
        rate = f"{fps:g} fps" if fps else "its frame rate"
        message += f"; WARNING: {live.dropped} frames dropped (the source's {rate} was not kept)"
    typer.echo(message)


def _preload(pairs, info: dict, max_frames: int | None):
    """Decode a recording into memory and return a camera-like replay of it and its fps."""
    from hepanav.core import InputError
    from hepanav.fluorescence.sources import MemoryReplay

    if info.get("kind") in ("camera", "stream"):
        raise InputError("--preload replays a recording; a camera or stream is live", "--preload")
    fps = info.get("fps")
    if not fps:
        raise InputError(
            "--preload needs the recording's frame rate, which it does not state", "--source"
        )
    w, h = info["frame_size_wh"]
    per_frame = w * h * (2 + 3)  # 16-bit NIR + 8-bit BGR white light, bytes
    limit = 2 * 1024**3
    count = max_frames or info.get("count")
    if count is None or count * per_frame > limit:
        raise InputError(
            f"--preload holds every frame in memory ({per_frame / 1e6:.0f} MB each); give "
            f"--max-frames (at most {limit // per_frame} frames)",
            "--preload",
        )
    held = []
    for pair in pairs:
        held.append(pair)
        if len(held) >= count:
            break
    return MemoryReplay(held, fps, len(held)), fps


def _show_live(frames, frames_out) -> int:
    """Write the live frames to ``frames_out`` or show them in a window; return the count."""
    import csv

    import cv2

    from hepanav.fluorescence.live import jpeg_frames

    n = 0
    if frames_out is not None:
        frames_out.mkdir(parents=True, exist_ok=True)
        with open(frames_out / "latency.csv", "w", newline="", encoding="utf-8") as fh:
            table = csv.writer(fh)
            table.writerow(
                ["frame", "time_s", "added_latency_ms", "n_lesions", "dropped_total", "at_risk"]
            )
            for data, frame in jpeg_frames(frames):
                (frames_out / f"frame_{frame.index:06d}.jpg").write_bytes(data)
                table.writerow(
                    [
                        frame.index,
                        "" if frame.time_s is None else f"{frame.time_s:.3f}",
                        f"{frame.latency_ms:.2f}",
                        len(frame.lesions),
                        frame.dropped,
                        "" if frame.at_risk is None else str(frame.at_risk).lower(),
                    ]
                )
                n += 1
    else:
        title = "HepaNav fluorescence (research software, not a medical device)"
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        try:
            for frame in frames:
                cv2.imshow(title, frame.image)
                n += 1
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
        finally:
            cv2.destroyWindow(title)
    return n


def register(app: typer.Typer) -> None:
    """Add ``hepanav fluoro ...`` to the root app."""
    app.add_typer(fluoro, name="fluoro")
